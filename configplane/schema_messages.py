"""Value-free JSON Schema messages, shared by the program (`validate`, configplane/validation/pipeline.py and
configplane/model/flags.py) and the pack (policies/configmaps.py, through the symlink
policies/schema_messages.py).

Stdlib only and free of imports from configplane: it works on jsonschema's ValidationError by
its attributes (validator, validator_value, message, instance, schema, absolute_path,
absolute_schema_path, context), so the pack's environment needs nothing of ours.

A message says where and what, never the offending value: it could be a secret pasted into the
wrong key. The program and the pack word their messages differently (the program adds a Fix:
for a person editing a stack file, the pack lists problems inside one violation), so each has
its own function here; both keep the output they had before they were moved here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def deepest(error: Any) -> Any:
    """The innermost error of an anyOf/oneOf failure: the one whose instance path got furthest
    in (flagd's schemas nest anyOf deeply); the first such in depth-first order on a tie."""
    best, stack = error, [error]
    while stack:
        node = stack.pop()
        if len(node.absolute_path) > len(best.absolute_path):
            best = node
        stack.extend(reversed(node.context or []))
    return best


def unknown_keys(error: Any) -> list[str]:
    """The keys an `additionalProperties` error is about (sorted)."""
    return sorted(set(error.instance) - set(error.schema.get("properties", {})))


def error_path(error: Any) -> list[str]:
    """The key path of an error; an unknown key is reported at the key itself."""
    path = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        path += unknown_keys(error)[:1]
    return path


def drop_required(schema: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The schema with `keys` no longer required (keys delivered from secrets, not config);
    the schema itself when none of them is required."""
    drop = set(keys)
    required = schema.get("required")
    if not required or not drop & set(required):
        return schema
    return {**schema, "required": [k for k in required if k not in drop]}


def program_message(error: Any) -> str:
    """What `configplane validate` says about one error, with the fix (its path is told
    apart, by error_path)."""
    if error.validator == "additionalProperties":
        known = ", ".join(sorted(error.schema.get("properties", {})))
        return (f"unknown key(s) {', '.join(unknown_keys(error))}. Fix: remove or rename; "
                f"known keys: {known}.")
    if error.validator == "required":
        return f"{error.message}. Fix: add it."
    if error.validator in ("enum", "const"):
        allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
        return f"value not allowed. Fix: use one of {', '.join(map(str, allowed))}."
    if error.validator == "type":
        return f"wrong type. Fix: use a value of type {error.validator_value}."
    if error.validator == "pattern":
        return f"value does not match pattern {error.validator_value}. Fix: correct the value."
    if error.validator in BOUNDS:
        return f"value out of range ({error.validator} {error.validator_value}). Fix: adjust it."
    return f"{error.validator} {error.validator_value!r} not satisfied. Fix: correct the value."


PACK_NAMED_KEYWORDS = ("type", "enum", "const", "pattern", "format", *BOUNDS,
                       "minLength", "maxLength")


def pack_message(error: Any, prefix: str) -> str:
    """What a pack policy says about one error: the dotted path under `prefix` and what is
    wrong (configmap-schema joins these into one violation)."""
    path = ".".join(str(p) for p in error.absolute_path)
    where = f"{prefix}.{path}" if path else prefix
    kind = error.validator
    if "propertyNames" in error.absolute_schema_path:  # the instance is a key: safe to name
        return f"{where}: key {json.dumps(error.instance)}: {kind} " \
               f"{json.dumps(error.validator_value)} not satisfied"
    if kind == "additionalProperties":
        return f"{where}: unknown key(s) {', '.join(unknown_keys(error))}"
    if kind == "required":
        return f"{where}: {error.message}"
    if kind in PACK_NAMED_KEYWORDS:
        return f"{where}: {kind} {json.dumps(error.validator_value)} not satisfied"
    return f"{where}: {kind} not satisfied"
