"""The import plan: classify what the inputs hold (secret or config), type config values as
the app schema wants them, turn each secret into a `source: secure` reference with its
Pulumi.yaml declaration, and say how to set it (`--emit-value` piped into `pulumi config set
--secret`). Plaintext values live only while classifying; the plan holds names only.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from configplane import ownership
from configplane.contract import CONFIGMAP_DATA_KEY, DNS_LABEL, SCHEMA_SECRET_KEYS
from configplane.inputs import (
    CATALOG_DIR,
    DEFAULTS_KEY,
    NAMESPACE,
    PROJECT_FILE,
    SERVICE_FILE,
    StackFileError,
    YamlError,
    check_stack_name,
    load,
    read_project_file,
    stack_file_name,
)
from configplane.model import DATABASE_FIELDS, PASSWORD_SUFFIX, URL_SUFFIX, prefix_of, render_value
from configplane.ops.importer.entry import Entry, ImportProblem
from configplane.ops.importer.envfile import read_dotenv
from configplane.ops.importer.manifests import read_manifests
from configplane.ops.parity import ParityConfigError, load_expectations
from configplane.ownership import config_key_for
from configplane.projectfiles import (
    ProjectFileError,
    is_file,
    read_argument,
    read_text,
    shown,
)
from configplane.redaction import Detector, detector_for

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STORES = ("vault", "aws")


@dataclass(frozen=True)
class ImportedSecret:
    key: str
    config_key: str  # without the namespace
    origin: str
    source: str
    reason: str


@dataclass
class ImportProposal:
    service: str
    stack: str
    app_schema: str
    section: dict[str, Any]  # the service as this stack sees it (base and overlay merged)
    declarations: dict[str, dict[str, Any]]  # full config key -> declaration (new ones only)
    secrets: list[ImportedSecret]
    notes: list[str]
    # catalog file -> its document (None: `null`, the service is not in that stack yet)
    files: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # what validate would say of the result
    # secure keys to grant to the service in Pulumi.yaml (written with the declarations, and
    # reviewed with them by the platform's owners)
    grants: list[str] = field(default_factory=list)

    def pipelines(self, project_dir: Path) -> list[list[list[str]]]:
        """Per secret, the argv of each side of a pipe that sets it from its input, printing
        nothing: `configplane import --emit-value` into `pulumi config set --secret`."""
        cwd = [] if project_dir == Path(".") else ["--cwd", str(project_dir)]
        return [
            [["configplane", "import", "--from", s.source, "--emit-value", s.key],
             ["pulumi", "config", "set", "--secret", f"{NAMESPACE}:{s.config_key}",
              "--stack", self.stack, *cwd]]
            for s in self.secrets
        ]

    def commands(self, project_dir: Path) -> list[str]:
        """The pipelines as shell lines: each argv joined with shlex.join, whatever a path,
        key or stack name holds."""
        return [" | ".join(shlex.join(argv) for argv in pipeline)
                for pipeline in self.pipelines(project_dir)]

    def as_dict(self, project_dir: Path) -> dict[str, Any]:
        return {
            "service": self.service,
            "stack": self.stack,
            "stack_file": stack_file_name(self.stack),
            "catalog_file": catalog_file(self.service, self.stack),
            "section": {self.service: self.section},
            "files": self.files,
            "declarations": self.declarations,
            "secrets": [
                {"key": s.key, "config_key": f"{NAMESPACE}:{s.config_key}", "from": s.origin,
                 "reason": s.reason}
                for s in self.secrets
            ],
            "commands": self.commands(project_dir),
            "pipelines": self.pipelines(project_dir),
            "notes": list(self.notes),
            "problems": list(self.problems),
        }


# --- reading inputs --------------------------------------------------------------------------

def read_input(source: str) -> tuple[list[Entry], list[str]]:
    """Keys and values of one input file, plus notes about what was skipped."""
    path = Path(source)
    try:
        text = read_argument(source).decode("utf-8")
    except ProjectFileError as exc:
        raise ImportProblem(f"{exc}") from None
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ImportProblem(f"{shown(source)}: file not found. Fix: check the --from path.") \
            from None
    except OSError as exc:
        raise ImportProblem(f"{shown(source)}: cannot be read ({exc.strerror}). Fix: check the "
                            "--from path and its permissions.") from None
    except UnicodeDecodeError:
        raise ImportProblem(f"{shown(source)}: not UTF-8 text. Fix: convert it or import by "
                            "hand.") from None
    if path.suffix.lower() in MANIFEST_SUFFIXES:
        return read_manifests(source, text)
    return read_dotenv(source, text), []


def emit_value(sources: list[str], key: str) -> str:
    """The plaintext of one key, for piping into `pulumi config set --secret`."""
    entries = [f for source in sources for f in read_input(source)[0]]
    matches = [f for f in entries if f.key == key] or [
        derived for f in entries if (derived := url_password(f)) and derived.key == key]
    if not matches:
        raise ImportProblem(f"{key} is not in {', '.join(sources)}. Fix: check the key and --from.")
    if len(matches) > 1:
        raise ImportProblem(f"{key} appears {len(matches)} times ({', '.join(m.origin for m in matches)})."
                            " Fix: give the one --from file that holds it.")
    return matches[0].value


def url_password(entry: Entry) -> Entry | None:
    """`<P>_PASSWORD` read from a `<P>_URL` entry's `user:password@` (percent-decoded), when it
    has one: how import delivers a database URL as the pieces of a database secret."""
    if not entry.key.endswith(URL_SUFFIX):
        return None
    try:
        password = urlsplit(entry.value.strip()).password
    except ValueError:
        return None
    if not password:
        return None
    return replace(entry, key=entry.key.removesuffix(URL_SUFFIX) + PASSWORD_SUFFIX,
                   value=unquote(password), origin=f"{entry.origin}, the password in {entry.key}",
                   always_secret=True)


# --- planning --------------------------------------------------------------------------------

def plan_import(project_dir: Path, stack: str, service: str, sources: list[str],
                app_schema: str | None = None, store: str = "vault",
                owners: Sequence[str] = (), detector: Detector | None = None) -> ImportProposal:
    """What importing `sources` as `service` in `stack` writes: a new service gets its base
    (services/<name>/service.yaml, with its owners) and this stack's overlay, split by the
    project's parity rules (what may differ between environments goes to the overlay), and a
    `null` overlay for every other stack until it is imported there; an existing service
    gets the overlay of what differs from its base. `detector`: the run's (the project's
    pack); None, that of `project_dir`."""
    from configplane.redaction import plaintext_rules

    try:
        check_stack_name(stack)
    except StackFileError as exc:
        raise ImportProblem(str(exc)) from None
    if not re.fullmatch(DNS_LABEL, service) or len(service) > 63:
        raise ImportProblem(f"service name `{shown(service)}` is not an RFC 1123 label (lowercase "
                            "letters, digits, '-'). Fix: choose another name.")
    project = read_project_file(project_dir)
    base = _existing_base(project_dir, service)
    inherited = (base or {}).get("app_schema")
    schema_name = app_schema or inherited
    schemas = project_dir / "schemas" / "services"
    available = sorted(p.name.removesuffix(".schema.json") for p in schemas.glob("*.schema.json"))
    if schema_name is None:
        raise ImportProblem(f"service `{service}` is new: it needs --app-schema. Fix: use one of "
                            f"{', '.join(available)}.")
    schema_file = f"schemas/services/{schema_name}.schema.json"
    if not re.fullmatch(DNS_LABEL, schema_name) or not is_file(project_dir, schema_file):
        raise ImportProblem(f"unknown app schema `{shown(schema_name)}`. Fix: use one of "
                            f"{', '.join(available)} or add "
                            f"schemas/services/{shown(schema_name)}.schema.json.")
    try:
        schema = json.loads(read_text(project_dir, schema_file))
    except ProjectFileError as exc:
        raise ImportProblem(str(exc)) from None

    found: list[Entry] = []
    notes: list[str] = []
    for source in sources:
        entries, skipped = read_input(source)
        found.extend(entries)
        notes.extend(skipped)
    seen: dict[str, str] = {}
    for entry in found:
        if entry.key in seen:
            raise ImportProblem(f"{entry.key} is in both {seen[entry.key]} and {entry.origin}. "
                                "Fix: remove one of them, or import them separately.")
        seen[entry.key] = entry.origin
        if not re.fullmatch(CONFIGMAP_DATA_KEY, entry.key):
            raise ImportProblem(f"{entry.origin}: key `{entry.key}` cannot be a ConfigMap or "
                                "Secret key. Fix: rename it (letters, digits, '-', '_', '.').")
    found, from_urls = _database_urls(found, schema)
    if base is None and not owners:
        raise ImportProblem(f"service `{service}` is new: it needs its owners, who review "
                            f"{CATALOG_DIR}/{service}/ (CODEOWNERS). Fix: add --owner @org/team "
                            "(repeat for several).")

    detector = detector or detector_for(project_dir)
    config: dict[str, Any] = {}
    secrets: list[ImportedSecret] = []
    for entry in found:
        if entry.key in from_urls.get("passwords", {}):
            reason = "a database URL's password"
        elif entry.always_secret:
            reason = "a Kubernetes Secret"
        else:  # the decision validate makes of a plain value (configplane.redaction)
            rules = plaintext_rules(entry.key, entry.value, detector) if entry.value else ()
            if not rules:
                config[entry.key] = _typed(entry.value, schema.get("properties", {}).get(entry.key))
                continue
            reason = "looks like a secret: " + ", ".join(rules)
        secrets.append(ImportedSecret(entry.key, config_key_for(service, entry.key), entry.origin,
                                      entry.source, reason))
    del found  # plaintext ends here; everything below holds names only

    declarations: dict[str, dict[str, Any]] = {}
    grants = _granted_keys(project.values)
    in_stack_file = _stack_keys(project_dir, stack)
    for secret in secrets:
        full = f"{NAMESPACE}:{secret.config_key}"
        if full in in_stack_file:  # the printed `pulumi config set` would overwrite it
            raise ImportProblem(
                f"{secret.origin}: {secret.key} would become `{full}`, which "
                f"{stack_file_name(stack)} sets already: import never overwrites a value. Fix: "
                f"rename the entry in the input, or, if it is {service}'s own key and you mean "
                f"to replace its value, run `pulumi config set --secret {full} --stack {stack}` "
                "yourself.")
        if full in project.declarations or full in project.values:
            if grants.get(secret.config_key) == service:
                continue  # the service's own key, declared already: only this stack's value
            # another owner's key (a service's, or the platform's): mapping this entry onto
            # it would hand that key's value to this service
            raise ImportProblem(
                f"{secret.origin}: {secret.key} would become `{full}`, which {PROJECT_FILE} "
                f"declares for {ownership.secure_key_owner(secret.config_key, grants)}: import "
                f"never maps an entry onto a key {service} does not own. Fix: rename the entry "
                "in the input.")
        if full in declarations:
            raise ImportProblem(f"{secret.key} and another key both map to `{full}`. Fix: rename one.")
        declarations[full] = {"type": "string", "secret": True,
                              "description": f"{secret.key} of the {service} service "
                                             f"(imported from {secret.origin})"}

    databases, delivered = _database_secrets(service, schema, config, secrets, notes,
                                             from_urls.get("facts", {}))
    section: dict[str, Any] = {}
    if base is None:
        section["owners"] = list(owners)
    elif owners:
        notes.append(f"--owner ignored: {CATALOG_DIR}/{service}/{SERVICE_FILE} names the "
                     "service's owners. Fix: edit them there.")
    if app_schema is not None and app_schema != inherited:
        section["app_schema"] = app_schema
    if config:
        section["config"] = config
    if secrets:
        section["secrets"] = {
            s.key: {"source": "secure", "store": "aws" if databases.get(s.key) else store,
                    "config_key": s.config_key, "description": f"imported from {s.origin}",
                    **({"database": databases[s.key]} if databases.get(s.key) else {})}
            for s in secrets
        }
    notes.extend(_schema_notes(schema_name, schema, {**((base or {}).get("config") or {}),
                                                     **config}, delivered))
    ungranted = [s.config_key for s in secrets if grants.get(s.config_key) != service]
    if ungranted:
        notes.append(f"grants {', '.join(ungranted)} to {service} in {PROJECT_FILE} "
                     f"(platform.grants.secure_keys.{service}): a platform file, so the "
                     "platform's owners review the grant with the declarations (CODEOWNERS).")
    files = _catalog_files(project_dir, service, stack, section, base)
    return ImportProposal(service, stack, schema_name, section, declarations, secrets, notes,
                          files, grants=ungranted)


def _database_urls(found: list[Entry], schema: Mapping[str, Any]
                   ) -> tuple[list[Entry], dict[str, dict[str, Any]]]:
    """Where the app schema takes `<P>_HOST` and the rest from a database secret, a `<P>_URL`
    input is that secret's pieces, not a second secret delivering `<P>_URL` again: its user,
    host, port and database fill the secret's `database`, and its password is `<P>_PASSWORD`
    when the inputs have none. Returns the entries without the URLs (with the passwords
    read from them) and {"facts": {prefix: fields}, "passwords": {key: url key}}."""
    from_secret = set(schema.get(SCHEMA_SECRET_KEYS, []))
    keys = {entry.key for entry in found}
    kept: list[Entry] = []
    facts: dict[str, dict[str, Any]] = {}
    passwords: dict[str, str] = {}
    for entry in found:
        prefix = entry.key.removesuffix(URL_SUFFIX)
        if not entry.key.endswith(URL_SUFFIX) or f"{prefix}_HOST" not in from_secret:
            kept.append(entry)
            continue
        try:
            url = urlsplit(entry.value.strip())
            fields = {"username": unquote(url.username or ""), "host": url.hostname or "",
                      "port": url.port, "dbname": unquote(url.path.lstrip("/"))}
        except ValueError:  # not a URL: validate says why it cannot be config
            kept.append(entry)
            continue
        facts[prefix] = {k: v for k, v in fields.items() if v}
        password = url_password(entry)
        if password is not None and password.key not in keys:
            kept.append(password)
            passwords[password.key] = entry.key
    return kept, {"facts": facts, "passwords": passwords}


_TYPES = {"integer": int, "number": float, "boolean": bool}


def _typed(value: str, prop: Any) -> Any:
    """The value typed as the app schema wants it, when that renders back to the same string."""
    kind = prop.get("type") if isinstance(prop, Mapping) else None
    if kind not in _TYPES:
        return value
    try:
        if kind == "boolean":
            typed: Any = {"true": True, "false": False}[value]
        elif kind == "integer" or re.fullmatch(r"-?\d+", value):
            typed = int(value)
        else:
            typed = float(value)
    except (KeyError, ValueError):
        return value  # validation will say what is wrong with it
    return typed if render_value(typed) == value else value  # "08" stays "08": same ConfigMap


def _database_secrets(service: str, schema: Mapping[str, Any], config: dict[str, Any],
                      secrets: list[ImportedSecret], notes: list[str],
                      facts: Mapping[str, Mapping[str, Any]] | None = None
                      ) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Where the app schema takes `<P>_HOST` etc. from a secret (configplane.model.delivery), the
    imported `<P>_PASSWORD` becomes a Secrets Manager database secret and `<P>_USER`, `_HOST`,
    `_PORT`, `_NAME` move from config into its `database` block (what a `<P>_URL` said fills
    the rest). Returns the blocks by secret key (none empty), and every pod key the section's
    secrets deliver."""
    from_secret = set(schema.get(SCHEMA_SECRET_KEYS, []))
    databases: dict[str, dict[str, Any]] = {}
    delivered = {s.key for s in secrets}
    for secret in secrets:
        prefix = prefix_of(secret.key)
        if not secret.key.endswith(PASSWORD_SUFFIX) or f"{prefix}_HOST" not in from_secret:
            continue
        database: dict[str, Any] = {}
        for suffix, name in DATABASE_FIELDS:
            if suffix != PASSWORD_SUFFIX and prefix + suffix in config:
                value = config.pop(prefix + suffix)
                database[name] = int(value) if name == "port" and re.fullmatch(
                    r"\d{1,5}", str(value)) else value
        for name, value in (facts or {}).get(prefix, {}).items():
            database.setdefault(name, value)
        lacking = [prefix + suffix for suffix, name in DATABASE_FIELDS
                   if name in ("host", "dbname", "username") and name not in database]
        if lacking:
            notes.append(f"{', '.join(lacking)} not found in the inputs. Fix: set "
                         f"services.{service}.secrets.{secret.key}.database."
                         f"{{host, dbname, username}}.")
        if database:
            databases[secret.key] = database
            delivered |= {prefix + suffix for suffix, _ in DATABASE_FIELDS} | {prefix + URL_SUFFIX}
    return databases, delivered


def _schema_notes(name: str, schema: Mapping[str, Any], config: Mapping[str, Any],
                  delivered: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    notes = []
    known = schema.get("properties", {})
    if schema.get("additionalProperties") is False:
        extra = sorted(set(config) - set(known))
        if extra:
            notes.append(f"not in app schema {name}: {', '.join(extra)}; validation will reject "
                         f"them. Fix: add them to schemas/services/{name}.schema.json.")
    missing = sorted(set(schema.get("required", [])) - set(config) - set(delivered))
    if missing:
        notes.append(f"app schema {name} requires {', '.join(missing)}, not imported. Fix: add "
                     "them to the section.")
    return notes


# --- writing ---------------------------------------------------------------------------------

def _granted_keys(values: Mapping[str, Any]) -> dict[str, str]:
    """Each secure key the platform granted -> its service (`platform.grants.secure_keys` of
    Pulumi.yaml's platform defaults), read leniently: validate judges the grants themselves."""
    node: Any = values.get(f"{NAMESPACE}:defaults")
    for key in ("platform", "grants", "secure_keys"):
        node = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        return {}
    return ownership.granted({str(service): [str(k) for k in keys if isinstance(k, str)]
                              for service, keys in node.items() if isinstance(keys, list)})


def _stack_keys(project_dir: Path, stack: str) -> set[str]:
    """The config keys the stack file sets (a key with a value exists, declared or not)."""
    stack_file = stack_file_name(stack)
    if not is_file(project_dir, stack_file):
        return set()
    try:
        document = load(project_dir, stack_file).document
    except YamlError as exc:
        raise ImportProblem(str(exc)) from None
    config = document.get("config") if isinstance(document, dict) else None
    return {str(key) if ":" in str(key) else f"{NAMESPACE}:{key}"
            for key in (config if isinstance(config, dict) else {})}


def catalog_file(service: str, stack: str) -> str:
    """Where an imported section goes: the service's overlay for the stack."""
    return f"{CATALOG_DIR}/{service}/{stack}.yaml"


def _existing_base(project_dir: Path, service: str) -> dict[str, Any] | None:
    """The service's base as it stands (services/<name>/service.yaml), or None for a new
    service. A service still in Pulumi config (the layout before the catalog) is refused."""
    project = read_project_file(project_dir)
    legacy = ((project.values.get(DEFAULTS_KEY) or {}).get("services") or {})
    if isinstance(legacy, Mapping) and service in legacy:
        raise ImportProblem(f"{PROJECT_FILE}: service `{service}` is still in Pulumi config. "
                            "Fix: run `configplane migrate --write` first.")
    base = f"{CATALOG_DIR}/{service}/{SERVICE_FILE}"
    if not is_file(project_dir, base):
        return None
    try:
        document = load(project_dir, base).document
    except YamlError as exc:
        raise ImportProblem(str(exc)) from None
    return document if isinstance(document, dict) else {}


_MISSING = object()


def _catalog_files(project_dir: Path, service: str, stack: str, section: dict[str, Any],
                   base: dict[str, Any] | None) -> dict[str, Any]:
    """The catalog files the import writes: file -> document (None: `null`)."""
    overlay_path = catalog_file(service, stack)
    if base is not None:
        overlay = _difference(_with_descriptions_of(section, base), base)
        return {overlay_path: {} if overlay is _MISSING else overlay}
    try:
        expectations = load_expectations(project_dir)
    except ParityConfigError as exc:
        raise ImportProblem(str(exc)) from None
    covered = [e.regex for e in expectations]
    new_base, overlay = _split(section, ("services", service),
                               lambda path: any(r.match(".".join(path)) for r in covered))
    files: dict[str, Any] = {f"{CATALOG_DIR}/{service}/{SERVICE_FILE}":
                             {} if new_base is _MISSING else new_base}
    if overlay is not _MISSING:
        files[overlay_path] = overlay
    for other in sorted(p.name[len("Pulumi."):-len(".yaml")]
                        for p in project_dir.glob("Pulumi.*.yaml")):
        if other != stack:
            files[catalog_file(service, other)] = None
    return files


def _split(value: Any, path: tuple[str, ...], covered: Any) -> tuple[Any, Any]:
    """(base, overlay) of `value`: what the parity rules say may differ between environments
    goes to the overlay, the rest to the base (_MISSING where a side gets nothing)."""
    if covered(path):
        return _MISSING, value
    if not isinstance(value, dict) or not value:
        return value, _MISSING
    base, overlay = {}, {}
    for key, item in value.items():
        b, o = _split(item, (*path, str(key)), covered)
        if b is not _MISSING:
            base[key] = b
        if o is not _MISSING:
            overlay[key] = o
    return (base or _MISSING), (overlay or _MISSING)


def _difference(new: Any, old: Any) -> Any:
    """What of `new` differs from `old`, leaf by leaf (_MISSING: nothing)."""
    if isinstance(new, dict) and isinstance(old, dict):
        out = {}
        for key, item in new.items():
            found = _difference(item, old[key]) if key in old else item
            if found is not _MISSING:
                out[key] = found
        return out or _MISSING
    return _MISSING if new == old else new


def _with_descriptions_of(section: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The section with each secret's description as the base has it: where a value was
    imported from is not a difference between environments."""
    secrets = {key: {**spec, "description": base_spec["description"]}
               if isinstance(base_spec := (base.get("secrets") or {}).get(key), dict)
               and "description" in base_spec else spec
               for key, spec in (section.get("secrets") or {}).items()}
    return {**section, **({"secrets": secrets} if secrets else {})}
