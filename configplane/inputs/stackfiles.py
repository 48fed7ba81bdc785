"""The stack's inputs and the Pulumi config keys configplane reads.

Pulumi replaces a project config value wholesale when a stack sets the same key, so the
platform's project layer lives under `configplane:defaults` (Pulumi.yaml) and its stack layer
under `configplane:platform` (stack file); configplane merges them. Services live in the
catalog (services/, see configplane.inputs.catalog, the one reader); `configplane:services` and
`configplane:defaults.services` are the layout before it, read until migrated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configplane.inputs.yamlload import YamlError, load_file
from configplane.projectfiles import shown

NAMESPACE = "configplane"
DEFAULTS_KEY = f"{NAMESPACE}:defaults"
PLATFORM_KEY = f"{NAMESPACE}:platform"
SERVICES_KEY = f"{NAMESPACE}:services"
PROJECT_FILE = "Pulumi.yaml"


def find_project_dir(start: Path) -> Path:
    """The nearest directory from `start` up that holds Pulumi.yaml, as the Pulumi CLI finds
    its project, relative to `start` (`.`, `..`, `../..`: messages keep short paths); `.` when
    there is none, so the command says that Pulumi.yaml is missing where it runs."""
    here = Path(start).resolve()
    for up, candidate in enumerate((here, *here.parents)):
        if (candidate / PROJECT_FILE).is_file():
            return Path(*[".."] * up) if up else Path(".")
    return Path(".")


class StackFileError(Exception):
    """A stack or project file that cannot be read at all (missing, not YAML)."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 problem: str | None = None):
        super().__init__(message)
        self.file, self.line, self.problem = file, line, problem

    def __reduce__(self):  # rebuilt whole when a shard's plan process raises it
        return (type(self), (str(self), self.file, self.line, self.problem))


@dataclass(frozen=True)
class Declaration:
    """A config key declared in Pulumi.yaml (`type`, `secret: true`)."""

    type: str | None
    secret: bool


@dataclass(frozen=True)
class StackValue:
    secure: bool
    value: Any = None  # None for secure values: configplane never holds ciphertext or plaintext
    length: int | None = None  # secure: the decrypted value's length (estimated from ciphertext)


@dataclass(frozen=True)
class StackInputs:
    """Every layer of one stack, as the one reader (configplane.inputs.catalog.read_inputs) found it."""

    stack: str
    project_file: str
    stack_file: str
    defaults: Mapping[str, Any] = field(default_factory=dict)  # platform part of the project layer
    environment: Mapping[str, Any] = field(default_factory=dict)  # {"platform": ...} of the stack
    declarations: Mapping[str, Declaration] = field(default_factory=dict)
    values: Mapping[str, StackValue] = field(default_factory=dict)
    project: str = NAMESPACE
    project_values: Mapping[str, Any] = field(default_factory=dict)  # Pulumi.yaml `config` values
    # problems found while reading (duplicate keys...): (path, file, message[, line])
    read_problems: tuple[tuple, ...] = ()
    # The layers (configplane.inputs.layering.Layer): the platform's, and each service's in order.
    # Empty: built from `defaults` and `environment` (inputs made by hand, in tests).
    platform_layers: tuple[Any, ...] = ()
    service_layers: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # advice that is not an error (old layout in use)
    project_dir: str | None = None
    owners: tuple[str, ...] = ()  # platform owners (services/defaults.yaml)
    # what the stack file holds under each `secure:` (checked to be a ciphertext; never shown)
    secure_raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # a sharded environment: secure key -> the shard stack file it came from (the others are
    # in the environment's stack file)
    shard_secure: Mapping[str, str] = field(default_factory=dict)


def stack_file_name(stack: str) -> str:
    return f"Pulumi.{stack}.yaml"


STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")  # Pulumi's stack names, matched whole


def is_stack_name(stack: str) -> bool:
    """Pulumi's own alphabet, matched whole, and not a name that blurs a path (`.`, `..`)."""
    return STACK_NAME.fullmatch(stack) is not None and stack not in (".", "..")


def check_stack_name(stack: str) -> None:
    """A stack name names files (Pulumi.<stack>.yaml, services/<name>/<stack>.yaml): refuse
    anything but Pulumi's own alphabet, matched whole, before it reaches a path."""
    if not is_stack_name(stack):
        file = shown(stack_file_name(stack))
        problem = (f"stack name `{shown(stack)}` is not a Pulumi stack name (letters, digits, "
                   "'-', '_', '.'). Fix: check --stack.")
        raise StackFileError(f"{file}: {problem}", file, None, problem)


@dataclass(frozen=True)
class ProjectFile:
    name: str
    declarations: Mapping[str, Declaration]
    values: Mapping[str, Any]
    duplicates: tuple[tuple[str, int], ...]


_DECLARATION_FIELDS = {"type", "secret", "default", "value", "description"}


def read_project_file(project_dir: Path) -> ProjectFile:
    """Pulumi.yaml's name, declared config keys and config values."""
    try:
        loaded = load_file(Path(project_dir) / PROJECT_FILE)
    except YamlError as exc:
        raise StackFileError(str(exc)) from None
    document = loaded.document if loaded.document is not None else {}
    if not isinstance(document, dict):
        raise StackFileError(f"{PROJECT_FILE}: expected a mapping at the top level")
    name = str(document.get("name", NAMESPACE))
    declarations: dict[str, Declaration] = {}
    values: dict[str, Any] = {}
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise StackFileError(f"{PROJECT_FILE}: `config` must be a mapping")
    for key, spec in config.items():
        full = key if ":" in key else f"{name}:{key}"
        if isinstance(spec, dict) and _DECLARATION_FIELDS & spec.keys():
            declarations[full] = Declaration(spec.get("type"), bool(spec.get("secret", False)))
            if "value" in spec or "default" in spec:  # Pulumi uses a `default` as the value
                values[full] = spec["value"] if "value" in spec else spec["default"]
        else:
            values[full] = spec
    return ProjectFile(name, declarations, values, tuple(loaded.duplicates))
