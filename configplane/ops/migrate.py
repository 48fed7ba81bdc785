"""`configplane migrate`: move service definitions out of Pulumi config into the catalog.

    configplane:defaults.services.<name>  (Pulumi.yaml)        -> services/<name>/service.yaml
    configplane:services.<name>  (Pulumi.<stack>.yaml)         -> services/<name>/<stack>.yaml
    (a `null` there, which deleted the service in that stack)  -> services/<name>/<stack>.yaml: null

Schema-agnostic: each service's subtree moves as it is, whatever fields it holds, known or
not. Where the subtree is written in block style, its text moves verbatim (comments
included, dedented); otherwise it is written by the YAML dumper. Every moved file is parsed
back and compared with the subtree it came from, and so are the edited Pulumi files with
what they held minus the moved keys: a migration that would change any value is refused.
Output is deterministic (services and stacks in sorted order). The layering is unchanged:
base then overlay is what project defaults then stack values were, so plans are identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from configplane import ownership
from configplane.inputs import (
    CATALOG_DIR,
    DEFAULTS_FILE,
    DEFAULTS_KEY,
    PROJECT_FILE,
    SERVICE_FILE,
    SERVICES_KEY,
    YamlError,
    load_text,
)
from configplane.projectfiles import ProjectFileError, Writer, is_file, read_text, shown

DEFAULTS_TEMPLATE = """\
# Fleet-wide settings of the service catalog (docs/catalog.md).
# owners: the platform owners: they review Pulumi.*.yaml, policies/, components/, schemas/
#   and this file (`configplane codeowners --write` turns this into .github/CODEOWNERS).
# service: defaults merged below every service's services/<name>/service.yaml.
owners: []
service: {}
"""


class MigrationError(Exception):
    """The project cannot be migrated as it is: the message says why and what to do."""


@dataclass
class Migration:
    writes: dict[str, str] = field(default_factory=dict)  # relative path -> new text
    unchanged: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)

    def apply(self, writer: Writer) -> list[str]:
        """Every file or none: the Pulumi files lose their services only when every catalog
        file that receives them is written (one atomic change)."""
        return writer.commit(self.writes)


def _load(text: str, name: str) -> Any:
    try:
        return load_text(text, name)
    except YamlError as exc:
        raise MigrationError(f"{exc}") from None


def _config_of(document: Any, name: str) -> Mapping[str, Any]:
    """A Pulumi file's `config` mapping (empty when absent); any other shape is refused."""
    if document is None:
        return {}
    config = document.get("config") if isinstance(document, Mapping) else None
    if not isinstance(document, Mapping) or not isinstance(config or {}, Mapping):
        raise MigrationError(f"{name}: not a mapping with a `config` mapping. Fix: correct it "
                             "first (`configplane validate` names the problem).")
    return config or {}


def _block(lines: list[str], start: int) -> tuple[int, int, int | None]:
    """The lines of the mapping entry at `start` (0-based): (start, end exclusive, indent of
    its children, None when the value is written on the key's own line)."""
    head = lines[start]
    indent = len(head) - len(head.lstrip(" "))
    after = head.split(":", 1)[1] if ":" in head else ""
    inline = after.strip() and not after.strip().startswith("#")
    end = start + 1
    last = start + 1
    while end < len(lines):
        text = lines[end]
        stripped = text.strip()
        if stripped and not stripped.startswith("#"):
            if len(text) - len(text.lstrip(" ")) <= indent:
                break
            last = end + 1
        end += 1
    children = [len(t) - len(t.lstrip(" ")) for t in lines[start + 1:last]
                if t.strip() and not t.strip().startswith("#")]
    return start, last, None if inline or not children else min(children)


def _subtree_text(lines: list[str], start: int, value: Any, name: str) -> str:
    """A subtree as its own document: its text dedented when it is block style, else dumped."""
    begin, end, child = _block(lines, start)
    if child is not None:
        body = []
        for text in lines[begin + 1:end]:
            lead = len(text) - len(text.lstrip(" "))
            body.append(text[min(lead, child):] if text.strip() else "\n")
        candidate = "".join(body)
        try:
            if load_text(candidate, name).document == value:
                return candidate
        except YamlError:
            pass  # e.g. an alias to an anchor outside the subtree: dump it instead
    if value is None:
        return "null\n"
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=100)


def _without(lines: list[str], starts: list[int]) -> str:
    drop: set[int] = set()
    for start in starts:
        begin, end, _ = _block(lines, start)
        drop.update(range(begin, end))
    return "".join(t for i, t in enumerate(lines) if i not in drop)


def _read(project_dir: Path, rel: str) -> str:
    try:
        return read_text(project_dir, rel)
    except ProjectFileError as exc:
        raise MigrationError(str(exc)) from None


def _service_dir(name: object, file: str) -> str:
    """A legacy service's name as a directory under services/: an RFC 1123 label, whole."""
    if not isinstance(name, str) or not ownership.is_service_name(name):
        raise MigrationError(f"{file}: service name `{shown(str(name))}` cannot name a directory "
                             f"under {CATALOG_DIR}/ (an RFC 1123 label: lowercase letters, "
                             "digits, '-'). Fix: rename the service in the config first.")
    return name


def plan_migration(project_dir: Path, *, overwrite: bool = False) -> Migration:
    project_dir = Path(project_dir)
    migration = Migration()
    if not is_file(project_dir, PROJECT_FILE):
        raise MigrationError(f"{PROJECT_FILE}: not found in {project_dir.resolve()}. Fix: run "
                             "in the project directory or pass --project-dir.")
    stacks = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))
    moved = _project_services(project_dir, migration)  # catalog file -> text
    for stack in stacks:
        _stack_services(project_dir, stack, migration, moved)
    return _write_catalog(project_dir, migration, moved, overwrite)


def _project_services(project_dir: Path, migration: Migration) -> dict[str, str]:
    """Pulumi.yaml's `configplane:defaults.services`: each service's base file, and the
    project file without them (into `migration.writes`)."""
    moved: dict[str, str] = {}
    project_text = _read(project_dir, PROJECT_FILE)
    project_lines = project_text.splitlines(keepends=True)
    loaded = _load(project_text, PROJECT_FILE)
    config = _config_of(loaded.document, PROJECT_FILE)
    if SERVICES_KEY in config or SERVICES_KEY.split(":", 1)[1] in config:
        raise MigrationError(f"{PROJECT_FILE}: `{SERVICES_KEY}` in project config is not "
                             "supported by migrate. Fix: move it under "
                             f"`{DEFAULTS_KEY}.value.services` first.")
    defaults_key = DEFAULTS_KEY if DEFAULTS_KEY in config else "defaults"
    spec = config.get(defaults_key)
    value = spec.get("value") if isinstance(spec, Mapping) and "value" in spec else spec
    value_map: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
    base: Any = value_map.get("services")
    project_drops: list[int] = []
    if base is not None:
        if not isinstance(base, Mapping):
            raise MigrationError(f"{PROJECT_FILE}: `{DEFAULTS_KEY}.services` is not a mapping "
                                 "of service names. Fix: correct it first.")
        prefix = ("config", defaults_key, *(("value",) if value is not spec else ()), "services")
        for name in sorted(base, key=str):
            folder = _service_dir(name, PROJECT_FILE)
            moved[f"{CATALOG_DIR}/{folder}/{SERVICE_FILE}"] = _subtree_text(
                project_lines, loaded.lines[(*prefix, name)] - 1, base[name],
                f"{name}/{SERVICE_FILE}")
        remaining = {k: v for k, v in value_map.items() if k != "services"}
        if remaining:
            project_drops.append(loaded.lines[prefix] - 1)
        else:  # nothing but services: the whole configplane:defaults key goes
            project_drops.append(loaded.lines[("config", defaults_key)] - 1)
    if project_drops:
        text = _without(project_lines, project_drops)
        _check_same(text, loaded.document, PROJECT_FILE,
                    lambda d: _drop_services(d, defaults_key, bool(remaining)))
        migration.writes[PROJECT_FILE] = text
    return moved


def _stack_services(project_dir: Path, stack: str, migration: Migration,
                    moved: dict[str, str]) -> None:
    """A stack file's `configplane:services`: each service's overlay for the stack (into
    `moved`), and the stack file without them."""
    name_of_file = f"Pulumi.{stack}.yaml"
    text = _read(project_dir, name_of_file)
    lines = text.splitlines(keepends=True)
    doc = _load(text, name_of_file)
    stack_config = _config_of(doc.document, name_of_file)
    stack_defaults = stack_config.get(DEFAULTS_KEY)
    if isinstance(stack_defaults, Mapping) and "services" in stack_defaults:
        raise MigrationError(f"{name_of_file}: sets `{DEFAULTS_KEY}` with services, which "
                             "replaces the project defaults in this stack only; migrate "
                             f"cannot split that. Fix: move those values under "
                             f"`{SERVICES_KEY}` in {name_of_file} first.")
    key = SERVICES_KEY if SERVICES_KEY in stack_config else (
        "services" if "services" in stack_config else None)
    if key is None:
        return
    raw_services = stack_config[key]
    if raw_services is not None and not isinstance(raw_services, Mapping):
        raise MigrationError(f"{name_of_file}: `{SERVICES_KEY}` is not a mapping of service "
                             "names. Fix: correct it first.")
    services: Mapping[str, Any] = raw_services or {}
    for name in sorted(services, key=str):
        folder = _service_dir(name, name_of_file)
        moved[f"{CATALOG_DIR}/{folder}/{stack}.yaml"] = _subtree_text(
            lines, doc.lines[("config", key, name)] - 1, services[name], f"{name}/{stack}.yaml")
    new = _without(lines, [doc.lines[("config", key)] - 1])
    _check_same(new, doc.document, name_of_file,
                lambda d, k=key: {**d, "config": {c: v for c, v in d["config"].items()
                                                  if c != k}})
    migration.writes[name_of_file] = new


def _write_catalog(project_dir: Path, migration: Migration, moved: dict[str, str],
                   overwrite: bool) -> Migration:
    """The catalog files to write (with services/defaults.yaml when missing), refusing to
    replace a different file unless `overwrite`."""
    for rel in sorted(moved):
        name = rel.split("/")[1]
        if name not in migration.services:
            migration.services.append(name)
    if not is_file(project_dir, DEFAULTS_FILE):
        moved[DEFAULTS_FILE] = DEFAULTS_TEMPLATE
    conflicts = []
    for rel in sorted(moved):
        if is_file(project_dir, rel):
            if _read(project_dir, rel) == moved[rel]:
                migration.unchanged.append(rel)
                continue
            if not overwrite:
                conflicts.append(rel)
        migration.writes[rel] = moved[rel]
    if conflicts:
        raise MigrationError("these catalog files exist already and differ from what the config "
                             f"holds: {', '.join(conflicts)}. Fix: merge them by hand, or pass "
                             "--overwrite to replace them with the config's definitions.")
    migration.services.sort()
    return migration


def _drop_services(document: dict, defaults_key: str, keep_rest: bool) -> dict:
    config = dict(document["config"])
    if not keep_rest:
        config.pop(defaults_key)
    else:
        spec = dict(config[defaults_key])
        if "value" in spec:
            spec["value"] = {k: v for k, v in spec["value"].items() if k != "services"}
        else:
            spec = {k: v for k, v in spec.items() if k != "services"}
        config[defaults_key] = spec
    return {**document, "config": config}


def _check_same(text: str, before: Any, name: str, expected) -> None:
    after = _load(text, name).document
    if after != expected(before):
        raise MigrationError(f"{name}: removing the service definitions by text would change "
                             "other values (unusual formatting?). Fix: move them by hand, or "
                             "reformat the file (block style) and run migrate again.")
