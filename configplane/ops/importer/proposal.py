"""The import plan: classify what the inputs hold (secret or config), type config values as
the app schema wants them, turn each secret into a `source: secure` reference with its
Pulumi.yaml declaration, and say how to set it (`--emit-value` piped into `pulumi config set
--secret`). Plaintext values live only while classifying; the plan holds names only.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configplane.contract import CONFIGMAP_DATA_KEY, DNS_LABEL, SCHEMA_SECRET_KEYS
from configplane.inputs import (
    CATALOG_DIR,
    DEFAULTS_KEY,
    NAMESPACE,
    PROJECT_FILE,
    SERVICE_FILE,
    YamlError,
    load,
    read_project_file,
    stack_file_name,
)
from configplane.model import DATABASE_FIELDS, PASSWORD_SUFFIX, URL_SUFFIX, prefix_of, render_value
from configplane.ops.importer.entry import Entry, ImportProblem
from configplane.ops.importer.envfile import read_dotenv
from configplane.ops.importer.manifests import read_manifests
from configplane.ownership import config_key_for

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
    section: dict[str, Any]
    declarations: dict[str, dict[str, Any]]  # full config key -> declaration (new ones only)
    secrets: list[ImportedSecret]
    notes: list[str]

    def commands(self, project_dir: Path) -> list[str]:
        """Shell commands that set each secret from its input, printing nothing."""
        cwd = "" if project_dir == Path(".") else f" --cwd {shlex.quote(str(project_dir))}"
        return [
            f"configplane import --from {shlex.quote(s.source)} --emit-value {shlex.quote(s.key)}"
            f" | pulumi config set --secret {NAMESPACE}:{s.config_key} --stack "
            f"{shlex.quote(self.stack)}{cwd}"
            for s in self.secrets
        ]

    def as_dict(self, project_dir: Path) -> dict[str, Any]:
        return {
            "service": self.service,
            "stack": self.stack,
            "stack_file": stack_file_name(self.stack),
            "catalog_file": catalog_file(self.service, self.stack),
            "section": {self.service: self.section},
            "declarations": self.declarations,
            "secrets": [
                {"key": s.key, "config_key": f"{NAMESPACE}:{s.config_key}", "from": s.origin,
                 "reason": s.reason}
                for s in self.secrets
            ],
            "commands": self.commands(project_dir),
            "notes": list(self.notes),
        }


# --- reading inputs --------------------------------------------------------------------------

def read_input(source: str) -> tuple[list[Entry], list[str]]:
    """Keys and values of one input file, plus notes about what was skipped."""
    path = Path(source)
    if not path.is_file():
        raise ImportProblem(f"{source}: file not found. Fix: check the --from path.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ImportProblem(f"{source}: not UTF-8 text. Fix: convert it or import by hand.") from None
    if path.suffix.lower() in MANIFEST_SUFFIXES:
        return read_manifests(source, text)
    return read_dotenv(source, text), []


def emit_value(sources: list[str], key: str) -> str:
    """The plaintext of one key, for piping into `pulumi config set --secret`."""
    matches = [f for source in sources for f in read_input(source)[0] if f.key == key]
    if not matches:
        raise ImportProblem(f"{key} is not in {', '.join(sources)}. Fix: check the key and --from.")
    if len(matches) > 1:
        raise ImportProblem(f"{key} appears {len(matches)} times ({', '.join(m.origin for m in matches)})."
                            " Fix: give the one --from file that holds it.")
    return matches[0].value


# --- planning --------------------------------------------------------------------------------

def plan_import(project_dir: Path, stack: str, service: str, sources: list[str],
                app_schema: str | None = None, store: str = "vault") -> ImportProposal:
    from configplane.redaction import load_detector

    if not re.fullmatch(DNS_LABEL, service) or len(service) > 63:
        raise ImportProblem(f"service name `{service}` is not an RFC 1123 label (lowercase "
                            "letters, digits, '-'). Fix: choose another name.")
    project = read_project_file(project_dir)
    defaults = _existing_base(project_dir, service)
    inherited = defaults.get("app_schema")
    schema_name, schema = _app_schema(project_dir, service, app_schema or inherited)
    found, notes = _read_entries(sources)

    detector = load_detector()
    config: dict[str, Any] = {}
    secrets: list[ImportedSecret] = []
    for entry in found:
        if entry.always_secret:
            reason = "a Kubernetes Secret"
        else:
            finding = detector.scan(entry.key, entry.value) if entry.value else None
            if finding is None or not finding.secret:
                config[entry.key] = _typed(entry.value, schema.get("properties", {}).get(entry.key))
                continue
            reason = "looks like a secret: " + ", ".join(finding.rules)
        secrets.append(ImportedSecret(entry.key, config_key_for(service, entry.key), entry.origin,
                                      entry.source, reason))
    del found  # plaintext ends here; everything below holds names only

    existing = set(project.declarations) | set(project.values) | _stack_keys(project_dir, stack)
    declarations = _declarations(existing, service, stack, secrets)
    databases, delivered = _database_secrets(service, schema, config, secrets, notes)
    section: dict[str, Any] = {}
    if app_schema is not None and app_schema != inherited:
        section["app_schema"] = app_schema
    if config:
        section["config"] = config
    if secrets:
        section["secrets"] = {
            s.key: {"source": "secure", "store": "aws" if s.key in databases else store,
                    "config_key": s.config_key, "description": f"imported from {s.origin}",
                    **({"database": databases[s.key]} if s.key in databases else {})}
            for s in secrets
        }
    notes.extend(_schema_notes(schema_name, schema, {**(defaults.get("config") or {}), **config},
                               delivered))
    if secrets:
        notes.append(f"the platform grants each secure key to its service: add "
                     f"{', '.join(s.config_key for s in secrets)} to "
                     f"platform.grants.secure_keys.{service} in {PROJECT_FILE} (a platform "
                     "decision, reviewed by the platform owners), or validate refuses them.")
    return ImportProposal(service, stack, schema_name, section, declarations, secrets, notes)


def _app_schema(project_dir: Path, service: str, schema_name: str | None) -> tuple[str, Any]:
    """The app schema the service is imported against (--app-schema, else its base's)."""
    schemas = project_dir / "schemas" / "services"
    available = sorted(p.name.removesuffix(".schema.json") for p in schemas.glob("*.schema.json"))
    if schema_name is None:
        raise ImportProblem(f"service `{service}` is new: it needs --app-schema. Fix: use one of "
                            f"{', '.join(available)}.")
    schema_file = schemas / f"{schema_name}.schema.json"
    if not re.fullmatch(DNS_LABEL, schema_name) or not schema_file.is_file():
        raise ImportProblem(f"unknown app schema `{schema_name}`. Fix: use one of "
                            f"{', '.join(available)} or add schemas/services/{schema_name}.schema.json.")
    return schema_name, json.loads(schema_file.read_text())


def _read_entries(sources: list[str]) -> tuple[list[Entry], list[str]]:
    """Every key of every source (each key once, each a valid ConfigMap key), and the notes
    on what was skipped."""
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
    return found, notes


def _declarations(existing: set[str], service: str, stack: str,
                  secrets: list[ImportedSecret]) -> dict[str, dict[str, Any]]:
    """The `secret: true` declarations Pulumi.yaml needs for the imported secrets; none may
    land on a key that exists already (`existing`: declared, or set in a Pulumi file)."""
    declarations: dict[str, dict[str, Any]] = {}
    for secret in secrets:
        full = f"{NAMESPACE}:{secret.config_key}"
        if full in existing:
            # an existing key has an owner and maybe a value: mapping this entry onto it
            # would hand its value to this service, and the printed `pulumi config set` would
            # overwrite it
            raise ImportProblem(
                f"{secret.origin}: {secret.key} would become `{full}`, which exists already "
                f"({PROJECT_FILE} or {stack_file_name(stack)}): import never maps an entry onto "
                "an existing key nor overwrites one. Fix: rename the entry in the input, or, if "
                f"it is {service}'s own key and you mean to replace its value, run `pulumi config "
                f"set --secret {full} --stack {stack}` yourself.")
        if full in declarations:
            raise ImportProblem(f"{secret.key} and another key both map to `{full}`. Fix: rename one.")
        declarations[full] = {"type": "string", "secret": True,
                              "description": f"{secret.key} of the {service} service "
                                             f"(imported from {secret.origin})"}
    return declarations


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
                      secrets: list[ImportedSecret],
                      notes: list[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Where the app schema takes `<P>_HOST` etc. from a secret (configplane.model.delivery), the
    imported `<P>_PASSWORD` becomes a Secrets Manager database secret and `<P>_USER`, `_HOST`,
    `_PORT`, `_NAME` move from config into its `database` block. Returns the blocks by secret
    key, and every pod key the section's secrets deliver."""
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
                database[name] = int(value) if name == "port" else value
        lacking = [prefix + suffix for suffix, name in DATABASE_FIELDS
                   if name in ("host", "dbname", "username") and name not in database]
        if lacking:
            notes.append(f"{', '.join(lacking)} not found in the inputs. Fix: set "
                         f"services.{service}.secrets.{secret.key}.database."
                         f"{{host, dbname, username}} in the stack file.")
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

def _stack_keys(project_dir: Path, stack: str) -> set[str]:
    """The config keys the stack file sets (a key with a value exists, declared or not)."""
    path = project_dir / stack_file_name(stack)
    if not path.is_file():
        return set()
    try:
        document = load(path, stack_file_name(stack)).document
    except YamlError as exc:
        raise ImportProblem(str(exc)) from None
    config = document.get("config") if isinstance(document, dict) else None
    return {str(key) if ":" in str(key) else f"{NAMESPACE}:{key}"
            for key in (config if isinstance(config, dict) else {})}


def catalog_file(service: str, stack: str) -> str:
    """Where an imported section goes: the service's overlay for the stack."""
    return f"{CATALOG_DIR}/{service}/{stack}.yaml"


def _existing_base(project_dir: Path, service: str) -> dict[str, Any]:
    """The service's base as it stands: services/<name>/service.yaml, or (the layout
    before the catalog) its entry in Pulumi.yaml's defaults; {} for a new service."""
    base = project_dir / CATALOG_DIR / service / SERVICE_FILE
    if base.is_file():
        try:
            document = load(base, f"{CATALOG_DIR}/{service}/{SERVICE_FILE}").document
        except YamlError as exc:
            raise ImportProblem(str(exc)) from None
    else:
        project = read_project_file(project_dir)
        document = ((project.values.get(DEFAULTS_KEY) or {}).get("services") or {}).get(service)
    return document if isinstance(document, dict) else {}
