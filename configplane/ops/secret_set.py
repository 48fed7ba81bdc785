"""`configplane secret set`: add a `secure` secret to a service in one step.

A secure value needs three things in three places, two of them platform files: the secret's
spec in the service's own files (`services/<name>/service.yaml`, or its stack overlay), the
key's declaration in Pulumi.yaml (`type: string`, `secret: true`, so the Pulumi CLI refuses a
plaintext value) and the platform's grant of the key to the service
(`platform.grants.secure_keys` in Pulumi.yaml's `configplane:defaults`). This module prepares
all the edits (YAML edited with ruamel.yaml's round-trip loader, comments and layout kept, each
result read back and compared with the intended document) and the `pulumi config set --secret`
command that sets the value; the grant is written only when the platform asks (`--grant`),
otherwise it is returned for the platform to add. Nothing is written here: the CLI writes the
edits through its one writer, all of them or none.
"""

from __future__ import annotations

import copy
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from configplane import contract, ownership
from configplane.inputs import (
    CATALOG_DIR,
    DEFAULTS_KEY,
    NAMESPACE,
    PROJECT_FILE,
    SERVICE_FILE,
    stack_file_name,
)
from configplane.ops.importer import ImportProblem
from configplane.ops.importer.yamledit import _round_trip, add_declarations

STORES = ("vault", "aws")
CONFIG_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")  # a Pulumi config key's name part
STACK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
GRANT_PATH = ("config", DEFAULTS_KEY, "value", "platform", "grants", "secure_keys")


class SecretSetProblem(Exception):
    """Why the secret cannot be added: one message naming the file, the key and the fix."""


@dataclass(frozen=True)
class SecretSetProposal:
    stack: str
    service: str
    key: str
    config_key: str  # without `configplane:`
    edits: Mapping[str, str]  # project-relative path -> its new text
    grant_needed: bool  # the platform must still grant the key (not written, not there yet)
    command: tuple[str, ...]  # `pulumi config set --secret`: the value is never an argument
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def full_key(self) -> str:
        return f"{NAMESPACE}:{self.config_key}"

    def as_dict(self) -> dict[str, Any]:
        return {"stack": self.stack, "service": self.service, "key": self.key,
                "config_key": self.full_key, "files": sorted(self.edits),
                "grant": ({"file": PROJECT_FILE, "path": ".".join(GRANT_PATH[1:]),
                           "add": {self.service: [self.config_key]}}
                          if self.grant_needed else None),
                "command": list(self.command)}


def propose_secret(project_dir: Path, stack: str, service: str, key: str, *, store: str = "vault",
            config_key: str | None = None, overlay: bool = False, grant: bool = False,
            description: str | None = None) -> SecretSetProposal:
    """Every edit that adds secret `key` (source: secure) to `service` in `stack`."""
    project_dir = Path(project_dir)
    _check_names(project_dir, stack, service, key, store)
    config_key = config_key or ownership.config_key_for(service, key)
    if not CONFIG_KEY.fullmatch(config_key):
        raise SecretSetProblem(f"--config-key `{_show(config_key)}` is not a Pulumi config key "
                               "name (a letter, then letters, digits or '_'). Fix: choose one.")
    full = f"{NAMESPACE}:{config_key}"
    project_text = _read(project_dir, PROJECT_FILE)
    project = _mapping(project_text, PROJECT_FILE)
    config = project.get("config") or {}
    declared = config.get(full)
    if declared is not None and not (isinstance(declared, dict) and declared.get("secret") is True
                                     and declared.get("type")):
        raise SecretSetProblem(f"{PROJECT_FILE}: `{full}` is already declared, but not as a "
                               "secret with a type. Fix: choose another --config-key, or make "
                               "it `{type: string, secret: true}`.")
    grants = _grants(project)
    owner = ownership.granted(grants).get(config_key)
    if owner is not None and owner != service:
        raise SecretSetProblem(f"{PROJECT_FILE}: `{config_key}` is granted to service {owner} "
                               f"(platform.grants.secure_keys). Fix: choose another --config-key.")

    base = f"{CATALOG_DIR}/{service}/{SERVICE_FILE}"
    target = f"{CATALOG_DIR}/{service}/{stack}.yaml" if overlay else base
    for file in dict.fromkeys([base, f"{CATALOG_DIR}/{service}/{stack}.yaml"]):
        if (project_dir / file).is_file():
            document = _mapping(_read(project_dir, file), file, allow_null=True)
            if isinstance(document, dict) and key in (document.get("secrets") or {}):
                raise SecretSetProblem(f"{file}: secrets.{key} is already declared. Fix: edit "
                                       "it there, or choose another key.")
    spec = {"source": "secure", "config_key": config_key, "store": store}
    edits = {target: _with_secret(project_dir, target, key, spec)}

    new_project = project_text
    if declared is None:
        try:
            new_project = add_declarations(project_text, {full: {
                "type": "string", "secret": True,
                "description": description or f"{key} of service {service}"}})
        except ImportProblem as exc:
            raise SecretSetProblem(str(exc).replace("run without --write to print them",
                                                    "see `configplane secret set --help`")
                                   ) from None
    has_grant = owner == service
    if grant and not has_grant:
        new_project = _with_grant(new_project, service, config_key)
    if new_project != project_text:
        edits[PROJECT_FILE] = new_project
    command = ("pulumi", "config", "set", "--secret", "--stack", stack, full)
    if project_dir.resolve() != Path.cwd().resolve():
        command += ("--cwd", str(project_dir))
    return SecretSetProposal(stack, service, key, config_key, edits,
                             grant_needed=not has_grant and not grant, command=command)


def _check_names(project_dir: Path, stack: str, service: str, key: str, store: str) -> None:
    if not STACK.fullmatch(stack) or not (project_dir / stack_file_name(stack)).is_file():
        known = sorted(p.name[len("Pulumi."):-len(".yaml")]
                       for p in project_dir.glob("Pulumi.*.yaml"))
        raise SecretSetProblem(f"no stack `{_show(stack)}` (no {stack_file_name(_show(stack))}). "
                               f"Fix: use one of: {', '.join(known) or 'none'}.")
    directory = project_dir / CATALOG_DIR / service
    if not re.fullmatch(ownership.LABEL, service) or len(service) > ownership.MAX_LABEL \
            or not (directory / SERVICE_FILE).is_file() \
            or not directory.resolve().is_relative_to((project_dir / CATALOG_DIR).resolve()):
        raise SecretSetProblem(f"no service `{_show(service)}` in {CATALOG_DIR}/ (a directory "
                               f"{CATALOG_DIR}/<name>/ with {SERVICE_FILE}). Fix: name an "
                               "existing service (docs/add-a-service.md).")
    if not re.fullmatch(contract.CONFIGMAP_DATA_KEY, key) or len(key) > 253:
        raise SecretSetProblem(f"secret name `{_show(key)}` becomes a Kubernetes Secret key: "
                               "letters, digits, '-', '_' and '.' only. Fix: rename it.")
    if store not in STORES:
        raise SecretSetProblem(f"store `{_show(store)}`: use one of {', '.join(STORES)}.")


def _read(project_dir: Path, file: str) -> str:
    path = project_dir / file
    if path.is_symlink() or not path.resolve().is_relative_to(project_dir.resolve()):
        raise SecretSetProblem(f"{file}: a link; configplane edits only plain files inside the "
                               "project. Fix: replace the link with the file.")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretSetProblem(f"{file}: cannot be read ({type(exc).__name__}). Fix: make it a "
                               "readable UTF-8 file.") from None


def _mapping(text: str, file: str, allow_null: bool = False) -> Any:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        raise SecretSetProblem(f"{file}: not valid YAML. Fix: correct it first "
                               "(`configplane validate` shows where).") from None
    if document is None and allow_null:
        return None
    if not isinstance(document, dict):
        raise SecretSetProblem(f"{file}: expected a mapping. Fix: correct it first.")
    return document


def _grants(project: Mapping[str, Any]) -> dict[str, list[str]]:
    node: Any = project
    for part in GRANT_PATH:
        node = node.get(part) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        return {}
    return {str(s): [str(k) for k in keys] for s, keys in node.items() if isinstance(keys, list)}


def _with_secret(project_dir: Path, file: str, key: str, spec: Mapping[str, Any]) -> str:
    """The service file with `secrets.<key>` added (a new overlay file is created)."""
    path = project_dir / file
    if not path.exists():
        return yaml.safe_dump({"secrets": {key: dict(spec)}}, sort_keys=False)
    text = _read(project_dir, file)
    expected = copy.deepcopy(_mapping(text, file, allow_null=True))
    if expected is None:
        raise SecretSetProblem(f"{file} is `null`: the service is not in this stack. Fix: add "
                               "the secret to service.yaml (without --overlay) or remove the "
                               "`null`.")
    if not isinstance(expected.get("secrets") or {}, dict):
        raise SecretSetProblem(f"{file}: `secrets` is not a mapping. Fix: correct it first.")
    expected["secrets"] = {**(expected.get("secrets") or {}), key: dict(spec)}
    yml, document = _edit(text, file)
    if document.get("secrets") is None:
        document["secrets"] = CommentedMap()
    document["secrets"][key] = _commented(spec)
    return _checked(yml, document, expected, file, text)


def _with_grant(text: str, service: str, config_key: str) -> str:
    """Pulumi.yaml with `config_key` granted to `service` (GRANT_PATH), comments kept."""
    expected = copy.deepcopy(_mapping(text, PROJECT_FILE))
    node = expected
    for part in GRANT_PATH:
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise SecretSetProblem(f"{PROJECT_FILE}: `{'.'.join(GRANT_PATH[1:])}` is not a "
                                   "mapping. Fix: correct it first.")
    node[service] = [*(node.get(service) or []), config_key]
    yml, document = _edit(text, PROJECT_FILE)
    here = document
    for part in GRANT_PATH:
        if here.get(part) is None:
            here[part] = CommentedMap()
        here = here[part]
    if here.get(service) is None:
        here[service] = CommentedSeq()
        here[service].fa.set_flow_style()
    here[service].append(config_key)
    return _checked(yml, document, expected, PROJECT_FILE, text)


def _edit(text: str, file: str) -> tuple[Any, Any]:
    try:
        return _round_trip(text, file)
    except ImportProblem:
        raise SecretSetProblem(f"{file}: could not edit it without changing its layout. Fix: "
                               "add the printed lines by hand.") from None


def _checked(yml: Any, document: Any, expected: Any, file: str, original: str) -> str:
    """The edited text, if it reads back as `expected` and keeps every comment line."""
    out = io.StringIO()
    yml.dump(document, out)
    result = out.getvalue()
    if yaml.safe_load(result) != expected or _comments(result) != _comments(original):
        raise SecretSetProblem(f"{file}: the edit does not read back as intended. Fix: add the "
                               "printed lines by hand.")
    return result


def _comments(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.lstrip().startswith("#"))


def _commented(value: Any) -> Any:
    if isinstance(value, Mapping):
        return CommentedMap((k, _commented(v)) for k, v in value.items())
    return value


def _show(text: str) -> str:
    text = text if len(text) <= 64 else text[:61] + "..."
    return text.encode("unicode_escape").decode("ascii")
