"""Pulumi's config as configplane reads it: Pulumi.yaml (declarations and project values),
Pulumi.<stack>.yaml (stack values, `secure:` ciphertexts never decrypted) and, under `pulumi up`,
the config the engine hands the running program.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configplane.inputs.layerfiles import Problem, duplicates, load
from configplane.inputs.stackfiles import (
    PLATFORM_KEY,
    PROJECT_FILE,
    Declaration,
    StackFileError,
    StackValue,
    is_stack_name,
    stack_file_name,
)
from configplane.inputs.yamlload import KeyPath, YamlError
from configplane.projectfiles import is_file, kind_of

DECLARATION_FIELDS = {"type", "secret", "default", "value", "description"}


@dataclass(frozen=True)
class ConfigFile:
    """Pulumi.yaml or Pulumi.<stack>.yaml, as loaded (None: absent)."""

    name: str
    document: Mapping[str, Any]
    lines: Mapping[KeyPath, int]
    present: bool = True


def existing_stacks(project_dir: Path) -> list[str]:
    """The stacks whose files are in the project directory (Pulumi.<stack>.yaml, the stack
    named as --stack accepts it: an odd file name is never echoed)."""
    try:
        with os.scandir(project_dir) as listing:
            names = [entry.name for entry in listing]
    except OSError:
        return []
    stacks = (name[len("Pulumi."):-len(".yaml")] for name in names
              if name.startswith("Pulumi.") and name.endswith(".yaml"))
    return sorted(stack for stack in stacks if is_stack_name(stack)
                  and is_file(project_dir, stack_file_name(stack)))


def environments(project_dir: Path) -> tuple[str, ...]:
    """Every environment: each stack whose file sets the platform's settings. A shard's own
    stack file (its secure values only, docs/fleet.md) is not one; a file that cannot be read
    or parsed counts, so that `validate` reports it."""
    found = []
    for stack in existing_stacks(project_dir):
        try:  # contained and size-checked, like every project file
            document = load(project_dir, stack_file_name(stack)).document
        except (YamlError, OSError, UnicodeDecodeError):
            found.append(stack)
            continue
        config = document.get("config") if isinstance(document, Mapping) else None
        if not isinstance(config, Mapping) or PLATFORM_KEY in config:
            found.append(stack)
    return tuple(found)


def missing_stack_problem(project_dir: Path, stack: str) -> str:
    """A stack file that is not there: the environments that are (a shard's stack is named
    after its environment: `--shard`), and the nearest stack name to the typo."""
    where = f"file not found in {Path(project_dir).resolve()}"
    stacks = list(environments(project_dir))
    if not stacks:
        return f"{where}, nor any other stack file. Fix: check --project-dir."
    guess = difflib.get_close_matches(stack, existing_stacks(project_dir), n=1)
    hint = f"; did you mean `{guess[0]}`?" if guess else "."
    return (f"{where}: there is no stack {stack!r}{hint} Fix: use one of the stacks that exist: "
            f"{', '.join(stacks)}.")


def config_file(project_dir: Path, name: str, required: bool,
                problems: list[Problem]) -> ConfigFile:
    if not required and not is_file(project_dir, name):
        return ConfigFile(name, {}, {}, present=False)
    stack = name[len("Pulumi."):-len(".yaml")] if name != PROJECT_FILE else ""
    if (required and stack and kind_of(project_dir, name) is None
            and is_file(project_dir, PROJECT_FILE)):  # a project, but no such stack: a typo?
        problem = missing_stack_problem(project_dir, stack)
        raise StackFileError(f"{name}: {problem}", name, None, problem)
    try:
        loaded = load(project_dir, name)
    except YamlError as exc:
        raise StackFileError(str(exc), exc.file, exc.line, exc.problem) from None
    document = loaded.document if loaded.document is not None else {}
    if not isinstance(document, dict):
        raise StackFileError(f"{name}: expected a mapping at the top level")
    config = document.get("config")
    if config is not None and not isinstance(config, dict):
        raise StackFileError(f"{name}: `config` must be a mapping of config keys to values "
                             "(Fix: indent the keys under `config:`)")
    problems.extend(duplicates(loaded, name))
    return ConfigFile(name, document, loaded.lines)


def full_key(key: str, project: str) -> str:
    # Pulumi accepts bare keys in Pulumi.yaml `config:`; they belong to the project namespace.
    return key if ":" in key else f"{project}:{key}"


def project_config(project_file: ConfigFile, project: str
                   ) -> tuple[dict[str, Declaration], dict[str, Any], dict[str, KeyPath]]:
    """Pulumi.yaml's `config:`: the declared keys, the project values and where each value
    sits in the file (full key -> key path)."""
    declarations: dict[str, Declaration] = {}
    project_values: dict[str, Any] = {}
    value_paths: dict[str, KeyPath] = {}
    for key, spec in (project_file.document.get("config") or {}).items():
        full = full_key(key, project)
        if isinstance(spec, dict) and DECLARATION_FIELDS & spec.keys():
            declarations[full] = Declaration(spec.get("type"), bool(spec.get("secret", False)))
            if "value" in spec or "default" in spec:  # Pulumi uses a `default` as the value
                field_name = "value" if "value" in spec else "default"
                project_values[full] = spec[field_name]
                value_paths[full] = ("config", key, field_name)
        else:
            project_values[full] = spec
            value_paths[full] = ("config", key)
    return declarations, project_values, value_paths


def estimate_plaintext_length(ciphertext: Any) -> int:
    """A secure value's decrypted length, from its ciphertext. Passphrase provider
    (`v1:<nonce>:<AES-GCM ciphertext>`): the ciphertext less the 16-byte tag. Otherwise the
    base64-decoded length (an upper bound: envelopes carry more than the value)."""
    text = str(ciphertext or "")
    body = text.split(":")[-1] if text.startswith("v1:") else text
    decoded = len(body.rstrip("=")) * 3 // 4
    return max(decoded - 16, 0) if text.startswith("v1:") else decoded


def stack_values(stack_file: ConfigFile, project: str) -> dict[str, StackValue]:
    values: dict[str, StackValue] = {}
    for key, value in (stack_file.document.get("config") or {}).items():
        full = full_key(key, project)
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[full] = StackValue(True, None, estimate_plaintext_length(value["secure"]))
        else:
            values[full] = StackValue(False, value)
    return values


def secure_raw(stack_file: ConfigFile, project: str) -> dict[str, Any]:
    """What the stack file holds under each `secure:` (checked to be a ciphertext; never shown)."""
    return {full_key(key, project): value["secure"]
            for key, value in (stack_file.document.get("config") or {}).items()
            if isinstance(value, dict) and set(value) == {"secure"}}


def runtime_values() -> dict[str, StackValue]:
    """Config as a running Pulumi program sees it (the engine's, so `--config` and `pulumi
    config set` count; project values included). Secrets keep only their length."""
    from pulumi.runtime.config import CONFIG, get_config_env, is_config_secret

    values = {}
    for key, raw in {**get_config_env(), **CONFIG.get()}.items():
        if is_config_secret(key):
            values[key] = StackValue(True, None, len(raw))
        else:
            try:
                values[key] = StackValue(False, json.loads(raw))
            except ValueError:
                values[key] = StackValue(False, raw)
    return values
