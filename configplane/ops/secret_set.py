"""`configplane secret set`: add a `secure` secret to a service in one step.

A secure value needs three things in three places, two of them platform files: the secret's
spec in the service's own files (`services/<name>/service.yaml`, or its stack overlay), the
key's declaration in Pulumi.yaml (`type: string`, `secret: true`, so the Pulumi CLI refuses a
plaintext value) and the platform's grant of the key to the service
(`platform.grants.secure_keys` in Pulumi.yaml's `configplane:defaults`). This module prepares
all the edits with import's round-trip editors (configplane.ops.importer: `add_secret`,
`add_declarations`, `add_grants`; comments and layout kept, each edit proven to change nothing
else) and the `pulumi config set --secret` command that sets the value; the grant is written
only when the platform asks (`--grant`), otherwise it is returned for the platform to add.
Files are read through configplane.projectfiles (contained, size-checked); nothing is written
here: the CLI reads and writes under the project's lock, all the edits in one change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from configplane import contract, ownership
from configplane.inputs import (
    CATALOG_DIR,
    DEFAULTS_KEY,
    NAMESPACE,
    PROJECT_FILE,
    SERVICE_FILE,
    environments,
    stack_file_name,
)
from configplane.model import secure_values_stack
from configplane.ops.importer import (
    GRANTS_PATH,
    ImportProblem,
    add_declarations,
    add_grants,
    add_secret,
)
from configplane.projectfiles import is_file, kind_of, read_text

STORES = ("vault", "aws")
CONFIG_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")  # a Pulumi config key's name part
GRANT_PATH = ("config", DEFAULTS_KEY, *GRANTS_PATH)


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
    if not isinstance(config, dict):
        raise SecretSetProblem(f"{PROJECT_FILE}: `config` is not a mapping. Fix: correct it first "
                               "(`configplane validate` shows where).")
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
        if is_file(project_dir, file):
            document = _mapping(_read(project_dir, file), file, allow_null=True)
            if isinstance(document, dict) and key in (document.get("secrets") or {}):
                raise SecretSetProblem(f"{file}: secrets.{key} is already declared. Fix: edit "
                                       "it there, or choose another key.")
    spec = {"source": "secure", "config_key": config_key, "store": store}
    edits = {target: _with_secret(project_dir, target, key, spec)}

    new_project = project_text
    if declared is None:
        new_project = _edited(add_declarations, project_text, {full: {
            "type": "string", "secret": True,
            "description": description or f"{key} of service {service}"}})
    has_grant = owner == service
    if grant and not has_grant:
        new_project = _edited(add_grants, new_project, service, [config_key])
    if new_project != project_text:
        edits[PROJECT_FILE] = new_project
    # the value goes to the file of the stack that holds the service (its shard, when split)
    command: tuple[str, ...] = ("pulumi", "config", "set", "--secret", "--stack",
                                secure_values_stack(project_dir, stack, service), full)
    if project_dir.resolve() != Path.cwd().resolve():
        command += ("--cwd", str(project_dir))
    return SecretSetProposal(stack, service, key, config_key, edits,
                             grant_needed=not has_grant and not grant, command=command)


def _check_names(project_dir: Path, stack: str, service: str, key: str, store: str) -> None:
    known = environments(project_dir)  # a shard's stack is chosen by the service's shard
    if stack not in known:
        raise SecretSetProblem(f"no stack `{_show(stack)}` (no {stack_file_name(_show(stack))}). "
                               f"Fix: use one of: {', '.join(known) or 'none'}.")
    directory = f"{CATALOG_DIR}/{service}"
    # a real directory (a link is refused, as the catalog refuses it) holding the base
    if not ownership.is_service_name(service) or kind_of(project_dir, directory) != "dir" \
            or not is_file(project_dir, f"{directory}/{SERVICE_FILE}"):
        raise SecretSetProblem(f"no service `{_show(service)}` in {CATALOG_DIR}/ (a directory "
                               f"{CATALOG_DIR}/<name>/ with {SERVICE_FILE}). Fix: name an "
                               "existing service (docs/add-a-service.md).")
    if not re.fullmatch(contract.CONFIGMAP_DATA_KEY, key) or len(key) > 253:
        raise SecretSetProblem(f"secret name `{_show(key)}` becomes a Kubernetes Secret key: "
                               "letters, digits, '-', '_' and '.' only. Fix: rename it.")
    if store not in STORES:
        raise SecretSetProblem(f"store `{_show(store)}`: use one of {', '.join(STORES)}.")


def _read(project_dir: Path, file: str) -> str:
    """A project file, contained and size-checked (a ProjectFileError says why not)."""
    try:
        return read_text(project_dir, file)
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
    if kind_of(project_dir, file) is None:
        return yaml.safe_dump({"secrets": {key: dict(spec)}}, sort_keys=False)
    text = _read(project_dir, file)
    if _mapping(text, file, allow_null=True) is None:
        raise SecretSetProblem(f"{file} is `null`: the service is not in this stack. Fix: add "
                               "the secret to service.yaml (without --overlay) or remove the "
                               "`null`.")
    return _edited(add_secret, text, key, spec, file)


def _edited(edit: Any, *args: Any) -> str:
    """An import editor's result; its refusal in this command's words."""
    try:
        return edit(*args)
    except ImportProblem as exc:
        raise SecretSetProblem(str(exc).replace("run without --write to print them",
                                                "see `configplane secret set --help`")) from None


def _show(text: str) -> str:
    text = text if len(text) <= 64 else text[:61] + "..."
    return text.encode("unicode_escape").decode("ascii")
