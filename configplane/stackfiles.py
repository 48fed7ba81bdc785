"""Where the layers come from: Pulumi.yaml and Pulumi.<stack>.yaml, or the Pulumi runtime.

Pulumi replaces a project config value wholesale when a stack sets the same key, so the base
layer lives under `configplane:defaults` (Pulumi.yaml) and the environment under
`configplane:platform` and `configplane:services` (stack file); configplane merges them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

NAMESPACE = "configplane"
DEFAULTS_KEY = f"{NAMESPACE}:defaults"
PLATFORM_KEY = f"{NAMESPACE}:platform"
SERVICES_KEY = f"{NAMESPACE}:services"
PROJECT_FILE = "Pulumi.yaml"


class StackFileError(Exception):
    """A stack or project file that cannot be read at all (missing, not YAML)."""


@dataclass(frozen=True)
class Declaration:
    """A config key declared in Pulumi.yaml (`type`, `secret: true`)."""

    type: str | None
    secret: bool


@dataclass(frozen=True)
class StackValue:
    secure: bool
    value: Any = None  # None for secure values: configplane never holds ciphertext or plaintext


@dataclass(frozen=True)
class StackInputs:
    stack: str
    project_file: str
    stack_file: str
    defaults: Mapping[str, Any]
    environment: Mapping[str, Any]
    declarations: Mapping[str, Declaration] = field(default_factory=dict)
    values: Mapping[str, StackValue] = field(default_factory=dict)
    project: str = NAMESPACE
    project_values: Mapping[str, Any] = field(default_factory=dict)  # Pulumi.yaml `config` values
    # problems found while reading (duplicate YAML keys): (path, file, message)
    read_problems: tuple[tuple[str, str, str], ...] = ()
    # what the stack file holds under each `secure:` (checked to be a ciphertext; never shown)
    secure_raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


def stack_file_name(stack: str) -> str:
    return f"Pulumi.{stack}.yaml"


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # C parser when built
    """SafeLoader that records duplicate mapping keys instead of silently keeping the last."""

    duplicates: list[tuple[str, int]]


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            loader.duplicates.append((str(key), key_node.start_mark.line + 1))
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def _load_yaml(path: Path) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    if not path.is_file():
        raise StackFileError(f"{path.name}: file not found in {path.parent.resolve()}")
    loader = _UniqueKeyLoader(path.read_text())
    loader.duplicates = []
    try:
        document = loader.get_single_data() or {}
    except yaml.YAMLError as exc:
        raise StackFileError(f"{path.name}: not valid YAML: {exc}") from None
    except (TypeError, ValueError, RecursionError) as exc:  # e.g. a complex key `? [a, b]`
        raise StackFileError(f"{path.name}: YAML that is not configuration "
                             f"({type(exc).__name__}: a list or mapping used as a key, or "
                             "nesting too deep). Fix: use plain string keys") from None
    finally:
        loader.dispose()
    if not isinstance(document, dict):
        raise StackFileError(f"{path.name}: expected a mapping at the top level")
    return document, loader.duplicates


def _config_of(document: Mapping[str, Any], file: str) -> Mapping[str, Any]:
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise StackFileError(f"{file}: `config` must be a mapping of keys to values, not "
                             f"{type(config).__name__}. Fix: write `config:` with indented "
                             "`key: value` lines")
    return config


def _full_key(key: str, project: str) -> str:
    # Pulumi accepts bare keys in Pulumi.yaml `config:`; they belong to the project namespace.
    return key if ":" in key else f"{project}:{key}"


@dataclass(frozen=True)
class ProjectFile:
    name: str
    declarations: Mapping[str, Declaration]
    values: Mapping[str, Any]
    duplicates: tuple[tuple[str, int], ...]


def read_project_file(project_dir: Path) -> ProjectFile:
    document, duplicates = _load_yaml(project_dir / PROJECT_FILE)
    name = str(document.get("name", NAMESPACE))
    declarations: dict[str, Declaration] = {}
    values: dict[str, Any] = {}
    for key, spec in _config_of(document, PROJECT_FILE).items():
        full = _full_key(key, name)
        if isinstance(spec, dict) and _DECLARATION_FIELDS & spec.keys():
            declarations[full] = Declaration(spec.get("type"), bool(spec.get("secret", False)))
            if "value" in spec or "default" in spec:  # Pulumi uses a `default` as the value
                values[full] = spec["value"] if "value" in spec else spec["default"]
        else:
            values[full] = spec
    return ProjectFile(name, declarations, values, tuple(duplicates))


_DECLARATION_FIELDS = {"type", "secret", "default", "value", "description"}


def read_stack_files(project_dir: Path, stack: str) -> StackInputs:
    """Read the project and stack files as the Pulumi CLI would see them."""
    project = read_project_file(project_dir)
    stack_name = stack_file_name(stack)
    stack_doc, stack_dups = _load_yaml(project_dir / stack_name)

    values: dict[str, StackValue] = {}
    secure_raw: dict[str, Any] = {}
    for key, value in _config_of(stack_doc, stack_name).items():
        full = _full_key(key, project.name)
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[full] = StackValue(secure=True)
            secure_raw[full] = value["secure"]
        else:
            values[full] = StackValue(secure=False, value=value)

    problems = [
        (key, file, f"key `{key}` appears twice (line {line}); YAML keeps only the last one. "
         "Fix: remove one of them.")
        for file, dups in ((PROJECT_FILE, project.duplicates), (stack_name, stack_dups))
        for key, line in dups
    ]
    return StackInputs(
        stack=stack,
        project_file=PROJECT_FILE,
        stack_file=stack_name,
        defaults=_value(values, DEFAULTS_KEY, project.values.get(DEFAULTS_KEY)) or {},
        environment=_environment(
            _value(values, PLATFORM_KEY, project.values.get(PLATFORM_KEY)),
            _value(values, SERVICES_KEY, project.values.get(SERVICES_KEY)),
        ),
        declarations=project.declarations,
        values=values,
        project=project.name,
        project_values=project.values,
        read_problems=tuple(problems),
        secure_raw=secure_raw,
    )


def _value(values: Mapping[str, StackValue], key: str, fallback: Any) -> Any:
    found = values.get(key)
    return found.value if found is not None else fallback


def _environment(platform: Any, services: Any) -> dict[str, Any]:
    environment: dict[str, Any] = {}
    if platform is not None:
        environment["platform"] = platform
    if services is not None:
        environment["services"] = services
    return environment


def inputs_from_pulumi(project_dir: Path, stack: str) -> StackInputs:
    """The same inputs, as a running Pulumi program sees them (config from the engine).

    Values come from `pulumi.Config` (so `--config` and `pulumi config set` count); which keys
    are declared secret comes from Pulumi.yaml, which the program runs beside.
    """
    import pulumi
    from pulumi.runtime.config import CONFIG, get_config_env, is_config_secret

    config = pulumi.Config(NAMESPACE)
    values = {
        key: StackValue(secure=True) if is_config_secret(key) else StackValue(False, _decode(raw))
        for key, raw in {**get_config_env(), **CONFIG.get()}.items()
    }
    return StackInputs(
        stack=stack,
        project_file=PROJECT_FILE,
        stack_file=stack_file_name(stack),
        defaults=config.get_object("defaults") or {},
        environment=_environment(config.get_object("platform"), config.get_object("services")),
        declarations=read_project_file(project_dir).declarations,
        values=values,
    )


def _decode(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw
