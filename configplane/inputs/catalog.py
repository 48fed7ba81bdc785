"""The one reader: a stack's layers from the service catalog and Pulumi config.

Used by `__main__.py` under `pulumi up` and by every CLI verb, so they cannot disagree. The
program reads the catalog from the project directory; Pulumi config holds only platform
settings and `secure` values:

    Pulumi.yaml               configplane:defaults.platform   (project platform defaults)
    Pulumi.<stack>.yaml       configplane:platform, secure values, provider settings
    services/defaults.yaml    owners: platform owners; service: fleet-wide service defaults
    services/<name>/service.yaml    the service's base (the directory name is its name)
    services/<name>/<stack>.yaml    optional overlay for one stack (`null`: not in that stack)

Layers, lowest first: platform: project -> environment; each service: fleet ->
service -> environment (-> tenants, applied per service by the checker). Objects
deep-merge, lists and scalars replace, `null` deletes. Each value keeps the file and line
that set it.

Service definitions still found in Pulumi config (`configplane:defaults.services`,
`configplane:services`: the layout before the catalog) are read as layers too, so an old
project plans unchanged until `configplane migrate --write` moves them; `validate` fails
them once the config nears the size where the Pulumi CLI can no longer start the program.

Reading the Pulumi config files is configplane.inputs.pulumiconfig's job, reading one YAML file (once,
with its lines) configplane.inputs.layerfiles'; this module assembles the layers.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

from configplane import contract
from configplane.inputs.context import RUN_NAMESPACE, collector_paused
from configplane.inputs.layerfiles import Problem, duplicates, lines_by_child, load, subtree_lines
from configplane.inputs.layering import Layer
from configplane.inputs.parsecache import ParseCache
from configplane.inputs.pulumiconfig import (
    config_file,
    environments,
    estimate_plaintext_length,
    existing_stacks,
    full_key,
    project_config,
    runtime_values,
    secure_raw,
    stack_values,
)
from configplane.inputs.stackfiles import (
    DEFAULTS_KEY,
    NAMESPACE,
    PLATFORM_KEY,
    PROJECT_FILE,
    SERVICES_KEY,
    StackInputs,
    StackValue,
    check_stack_name,
    stack_file_name,
)
from configplane.inputs.yamlload import KeyPath, YamlError
from configplane.ownership import (  # the catalog's home, beside its owners; stack names
    CATALOG_DIR,
    shard_of_stack,
)
from configplane.projectfiles import (
    DEFAULTS_NAME,
    ProjectFileError,
    entries,
    is_file,
    kind_of,
    name_problem,
    shown,
)
from configplane.wording import count

DEFAULTS_FILE = f"{CATALOG_DIR}/{DEFAULTS_NAME}"
SERVICE_FILE = "service.yaml"
DEFAULTS_FIELDS = ("owners", "service")
OWNER = re.compile(contract.OWNER)
T = TypeVar("T")


@dataclass(frozen=True)
class FleetDefaults:
    owners: tuple[str, ...] = ()
    service: Mapping[str, Any] = field(default_factory=dict)
    lines: Mapping[KeyPath, int] = field(default_factory=dict)  # relative to `service`




def environment_of(stack: str, known: Iterable[str]) -> str | None:
    """The environment a shard stack `<env>-<shard>` belongs to: the longest environment name
    it extends (None: none)."""
    for environment in sorted(known, key=len, reverse=True):
        if shard_of_stack(stack, environment) is not None:
            return environment
    return None


def shard_stack_files(project_dir: Path, environment: str,
                      known: Iterable[str] | None = None) -> tuple[str, ...]:
    """The shard stacks of `environment` that have a stack file (their secure values)."""
    names = tuple(known) if known is not None else environments(project_dir)
    return tuple(stack for stack in existing_stacks(project_dir)
                 if stack not in names and environment_of(stack, names) == environment)


# The catalog's documents are hundreds of thousands of small objects: read with the collector
# running, each full pass walked the whole process again (2,000 services: a third of the read)
@collector_paused()
def read_inputs(project_dir: Path, stack: str,
                config_values: Mapping[str, StackValue] | None = None, *,
                services: Iterable[str] | None = None, shard_files: Iterable[str] | None = None,
                shard_values: Mapping[str, StackValue] | None = None) -> StackInputs:
    """Every layer of one stack. `config_values`: the config source; None reads the stack
    file (the CLI), `runtime_values()` is what the engine handed the program (`pulumi up`).
    `services`: read only these catalog services (`validate/plan --service`; the program
    gets them from its config: configplane.inputs.context.Selection).

    A sharded environment (docs/fleet.md): `stack` is the environment; its shard stacks'
    files hold only the `secure` values of their services. `shard_files`: those stacks whose
    files' secure values join the environment's (default: every shard file of the environment
    when the config comes from the files, none when it comes from the engine); `shard_values`:
    the engine's config of the one shard stack a program runs as (the environment's file is
    read from disk)."""
    project_dir = Path(project_dir)
    check_stack_name(stack)
    problems: list[Problem] = []
    notes: list[str] = []
    config = _ConfigFiles(project_dir, stack, config_values, problems)

    config.add_shards(project_dir, stack, config_values, shard_files, shard_values, problems)

    defaults, defaults_file, defaults_lines = config.layer(DEFAULTS_KEY)
    platform, platform_file, platform_lines = config.layer(PLATFORM_KEY)
    legacy_env = config.layer(SERVICES_KEY)

    defaults_doc: dict[str, Any] = {}
    legacy_base: Any = None
    if isinstance(defaults, Mapping):
        defaults_doc = {k: v for k, v in defaults.items() if k != "services"}
        legacy_base = defaults.get("services")
    elif defaults is not None:
        problems.append((DEFAULTS_KEY, defaults_file, f"`{DEFAULTS_KEY}` must be a mapping "
                         "(platform: ...). Fix: correct it."))
    platform_layers = [Layer("project", defaults_file, defaults_doc, defaults_lines)]
    env_doc = {} if platform is None else {"platform": platform}
    platform_layers.append(Layer("environment", platform_file, env_doc,
                                 {("platform", *p): line for p, line in platform_lines.items()}))

    wanted = None if services is None else set(services)
    service_layers = _config_service_layers(
        [(legacy_base, defaults_file, defaults_lines, "project", f"{DEFAULTS_KEY}.services"),
         (*legacy_env, "environment", SERVICES_KEY)], wanted, problems)
    legacy = set(service_layers)
    if legacy:
        notes.append(f"{count(len(legacy), 'service')} defined in Pulumi config (the layout before "
                     "services/): run `configplane migrate --write` to move them to "
                     "services/<name>/.")
    fleet = read_fleet_defaults(project_dir, problems)
    _add_catalog_layers(project_dir, stack, wanted, legacy, service_layers, problems)
    for name in service_layers:
        if fleet.service:
            service_layers[name].insert(0, Layer("fleet", DEFAULTS_FILE, {name: fleet.service},
                                                 {(name, *p): ln for p, ln in fleet.lines.items()}))

    return StackInputs(
        stack=stack,
        project_file=PROJECT_FILE,
        stack_file=config.stack_name,
        defaults=defaults_doc,
        environment=env_doc,
        declarations=config.declarations,
        values=config.values,
        project=config.project,
        project_values=config.project_values,
        read_problems=tuple(problems),
        secure_raw=config.raw_secure,
        shard_secure=config.shard_secure,
        platform_layers=tuple(platform_layers),
        service_layers={k: tuple(service_layers[k]) for k in sorted(service_layers)},
        notes=tuple(notes),
        project_dir=str(project_dir),
        owners=fleet.owners,
    )


class _ConfigFiles:
    """Pulumi.yaml and Pulumi.<stack>.yaml (or the engine's values), read once; `layer` gives a
    key's value with the file it comes from and its lines."""

    def __init__(self, project_dir: Path, stack: str,
                 config_values: Mapping[str, StackValue] | None, problems: list[Problem]):
        self.project_file = config_file(project_dir, PROJECT_FILE, True, problems)
        self.stack_name = stack_file_name(stack)
        self.stack_file = config_file(project_dir, self.stack_name, config_values is None, problems)
        self.project = str(self.project_file.document.get("name", NAMESPACE))
        # value_paths: full key -> where its value sits in Pulumi.yaml
        self.declarations, self.project_values, self.value_paths = project_config(
            self.project_file, self.project)
        self.stack_keys = {full_key(k, self.project): ("config", k)
                           for k in (self.stack_file.document.get("config") or {})}
        values = (dict(config_values) if config_values is not None
                  else stack_values(self.stack_file, self.project))
        self._refuse_run_keys(problems)
        self.values = {k: v for k, v in values.items() if not k.startswith(f"{RUN_NAMESPACE}:")}
        self.raw_secure = secure_raw(self.stack_file, self.project)
        self.shard_secure: dict[str, str] = {}  # secure key -> the shard stack file holding it

    def add_shards(self, project_dir: Path, stack: str,
                   config_values: Mapping[str, StackValue] | None,
                   shard_files: Iterable[str] | None,
                   shard_values: Mapping[str, StackValue] | None,
                   problems: list[Problem]) -> None:
        """The secure values of the environment's shard stacks join its own (read_inputs)."""
        if shard_files is None:
            shard_files = shard_stack_files(project_dir, stack) if config_values is None else ()
        for shard in shard_files:
            shard_file = config_file(project_dir, stack_file_name(shard), False, problems)
            _shard_values(shard_file, self.project, self.values, self.raw_secure,
                          self.shard_secure, problems)
        if shard_values is not None:  # a shard's own run: its config holds its secure values
            self.values.update({k: v for k, v in shard_values.items()
                                if k.startswith(f"{self.project}:") and v.secure})

    def _refuse_run_keys(self, problems: list[Problem]) -> None:
        """The run's own keys (configplane.inputs.context) are the offline plan's, never a
        file's: a file setting one would quietly drop services from a real `pulumi up`."""
        for key, file in [*((k, self.stack_name) for k in self.stack_keys),
                          *((k, PROJECT_FILE) for k in (*self.declarations, *self.project_values))]:
            if key.startswith(f"{RUN_NAMESPACE}:"):
                problems.append((f"config.{key}", file, f"`{key}` is set by `configplane plan "
                                 "--service` for its own run only. Fix: remove it from the file."))

    def layer(self, full: str) -> tuple[Any, str, dict[KeyPath, int]]:
        """A key's value, the file it comes from and its lines (stack wins over project)."""
        found = self.values.get(full)
        if full in self.stack_keys:
            return (found.value if found else None, self.stack_name,
                    subtree_lines(self.stack_file.lines, self.stack_keys[full]))
        if found is not None and not found.secure:  # runtime: project values come through too
            fallback = self.project_values.get(full)
            return found.value, PROJECT_FILE, (
                subtree_lines(self.project_file.lines, self.value_paths[full])
                if full in self.value_paths and fallback is not None else {})
        if full in self.project_values:
            return self.project_values[full], PROJECT_FILE, subtree_lines(
                self.project_file.lines, self.value_paths[full])
        return None, PROJECT_FILE, {}


def _config_service_layers(sources: Iterable[tuple[Any, str, Mapping[KeyPath, int], str, str]],
                           wanted: set[str] | None,
                           problems: list[Problem]) -> dict[str, list[Layer]]:
    """The layout before the catalog: service definitions in Pulumi config. `sources`: (value,
    file, lines, layer, key path) of `configplane:defaults.services` and `configplane:services`."""
    service_layers: dict[str, list[Layer]] = {}
    for value, file, lines, layer, path in sources:
        if value is None:
            continue
        if not isinstance(value, Mapping):
            problems.append((path, file, f"`{path}` must be a mapping of service names to "
                             "definitions. Fix: correct it, then `configplane migrate --write`."))
            continue
        prefix: KeyPath = ("services",) if layer == "project" else ()
        by_child = lines_by_child(lines, prefix)
        for name, doc in value.items():
            if wanted is not None and name not in wanted:
                continue
            rel = {p[1:]: line for p, line in by_child.get(str(name), {}).items()}
            service_layers.setdefault(str(name), []).append(
                Layer(layer, file, {str(name): doc}, {(str(name), *p): ln for p, ln in rel.items()}))
    return service_layers


# (project's real path, stack, services wanted) -> what the catalog held: see `reading_once`
_CatalogRead = list[tuple[str, "list[Layer] | None", list[Problem]]]
_CATALOG_READS: ContextVar[dict[tuple[Any, ...], _CatalogRead] | None] = ContextVar(
    "configplane_catalog_reads", default=None)
# what layers above compute once from those reads: (kind, key) -> result; see `once_per_read`
_COMPUTED: ContextVar[dict[tuple[str, Hashable], Any] | None] = ContextVar(
    "configplane_computed_once", default=None)
_OBSERVERS: ContextVar[tuple[Callable[[str, Hashable], None], ...]] = ContextVar(
    "configplane_computed_once_observers", default=())


@contextmanager
def reading_once(observe: Callable[[str, Hashable], None] | None = None) -> Iterator[None]:
    """Within it, each stack's catalog is read from disk once. A read-only command (`plan`,
    `validate`) reads it for the redactor, its validation, the topology and each planned stack
    and its program: seven times for one shard, the largest cost of a fleet's plan. The files
    do not change under a read-only command, and what is kept are the parsed layers, which no
    reader changes (each gets its own lists). What is computed from them once per scope is
    kept too (`once_per_read`: a stack's validation).

    Entered inside a scope, it joins that scope (a command run by a tool or a test inside its
    own). `observe(kind, key)`: called each time something is computed for the scope (not
    when it is reused): what a test counts."""
    observers = _OBSERVERS.set((*_OBSERVERS.get(), *([observe] if observe else [])))
    joined = _CATALOG_READS.get() is not None
    tokens = None if joined else (_CATALOG_READS.set({}), _COMPUTED.set({}))
    try:
        yield
    finally:
        if tokens is not None:
            _COMPUTED.reset(tokens[1])
            _CATALOG_READS.reset(tokens[0])
        _OBSERVERS.reset(observers)


def reading_once_active() -> bool:
    """Whether the caller runs inside `reading_once` (a read-only command)."""
    return _CATALOG_READS.get() is not None


def once_per_read(kind: str, key: Hashable, compute: Callable[[], T]) -> T:
    """`compute()`, once per (`kind`, `key`) within `reading_once`; every later call in the
    scope gets that same result (outside a scope: computed on each call). `key` must name
    everything `compute` depends on beyond the files a read-only command reads, and the
    result must be one that no caller changes."""
    computed = _COMPUTED.get()
    if computed is None:
        return compute()
    if (kind, key) not in computed:
        for observe in _OBSERVERS.get():
            observe(kind, key)
        computed[(kind, key)] = compute()
    return cast(T, computed[(kind, key)])


def _add_catalog_layers(project_dir: Path, stack: str, wanted: set[str] | None,
                        legacy: set[str], service_layers: dict[str, list[Layer]],
                        problems: list[Problem]) -> None:
    """Each catalog service's layers in this stack into `service_layers` (a service also
    defined in Pulumi config is refused and dropped)."""
    reads = _CATALOG_READS.get()
    key = (os.path.realpath(project_dir), stack, None if wanted is None else frozenset(wanted))
    read = reads.get(key) if reads is not None else None
    if read is None:
        read = _read_catalog(project_dir, stack, wanted)
        if reads is not None:
            reads[key] = read
    for name, layers, found in read:
        problems.extend(found)
        if layers is None:
            continue
        if name in legacy:
            problems.append((f"services.{name}", f"{CATALOG_DIR}/{name}/", f"service `{name}` is "
                             "defined both in services/ and in Pulumi config. Fix: keep one "
                             "(`configplane migrate` moves the config one)."))
            del service_layers[name]
            continue
        service_layers[name] = list(layers)


def _read_catalog(project_dir: Path, stack: str, wanted: set[str] | None) -> _CatalogRead:
    """Per catalog service (in order; first, "" for the catalog directory itself): its layers
    in this stack (None: not in it, or unreadable) and the problems found reading it."""
    known_stacks = {p.name[len("Pulumi."):-len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml")}
    known_stacks.add(stack)
    found: list[Problem] = []
    read: _CatalogRead = [("", None, found)]
    cache = ParseCache.for_project(project_dir)
    names = [name for name in _catalog_dirs(project_dir, found, stack)
             if wanted is None or name in wanted]
    if cache is not None:
        cache.parse_ahead(project_dir, [(f"{CATALOG_DIR}/{name}/{file}", (name,),
                                         partial(_layer_of, name))
                                        for name in names for file in (SERVICE_FILE,
                                                                       f"{stack}.yaml")])
    for name in names:
        found = []
        read.append((name, _catalog_layers(project_dir, name, stack, known_stacks, found, cache),
                     found))
    return read  # the cache's new entries are written when the command ends (keeping_parses)


def _shard_values(shard_file: Any, project: str, values: dict[str, StackValue],
                  raw_secure: dict[str, Any], held: dict[str, str],
                  problems: list[Problem]) -> None:
    """A shard stack file's `secure` values join the environment's; anything else in it is a
    copy of what the environment's file says once (refused)."""
    name = shard_file.name
    for key, value in (shard_file.document.get("config") or {}).items():
        full = full_key(key, project)
        if not (isinstance(value, dict) and set(value) == {"secure"}
                and full.startswith(f"{project}:")):
            problems.append((f"config.{key}", name, f"a shard stack file holds only the `secure` "
                             f"values of its services ({project}:<key>); `{key}` is a platform "
                             "or provider setting, written once in the environment's stack file "
                             "and read by every shard from there. Fix: remove it from this file."))
            continue
        if full in values or full in held:
            problems.append((f"config.{key}", name, f"`{key}` is set in "
                             f"{held.get(full, 'the environment stack file')} too: a secure "
                             "value lives in one stack file. Fix: keep the one in the stack "
                             "file of the shard whose service uses it."))
            continue
        values[full] = StackValue(True, None, estimate_plaintext_length(value["secure"]))
        raw_secure[full] = value["secure"]
        held[full] = name


def _catalog_dirs(project_dir: Path, problems: list[Problem], stack: str | None = None) -> list[str]:
    """The service directories under services/. A symlink there, a name no file system path
    should have, or a file that is not defaults.yaml (or is a near miss of it) is a problem."""
    kind = kind_of(project_dir, CATALOG_DIR)
    if kind is None:
        return []
    if kind != "dir":  # read as empty, `pulumi up` would delete every service
        problems.append(("", CATALOG_DIR, f"`{CATALOG_DIR}` is not a directory (a {kind}): the "
                         "catalog would read as a fleet of no services, and `pulumi up` would "
                         f"delete every service. Fix: make {CATALOG_DIR}/ the catalog directory "
                         f"({CATALOG_DIR}/<name>/{SERVICE_FILE})."))
        return []
    names = []
    for name, kind in entries(project_dir, CATALOG_DIR):
        display = f"{CATALOG_DIR}/{shown(name)}"
        problem = name_problem(name)
        if problem and kind == "dir":
            problems.append((f"services.{shown(name)}", _unread_file(project_dir, name, stack),
                             f"service name `{shown(name)}` is not an RFC 1123 label "
                             f"({problem}): configplane reads no file under it. Fix: rename "
                             "the directory (lowercase letters, digits, '-')."))
        elif problem:
            problems.append(("", display, f"{problem}. Fix: rename it."))
        elif kind == "dir":
            names.append(name)
        elif name == DEFAULTS_NAME:
            continue  # read (and contained) by read_fleet_defaults
        elif kind == "symlink":
            problems.append((f"services.{name}", display, "a symlink: a service directory (or a "
                             "catalog file) must be itself, not a link that can read another "
                             "service's or an outside directory's files. Fix: replace the link "
                             "with the directory."))
        elif _same_name(name, [DEFAULTS_NAME]) or _close_name(name, [DEFAULTS_NAME]):
            problems.append(("", display, f"did you mean {DEFAULTS_FILE}? configplane reads "
                             f"only that name, so this file is ignored. Fix: rename it."))
        elif name.lower().endswith((".yaml", ".yml")):
            stem = name.rsplit(".", 1)[0]
            problems.append(("", display, "a service is a directory: "
                             f"Fix: move it to {CATALOG_DIR}/{shown(stem)}/{SERVICE_FILE}."))
    return names


def _unread_file(project_dir: Path, name: str, stack: str | None) -> str:
    """The file of a refused service directory that the stack would have read (its overlay,
    else its base), named so the message points at it; the directory when it has neither."""
    directory = f"{CATALOG_DIR}/{shown(name)}/"
    for file in ((f"{stack}.yaml",) if stack else ()) + (SERVICE_FILE,):
        if (project_dir / CATALOG_DIR / name / file).is_file():
            return directory + file
    return directory


def _same_name(name: str, expected: Iterable[str]) -> str | None:
    """The expected file `name` stands for in another case or extension, or as a backup copy
    (`dev.yml`, `Service.yaml`, `dev.yaml.orig`), or None."""
    lowered = name.strip().lower()
    for candidate in expected:
        stem = candidate.rsplit(".", 1)[0]
        if lowered in (candidate, stem) or lowered.startswith(stem + "."):
            return candidate
    return None


def _close_name(name: str, expected: Iterable[str]) -> str | None:
    """The expected file a YAML file's name is a typo of (`prd.yaml`, `servce.yaml`), or None."""
    close = difflib.get_close_matches(name.strip().lower(), list(expected), n=1, cutoff=0.8)
    return close[0] if close else None


def _catalog_layers(project_dir: Path, name: str, stack: str, known_stacks: set[str],
                    problems: list[Problem], cache: ParseCache | None = None
                    ) -> list[Layer] | None:
    """A catalog service's layers in this stack, or None when it is not in the stack."""
    directory = f"{CATALOG_DIR}/{name}"
    expected = [SERVICE_FILE, *(f"{s}.yaml" for s in sorted(known_stacks))]
    files = set()
    try:
        listing = entries(project_dir, directory)
    except ProjectFileError as exc:
        problems.append((f"services.{name}", f"{directory}/", exc.problem))
        return None
    for file, kind in listing:
        display = f"{directory}/{shown(file)}"
        problem = name_problem(file)
        if problem:
            problems.append((f"services.{name}", display, f"{problem}. Fix: rename it."))
            continue
        if file in expected:
            if kind != "dir":
                files.add(file)
            continue
        if kind == "dir":
            continue  # a team's own subdirectory: not read by configplane
        meant = _same_name(file, expected)
        stem, _, ext = file.rpartition(".")
        if meant:
            problems.append((f"services.{name}", display, f"did you mean {directory}/{meant}? "
                             f"configplane reads only `{SERVICE_FILE}` and `<stack>.yaml`, so "
                             "this file is ignored. Fix: rename it (or remove it)."))
        elif ext.lower() in ("yaml", "yml"):
            close = _close_name(file, expected)
            hint = f" Did you mean {close}?" if close else ""
            problems.append((f"services.{name}", display, f"overlay for stack `{shown(stem)}`, "
                             f"which has no Pulumi.{shown(stem)}.yaml.{hint} Fix: rename it to "
                             f"<stack>.yaml for one of: {', '.join(sorted(known_stacks))}."))
    layers: list[Layer] = []
    for layer, file_name in (("service", SERVICE_FILE), ("environment", f"{stack}.yaml")):
        if file_name not in files:
            continue
        display = f"{directory}/{file_name}"
        secret_free = ""
        try:
            if cache is None:
                loaded = load(project_dir, display, (name,))
            else:
                loaded, clean = cache.load(project_dir, display, (name,), partial(_layer_of, name))
                secret_free = cache.detector_identity if clean else ""
        except YamlError as exc:
            where = ".".join(("services", *exc.path)) if exc.path else f"services.{name}"
            problems.append((where, display, exc.problem, exc.line))
            return None
        problems.extend(duplicates(loaded, display, ("services", name)))
        if layer == "environment" and loaded.explicit_null:
            return None  # `null`: the service is not in this stack
        document = loaded.document if loaded.document is not None else {}
        if not isinstance(document, dict):
            problems.append((f"services.{name}", display, "expected a mapping of service fields "
                             "(app_schema, config, secrets...). Fix: correct the file."))
            return None
        layers.append(Layer(layer, display, _layer_of(name, document), loaded.lines,
                            secret_free_under=secret_free))
    return layers or None  # only an overlay: the service is in that stack only


def _layer_of(name: str, document: Any) -> dict[str, Any]:
    """A catalog file's layer document: its fields under the service's name."""
    return {name: document if document is not None else {}}


def read_fleet_defaults(project_dir: Path, problems: list[Problem] | None = None) -> FleetDefaults:
    """services/defaults.yaml: platform owners and fleet-wide service defaults."""
    problems = problems if problems is not None else []
    if not is_file(project_dir, DEFAULTS_FILE):
        return FleetDefaults()
    try:
        loaded = load(project_dir, DEFAULTS_FILE)
    except YamlError as exc:
        problems.append(("", DEFAULTS_FILE, exc.problem, exc.line))
        return FleetDefaults()
    problems.extend(duplicates(loaded, DEFAULTS_FILE))
    document = loaded.document if loaded.document is not None else {}
    if not isinstance(document, dict):
        problems.append(("", DEFAULTS_FILE, "expected a mapping with `owners` and `service`. "
                         "Fix: correct the file."))
        return FleetDefaults()
    for key in sorted(set(document) - set(DEFAULTS_FIELDS)):
        problems.append((key, DEFAULTS_FILE, f"unknown key `{key}`. Fix: use `owners` (platform "
                         "owners) and `service` (defaults for every service).",
                         loaded.lines.get((key,))))
    owners = document.get("owners") or []
    if not isinstance(owners, list) or not all(isinstance(o, str) and OWNER.fullmatch(o)
                                               for o in owners):
        problems.append(("owners", DEFAULTS_FILE, "owners must be a list of GitHub users or "
                         "teams (`@org/team`, `@user`) or e-mail addresses. Fix: correct it."))
        owners = []
    service = document.get("service") or {}
    if not isinstance(service, dict):
        problems.append(("service", DEFAULTS_FILE, "`service` must be a mapping of service "
                         "fields. Fix: correct it."))
        service = {}
    return FleetDefaults(tuple(owners), service, subtree_lines(loaded.lines, ("service",)))


def catalog_services(project_dir: Path) -> list[str]:
    """The service directories of the catalog; raises ProjectFileError naming the first entry
    that keeps the catalog from being read (a symlinked service directory, a hostile name)."""
    problems: list[Problem] = []
    names = _catalog_dirs(Path(project_dir), problems)
    if problems:
        raise ProjectFileError(problems[0][1], problems[0][2])
    return names


def read_stack_files(project_dir: Path, stack: str) -> StackInputs:
    """The stack's inputs with config from the project and stack files (the CLI's view)."""
    return read_inputs(project_dir, stack)


def inputs_from_pulumi(project_dir: Path, stack: str) -> StackInputs:
    """The same inputs as a running Pulumi program sees them: config from the engine
    (so `--config` and `pulumi config set` count), the catalog from the project directory."""
    return read_inputs(project_dir, stack, runtime_values())
