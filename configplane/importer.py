"""Adopt existing configuration: a `.env` file or Kubernetes ConfigMap/Secret manifests.

The result is a service's section for one stack (services/<name>/<stack>.yaml). Every secret
is moved out of it: the keys of a Secret manifest always, and any ConfigMap or .env value the
pack's plaintext detector flags. A secret becomes `source: secure` with a `config_key`,
declared in Pulumi.yaml (`type: string`, `secret: true`); its value is never printed nor
written. The user sets it with a pipe that reads the input file when it runs:

    configplane import --from billing.env --emit-value STRIPE_API_KEY \\
      | pulumi config set --secret configplane:billingStripeApiKey --stack dev

`--emit-value` parses the file exactly as the import did (quotes, base64) and refuses to write
to a terminal; `pulumi config set` reads a piped value from stdin and drops one trailing
newline, which `--emit-value` adds, so values ending in a newline survive.

Writing edits the YAML files as text (the project's files carry comments, and no round-trip
YAML library is installed): the new block is inserted at the end of the right mapping, then
the whole edited file is parsed and compared with the intended document; on any mismatch
nothing is written.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import os
import re
import shlex
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from configplane.catalog import CATALOG_DIR, SERVICE_FILE, load
from configplane.delivery import (
    DATABASE_FIELDS,
    PASSWORD_SUFFIX,
    SCHEMA_SECRET_KEYS,
    URL_SUFFIX,
    prefix_of,
)
from configplane.rendering import render_value
from configplane.service_checks import DATA_KEY, DNS_LABEL
from configplane.stackfiles import (
    DEFAULTS_KEY,
    NAMESPACE,
    PROJECT_FILE,
    SERVICES_KEY,
    read_project_file,
    stack_file_name,
)
from configplane.yamlload import YamlError

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STORES = ("vault", "aws")


class ImportProblem(Exception):
    """Input that cannot be imported; the message names the file and the fix (never a value)."""


@dataclass(frozen=True)
class _Found:
    """One key read from an input. `value` is plaintext: it lives only while classifying."""

    key: str
    value: str = field(repr=False)
    origin: str  # "billing.env line 3", "billing.yaml: Secret billing-secrets"
    source: str  # the input path as the user gave it
    always_secret: bool


@dataclass(frozen=True)
class ImportedSecret:
    key: str
    config_key: str  # without the namespace
    origin: str
    source: str
    reason: str


@dataclass
class ImportPlan:
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

    def to_json(self, project_dir: Path) -> dict[str, Any]:
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

_DOTENV_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)\Z", re.S)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def read_input(source: str) -> tuple[list[_Found], list[str]]:
    """Keys and values of one input file, plus notes about what was skipped."""
    path = Path(source)
    if not path.is_file():
        raise ImportProblem(f"{source}: file not found. Fix: check the --from path.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ImportProblem(f"{source}: not UTF-8 text. Fix: convert it or import by hand.") from None
    if path.suffix.lower() in MANIFEST_SUFFIXES:
        return _read_manifests(source, text)
    return _read_dotenv(source, text), []


def _read_dotenv(source: str, text: str) -> list[_Found]:
    found = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        number, line = i + 1, lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _DOTENV_LINE.match(line)
        if not match:
            raise ImportProblem(f"{source} line {number}: not a KEY=VALUE line. Fix: correct or "
                                "comment it out.")
        key, rest = match.groups()
        if rest[:1] in ("'", '"'):
            quote, body = rest[0], rest[1:]
            while (end := _closing(body, quote)) is None:  # a quoted value may span lines
                if i >= len(lines):
                    raise ImportProblem(f"{source} line {number}: the value of {key} has no "
                                        f"closing {quote}. Fix: close the quote.")
                body += "\n" + lines[i]
                i += 1
            value, tail = body[:end], body[end + 1:].strip()
            if tail and not tail.startswith("#"):
                raise ImportProblem(f"{source} line {number}: text after the quoted value of "
                                    f"{key}. Fix: quote the whole value.")
            if quote == '"':
                value = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[0]), value)
        else:
            value = re.split(r"\s+#", rest, maxsplit=1)[0].strip()
        found.append(_Found(key, value, f"{Path(source).name} line {number}", source, False))
    return found


def _closing(body: str, quote: str) -> int | None:
    if quote == "'":
        end = body.find("'")
        return None if end < 0 else end
    escaped = False
    for n, char in enumerate(body):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return n
    return None


def _read_manifests(source: str, text: str) -> tuple[list[_Found], list[str]]:
    name = Path(source).name
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        # The parser's message quotes the offending line, which may hold a secret: give the line.
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ImportProblem(f"{source}{where}: not valid YAML. Fix: check the manifest "
                            "(e.g. `kubectl apply --dry-run=client -f`).") from None
    objects: list[Any] = []
    for document in documents:
        if isinstance(document, Mapping) and document.get("kind") == "List":
            objects.extend(document.get("items") or [])  # `kubectl get cm,secret -o yaml`
        else:
            objects.append(document)
    found, notes = [], []
    for n, obj in enumerate(objects):
        if not isinstance(obj, Mapping) or "kind" not in obj:
            raise ImportProblem(f"{source}: document {n + 1} is not a Kubernetes object. Fix: "
                                "give ConfigMap/Secret manifests or a .env file.")
        kind = obj["kind"]
        meta = obj.get("metadata") or {}
        label = f"{kind} {meta.get('name', f'#{n + 1}')}"
        if kind not in ("ConfigMap", "Secret"):
            notes.append(f"{name}: skipped {label} (only ConfigMaps and Secrets are imported)")
            continue
        if obj.get("binaryData"):
            notes.append(f"{name}: skipped binaryData of {label} ({', '.join(obj['binaryData'])}): "
                         "binary values are not imported")
        entries: dict[str, str] = {}
        for section in ("data", "stringData"):  # stringData wins, as in the API server
            values = obj.get(section) or {}
            if not isinstance(values, Mapping):
                raise ImportProblem(f"{source}: {label}.{section} is not a mapping. Fix: correct "
                                    "the manifest.")
            for key, value in values.items():
                if kind == "Secret" and section == "data":
                    value = _base64(source, label, key, value)
                entries[str(key)] = value if isinstance(value, str) else render_value(value)
        found.extend(_Found(k, v, f"{name}: {label}", source, kind == "Secret")
                     for k, v in entries.items())
    if not found and not any("skipped binaryData" in n for n in notes):
        raise ImportProblem(f"{source}: no ConfigMap or Secret data found. Fix: give the "
                            "manifests of the service's ConfigMaps and Secrets.")
    return found, notes


def _base64(source: str, label: str, key: str, value: Any) -> str:
    try:
        return base64.b64decode(str(value), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ImportProblem(f"{source}: {label} key {key} is not base64 of UTF-8 text. Fix: "
                            "correct it, or set this secret by hand with `pulumi config set "
                            "--secret`.") from None


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

def config_key_for(service: str, key: str) -> str:
    """billing + STRIPE_API_KEY -> billingStripeApiKey (the style of Pulumi.yaml's keys)."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", f"{service} {key}") if w]
    return words[0].lower() + "".join(w[:1].upper() + w[1:].lower() for w in words[1:])


def plan_import(project_dir: Path, stack: str, service: str, sources: list[str],
                app_schema: str | None = None, store: str = "vault") -> ImportPlan:
    from configplane.pack import load_detector  # the pack's own detector, as the policies use

    if not re.match(DNS_LABEL.pattern, service) or len(service) > 63:
        raise ImportProblem(f"service name `{service}` is not an RFC 1123 label (lowercase "
                            "letters, digits, '-'). Fix: choose another name.")
    project = read_project_file(project_dir)
    defaults = _existing_base(project_dir, service)
    inherited = defaults.get("app_schema")
    schema_name = app_schema or inherited
    schemas = project_dir / "schemas" / "services"
    available = sorted(p.name.removesuffix(".schema.json") for p in schemas.glob("*.schema.json"))
    if schema_name is None:
        raise ImportProblem(f"service `{service}` is new: it needs --app-schema. Fix: use one of "
                            f"{', '.join(available)}.")
    schema_file = schemas / f"{schema_name}.schema.json"
    if not DNS_LABEL.match(schema_name) or not schema_file.is_file():
        raise ImportProblem(f"unknown app schema `{schema_name}`. Fix: use one of "
                            f"{', '.join(available)} or add schemas/services/{schema_name}.schema.json.")
    schema = json.loads(schema_file.read_text())

    found: list[_Found] = []
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
        if not DATA_KEY.match(entry.key):
            raise ImportProblem(f"{entry.origin}: key `{entry.key}` cannot be a ConfigMap or "
                                "Secret key. Fix: rename it (letters, digits, '-', '_', '.').")

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

    declarations: dict[str, dict[str, Any]] = {}
    for secret in secrets:
        full = f"{NAMESPACE}:{secret.config_key}"
        declared = project.declarations.get(full)
        if declared is not None and not (declared.secret and declared.type):
            raise ImportProblem(f"{PROJECT_FILE}: `{full}` is already declared without `type` and "
                                "`secret: true`. Fix: add them, then import again.")
        if full in declarations:
            raise ImportProblem(f"{secret.key} and another key both map to `{full}`. Fix: rename one.")
        if declared is None:
            declarations[full] = {"type": "string", "secret": True,
                                  "description": f"{secret.key} of the {service} service "
                                                 f"(imported from {secret.origin})"}

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
    return ImportPlan(service, stack, schema_name, section, declarations, secrets, notes)


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
    """Where the app schema takes `<P>_HOST` etc. from a secret (configplane.delivery), the
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


def write_import(project_dir: Path, plan: ImportPlan) -> list[str]:
    """Write the section to services/<name>/<stack>.yaml (a new file) and add the
    declarations to Pulumi.yaml."""
    stack_path = project_dir / stack_file_name(plan.stack)
    project_path = project_dir / PROJECT_FILE
    if not stack_path.is_file():
        raise ImportProblem(f"{stack_path.name}: file not found in {project_dir.resolve()}. Fix: "
                            f"create the stack first (`pulumi stack init {plan.stack}`).")
    target = catalog_file(plan.service, plan.stack)
    legacy = ((yaml.safe_load(stack_path.read_text()) or {}).get("config") or {}).get(SERVICES_KEY)
    if (project_dir / target).exists() or (isinstance(legacy, dict) and plan.service in legacy):
        where = target if (project_dir / target).exists() else \
            f"{stack_path.name}: {SERVICES_KEY}.{plan.service}"
        raise ImportProblem(f"{where} already exists. Fix: merge the printed section by hand "
                            "(run without --write).")
    text = yaml.safe_dump(plan.section, sort_keys=False, default_flow_style=False,
                          allow_unicode=True, width=1000)
    edits = {project_dir / target: _checked(target, text, plan.section)}
    if plan.declarations:
        edits[project_path] = _add_declarations(project_path.read_text(), plan.declarations)
    for path, new in edits.items():  # all edits were checked before any file is touched
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            _replace(path, new)
        else:
            path.write_text(new)
    return [str(path.relative_to(project_dir)) for path in edits]


def _replace(path: Path, text: str) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as out:
        out.write(text)
    os.chmod(tmp, path.stat().st_mode & 0o777)
    os.replace(tmp, path)


def _block(data: Mapping[str, Any], indent: int) -> list[str]:
    text = yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=False,
                          allow_unicode=True, width=1000)
    return [" " * indent + line + "\n" for line in text.splitlines()]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _content(line: str) -> bool:
    return bool(line.strip()) and not line.lstrip().startswith("#")


def _find_key(lines: list[str], key: str, indent: int, start: int, stop: int,
              inline_ok: bool = False) -> int | None:
    """The line of `key:` at this indent; an inline (flow) value cannot be edited as text."""
    pattern = re.compile(" " * indent + re.escape(key) + r":(\s*(#.*)?)?\Z")
    for n in range(start, stop):
        line = lines[n].rstrip("\n")
        if _indent(line) == indent and line.lstrip().startswith(f"{key}:"):
            if not pattern.match(line) and not inline_ok:
                raise ImportProblem(f"`{key}` is written inline; it cannot be edited safely. Fix: "
                                    "write it as a block mapping, or add the section by hand.")
            return n
    return None


def _block_end(lines: list[str], start: int) -> int:
    """The index after the last line belonging to the mapping that starts at `start`."""
    indent, last = _indent(lines[start]), start
    for n in range(start + 1, len(lines)):
        if not lines[n].strip():
            continue
        if _indent(lines[n]) <= indent:
            break
        last = n
    return last + 1


def _child_indent(lines: list[str], start: int, fallback: int) -> int:
    for line in lines[start + 1:]:
        if _content(line):
            return _indent(line) if _indent(line) > _indent(lines[start]) else fallback
    return fallback


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def _checked(file: str, new: str, expected: Any) -> str:
    if yaml.safe_load(new) != expected:
        raise ImportProblem(f"{file}: could not add the section without changing something else "
                            "(unusual layout). Fix: add it by hand; run without --write to print it.")
    return new


def _add_service(text: str, file: str, service: str, section: dict[str, Any]) -> str:
    document = yaml.safe_load(text) or {}
    expected = copy.deepcopy(document)
    if expected.get("config") is None:
        expected["config"] = {}
    config = expected["config"]
    services = (config.get(SERVICES_KEY) if isinstance(config, dict) else None) or {}
    if not isinstance(config, dict) or not isinstance(services, dict):
        raise ImportProblem(f"{file}: `config` or `{SERVICES_KEY}` is not a mapping. Fix: correct it.")
    if service in services:
        raise ImportProblem(f"{file}: {SERVICES_KEY}.{service} already exists. Fix: merge the "
                            "printed section by hand (run without --write).")
    config[SERVICES_KEY] = {**services, service: section}

    lines = _lines(text)
    top = _find_key(lines, "config", 0, 0, len(lines))
    if top is None:
        new = lines + ["config:\n", f"  {SERVICES_KEY}:\n", *_block({service: section}, 4)]
        return _checked(file, "".join(new), expected)
    child = _child_indent(lines, top, 2)
    end = _block_end(lines, top)
    at = _find_key(lines, SERVICES_KEY, child, top + 1, end)
    if at is None:
        insert = [f"{' ' * child}{SERVICES_KEY}:\n", *_block({service: section}, 2 * child)]
        new = lines[:end] + insert + lines[end:]
    else:
        grandchild = _child_indent(lines, at, 2 * child)
        stop = _block_end(lines, at)
        new = lines[:stop] + _block({service: section}, grandchild) + lines[stop:]
    return _checked(file, "".join(new), expected)


def _add_declarations(text: str, declarations: Mapping[str, Any]) -> str:
    document = yaml.safe_load(text) or {}
    expected = copy.deepcopy(document)
    if expected.get("config") is None:
        expected["config"] = {}
    expected["config"].update(declarations)
    lines = _lines(text)
    top = _find_key(lines, "config", 0, 0, len(lines))
    if top is None:
        new = lines + ["config:\n", *_block(declarations, 2)]
        return _checked(PROJECT_FILE, "".join(new), expected)
    child = _child_indent(lines, top, 2)
    end = _block_end(lines, top)
    # After the last existing secret declaration, so secret inputs stay together.
    at = top + 1
    for key, spec in (document.get("config") or {}).items():
        if isinstance(spec, Mapping) and spec.get("secret") is True:
            line = _find_key(lines, str(key), child, top + 1, end, inline_ok=True)
            if line is not None:
                at = max(at, _block_end(lines, line))
    new = lines[:at] + _block(declarations, child) + lines[at:]
    return _checked(PROJECT_FILE, "".join(new), expected)
