"""The import plan: classify what the inputs hold (secret or config), type config values as
the service's app schema wants them (its kind's, composed with its own schema.json as validate
composes it), turn each secret into a `source: secure` reference with its
Pulumi.yaml declaration, and say how to set it (`--emit-value` piped into `pulumi config set
--secret`). Plaintext values live only while classifying; the plan holds names only.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
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
    SchemaFileError,
    StackFileError,
    YamlError,
    check_stack_name,
    environments,
    load,
    load_validator,
    read_project_file,
    service_validator,
    shard_stack_files,
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
    shown,
)
from configplane.redaction import Detector, detector_for
from configplane.service_schema import SERVICE_SCHEMA_FILE

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
    # the stack whose file holds the secure values: the service's shard in a split
    # environment (docs/fleet.md), set once the result is placed (result_problems); else `stack`
    secret_stack: str | None = None

    def pipelines(self, project_dir: Path) -> list[list[list[str]]]:
        """Per secret, the argv of each side of a pipe that sets it from its input, printing
        nothing: `configplane import --emit-value` into `pulumi config set --secret`."""
        cwd = [] if project_dir == Path(".") else ["--cwd", str(project_dir)]
        return [
            [["configplane", "import", "--from", s.source, "--emit-value", s.key],
             ["pulumi", "config", "set", "--secret", f"{NAMESPACE}:{s.config_key}",
              "--stack", self.secret_stack or self.stack, *cwd]]
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
            "secret_stack": self.secret_stack or self.stack,
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
        # utf-8-sig: a byte order mark (Windows editors write one) is not part of the first key
        text = read_argument(source).decode("utf-8-sig")
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
                owners: Sequence[str] = (), detector: Detector | None = None,
                known: Callable[[str], bool] = lambda value: False) -> ImportProposal:
    """What importing `sources` as `service` in `stack` writes: a new service gets its base
    (services/<name>/service.yaml, with its owners) and this stack's overlay, split by the
    project's parity rules (what may differ between environments goes to the overlay), and a
    `null` overlay for every other stack until it is imported there; an existing service
    gets the overlay of what differs from its base. `detector`: the run's (the project's
    pack); None, that of `project_dir`. `known`: whether a value is already a secret for the
    running command (a stack's secret pasted into the input): such a value is moved out like
    one the detector flags, so nothing the screen would hide is ever written to a catalog
    file."""
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
    schema_name, schema_file, schema = _app_schema(project_dir, service, app_schema or inherited)
    detector = detector or detector_for(project_dir)
    schema, schema_title = _service_schema(project_dir, service, schema_file, schema, detector)
    found, notes, seen = _read_entries(sources, detector)
    found, from_urls = _database_urls(found, schema)
    if base is None and not owners:
        raise ImportProblem(f"service `{service}` is new: it needs its owners, who review "
                            f"{CATALOG_DIR}/{service}/ (CODEOWNERS). Fix: add --owner @org/team "
                            "(repeat for several).")

    config: dict[str, Any] = {}
    secrets: list[ImportedSecret] = []
    for entry in found:
        if entry.key in from_urls.get("passwords", {}):
            reason = "a database URL's password"
        elif entry.always_secret:
            reason = "a Kubernetes Secret"
        else:  # the decision validate makes of a plain value (configplane.redaction)
            rules = plaintext_rules(entry.key, entry.value, detector) if entry.value else ()
            if rules:
                reason = "looks like a secret: " + ", ".join(rules)
            elif entry.value and known(entry.value):
                reason = "a value the stack already holds as a secret"
            else:
                config[entry.key] = _typed(entry.value, schema.get("properties", {}).get(entry.key))
                continue
        secrets.append(ImportedSecret(entry.key, config_key_for(service, entry.key), entry.origin,
                                      entry.source, reason))
    del found  # plaintext ends here; everything below holds names only

    grants = _granted_keys(project.values)
    declarations = _declarations(set(project.declarations) | set(project.values),
                                 _stack_keys(project_dir, stack), grants, service, secrets)
    databases, delivered = _database_secrets(service, schema, config, secrets, notes, seen,
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
    notes.extend(_schema_notes(service, schema_title, schema,
                               {**((base or {}).get("config") or {}), **config}, delivered))
    ungranted = [s.config_key for s in secrets if grants.get(s.config_key) != service]
    if ungranted:
        notes.append(f"grants {', '.join(ungranted)} to {service} in {PROJECT_FILE} "
                     f"(platform.grants.secure_keys.{service}): a platform file, so the "
                     "platform's owners review the grant with the declarations (CODEOWNERS).")
    files = _catalog_files(project_dir, service, stack, section, base)
    return ImportProposal(service, stack, schema_name, section, declarations, secrets, notes,
                          files, grants=ungranted)


def _service_schema(project_dir: Path, service: str, schema_file: str,
                    kind: dict[str, Any], detector: Detector) -> tuple[dict[str, Any], str]:
    """The app schema validate applies to the service (and its name in notes): the kind's,
    composed with the service's own `schema.json` when it has one. A file that cannot be used
    leaves the kind's: validating the result (`result_problems`) names each of its problems."""
    own = ownership.service_directory(service) + SERVICE_SCHEMA_FILE
    title = Path(schema_file).name.removesuffix(".schema.json")
    try:
        kind_validator = load_validator(project_dir / schema_file)
        composed, problems = service_validator(kind_validator, project_dir, own,
                                               lambda key: detector.key_kind(key).secret_slot)
    except (SchemaFileError, ProjectFileError):
        return kind, title  # the kind's file itself: validate reports it
    if composed is None or composed is kind_validator or problems \
            or not isinstance(composed.schema, Mapping):
        return kind, title
    return dict(composed.schema), f"{title} + {own}"


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


def _app_schema(project_dir: Path, service: str, schema_name: str | None
                ) -> tuple[str, str, dict[str, Any]]:
    """The kind's app schema the service is imported against (--app-schema, else its base's):
    its name, file and document, through the validator the stack's checks use (JSON, and a
    valid JSON Schema, or a message)."""
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
        document = load_validator(project_dir / schema_file).schema
    except SchemaFileError as exc:
        raise ImportProblem(f"{exc}") from None
    schema = dict(document) if isinstance(document, Mapping) else {}
    if not isinstance(document, Mapping) or \
            not isinstance(schema.get("properties", {}), Mapping) or \
            not isinstance(schema.get("required", []), list):
        raise ImportProblem(f"{schema_file}: the schema must be an object, its `properties` an "
                            "object and `required` a list. Fix: correct the app schema.")
    return schema_name, schema_file, schema


def _read_entries(sources: list[str], detector: Detector
                  ) -> tuple[list[Entry], list[str], dict[str, str]]:
    """Every key of every source (each key once, each a valid ConfigMap key that does not look
    like a credential), the notes on what was skipped, and each key's origin."""
    from configplane.redaction import detect_name

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
        if rules := detect_name(entry.key, detector):  # a name is written and shown
            raise ImportProblem(f"{entry.origin}: a key looks like a credential "
                                f"({', '.join(rules)}); keys are written into the catalog and "
                                "shown, so it is neither. Fix: rename it, and rotate the "
                                "exposed value.")
    return found, notes, seen


def _declarations(declared: set[str], in_stack_file: Mapping[str, str], grants: Mapping[str, str],
                  service: str, secrets: list[ImportedSecret]) -> dict[str, dict[str, Any]]:
    """The `secret: true` declarations Pulumi.yaml needs for the imported secrets (new ones
    only). `declared`: the keys Pulumi.yaml declares or sets; `in_stack_file`: those the stack
    files set (each with its file: the environment's or a shard's); `grants`: secure key ->
    the service it is granted to. An entry never lands on a key a stack file sets (the printed
    `pulumi config set` would overwrite it) nor on a declared key the service does not own;
    the service's own declared key is reused."""
    declarations: dict[str, dict[str, Any]] = {}
    for secret in secrets:
        full = f"{NAMESPACE}:{secret.config_key}"
        if full in in_stack_file:  # the printed `pulumi config set` would overwrite it
            file = in_stack_file[full]
            raise ImportProblem(
                f"{secret.origin}: {secret.key} would become `{full}`, which {file} sets "
                f"already: import never overwrites a value. Fix: rename the entry in the input, "
                f"or, if it is {service}'s own key and you mean to replace its value, run "
                f"`pulumi config set --secret {full} --stack "
                f"{file.removeprefix('Pulumi.').removesuffix('.yaml')}` yourself.")
        if full in declared:
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
    return declarations


_TYPES = {"integer": int, "number": float, "boolean": bool}


def _declared_type(prop: Any) -> Any:
    """A property's `type`, or that of a part of its `allOf` (a kind's key a service's own
    schema narrows is `allOf: [kind's, service's]`)."""
    if not isinstance(prop, Mapping):
        return None
    if "type" in prop:
        return prop["type"]
    parts = prop.get("allOf")
    return next((t for t in map(_declared_type, parts) if t is not None), None) \
        if isinstance(parts, list) else None


def _typed(value: str, prop: Any) -> Any:
    """The value typed as the app schema wants it, when that renders back to the same string."""
    kind = _declared_type(prop)
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
                      origins: Mapping[str, str],
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
                if name == "port":
                    value = _port(value, origins[prefix + suffix], prefix + suffix)
                database[name] = value
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


def _port(value: Any, origin: str, key: str) -> int:
    text = str(value) if not isinstance(value, bool) else ""
    if re.fullmatch(r"[0-9]{1,5}", text) and 0 < int(text) < 65536:
        return int(text)
    raise ImportProblem(f"{origin}: {key} is not a port number (1-65535). Fix: correct it in "
                        "the input.")


def _schema_notes(service: str, name: str, schema: Mapping[str, Any],
                  config: Mapping[str, Any], delivered: set[str] = frozenset()  # type: ignore[assignment]
                  ) -> list[str]:
    notes = []
    known = schema.get("properties", {})
    if schema.get("additionalProperties") is False:
        extra = sorted(set(config) - set(known))
        if extra:
            notes.append(f"not in app schema {name}: {', '.join(extra)}; validation will reject "
                         f"them. Fix: declare them in {ownership.service_directory(service)}"
                         f"{SERVICE_SCHEMA_FILE} (the service's own schema, "
                         "docs/configuration.md), or leave them out.")
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


def _stack_keys(project_dir: Path, stack: str) -> dict[str, str]:
    """The config keys the environment's stack files set (its own and its shards': a key with
    a value exists, declared or not, in whichever file holds it)."""
    keys: dict[str, str] = {}  # full key -> the file that sets it
    for name in (stack, *shard_stack_files(project_dir, stack)):
        stack_file = stack_file_name(name)
        if not is_file(project_dir, stack_file):
            continue
        try:
            document = load(project_dir, stack_file).document
        except YamlError as exc:
            raise ImportProblem(str(exc)) from None
        config = document.get("config") if isinstance(document, dict) else None
        for key in (config if isinstance(config, dict) else {}):
            keys.setdefault(str(key) if ":" in str(key) else f"{NAMESPACE}:{key}", stack_file)
    return keys


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
    for other in environments(project_dir):  # a shard's own stack file is no environment
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
