"""Policy config as the Pulumi CLI handles it (pkg/resource/analyzer/config.go): reading a
`--policy-pack-config` file, the default file for a stack (policies/config/<stack>.json), and
reconciling schema defaults <- the pack's initial config <- the file, validated against each
policy's schema."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from configplane.offline.results import PolicyConfigError
from configplane.projectfiles import ProjectFileError, read_argument

LEVELS = ("advisory", "mandatory", "remediate", "disabled")
CONFIG_DIR = "config"  # in the pack: <pack>/config/<stack>.json


def default_policy_config(pack_dir: Path, stack: str) -> Path:
    """The policy config file a stack uses when none is given: <pack>/config/<stack>.json."""
    return Path(pack_dir) / CONFIG_DIR / f"{stack}.json"


@dataclass(frozen=True)
class RawPolicy:
    """A policy as the pack describes it (GetAnalyzerInfo)."""

    name: str
    description: str
    level: str
    type: str
    severity: str
    display_name: str
    schema_properties: dict[str, Any] | None  # None: the pack does not support config
    schema_required: tuple[str, ...]


@dataclass(frozen=True)
class PolicyConfig:
    level: str | None  # None: keep the level from an earlier layer
    properties: Mapping[str, Any] | None


def load_policy_config_file(path: Path) -> dict[str, PolicyConfig]:
    """Parse a `--policy-pack-config` JSON file as the CLI does: each key is a policy name or
    `"all"`; each value an enforcement level or an object with `enforcementLevel` and the
    policy's properties."""
    try:
        text = read_argument(path).decode("utf-8")  # bounded: its size is checked first
    except ProjectFileError as e:
        raise PolicyConfigError(f"{e}") from None
    except OSError as e:
        raise PolicyConfigError(f"{path}: cannot read the policy config file: "
                                f"{e.strerror or e}") from None
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise PolicyConfigError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: "
                                f"{e.msg}); fix the syntax") from None
    if not isinstance(raw, dict):
        raise PolicyConfigError(f"{path}: the top level must be an object mapping policy names "
                                f"(or \"all\") to a level or an object")
    fix = f"use one of {', '.join(LEVELS)}"
    result: dict[str, PolicyConfig] = {}
    for name, value in raw.items():
        if isinstance(value, str):
            if value not in LEVELS:
                raise PolicyConfigError(f"{path}: {name}: {value!r} is not a valid enforcement "
                                        f"level; {fix}")
            result[name] = PolicyConfig(value, None)
        elif isinstance(value, dict):
            props = dict(value)
            level = props.pop("enforcementLevel", None)
            if level is not None and level not in LEVELS:
                raise PolicyConfigError(f"{path}: {name}.enforcementLevel: {level!r} is not a "
                                        f"valid enforcement level; {fix}")
            if level is not None or props:  # the CLI drops empty entries
                result[name] = PolicyConfig(level, props or None)
        else:
            raise PolicyConfigError(
                f"{path}: {name}: must be an enforcement level string or an object with "
                f"\"enforcementLevel\" and the policy's properties")
    return result


def _apply_config(result: dict[str, PolicyConfig], given: Mapping[str, PolicyConfig]) -> None:
    everything = given.get("all")
    if everything is not None and everything.level is not None:
        for name, cfg in result.items():
            result[name] = PolicyConfig(everything.level, cfg.properties)
    for name, cfg in given.items():  # "all" itself and unknown names are kept, as the CLI does
        prior = result.get(name, PolicyConfig(None, None))
        props = dict(prior.properties or {})
        props.update(cfg.properties or {})
        result[name] = PolicyConfig(cfg.level or prior.level,
                                    props if (prior.properties or cfg.properties) else None)


def reconcile_policy_config(
    policies: Sequence[RawPolicy], initial: Mapping[str, PolicyConfig],
    given: Mapping[str, PolicyConfig], source: str,
) -> dict[str, PolicyConfig]:
    """Defaults from the schemas <- the pack's initial config <- the file; then validate every
    policy's properties against its schema (ReconcilePolicyPackConfig)."""
    result: dict[str, PolicyConfig] = {}
    for p in policies:
        # a policy without a config schema (schema_properties None) has no defaults
        defaults = {k: s["default"] for k, s in (p.schema_properties or {}).items()
                    if isinstance(s, dict) and "default" in s}
        result[p.name] = PolicyConfig(p.level, defaults or None)
    _apply_config(result, initial)
    _apply_config(result, given)
    for name, cfg in result.items():
        if cfg.level is None:  # the CLI's Configure rejects the empty level
            raise PolicyConfigError(
                f"{source}: {name}: names no policy of this pack and sets no enforcementLevel; "
                f"fix the policy name or remove the entry")
    errors = []
    for p in policies:
        if p.schema_properties is None:
            continue
        schema: dict[str, Any] = {"type": "object"}
        if p.schema_properties:
            schema["properties"] = p.schema_properties
        if p.schema_required:
            schema["required"] = list(p.schema_required)
        configured = result.get(p.name)
        instance = dict(configured.properties or {}) if configured else {}
        for err in sorted(jsonschema.Draft7Validator(schema).iter_errors(instance), key=str):
            where = ".".join(str(x) for x in err.absolute_path)
            errors.append(f"{p.name}: {where + ': ' if where else ''}{err.message}")
    if errors:
        raise PolicyConfigError(f"invalid policy config ({source}):\n  " + "\n  ".join(errors))
    return result
