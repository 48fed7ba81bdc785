"""Schema errors as issues: the most relevant error of each failure, its key path, and a
message that never echoes the offending value."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jsonschema

from configplane.delivery import SCHEMA_SECRET_KEYS
from configplane.schemacheck import FAST


def schema_errors(validator: Any, instance: Any) -> Iterable[jsonschema.ValidationError]:
    """Every error, with oneOf/anyOf failures narrowed to the most relevant branch's error.
    A valid document is recognised by the schema's compiled check (fastjsonschema) alone;
    jsonschema runs only when there is something to report, for its messages and paths."""
    fast = FAST.get(id(validator))
    if fast is not None:
        try:
            fast(instance)
            return
        except Exception:  # noqa: BLE001 - invalid (or not decidable there): ask jsonschema
            pass
    for error in validator.iter_errors(instance):
        while error.validator in ("oneOf", "anyOf") and error.context:
            # `X | None` fields: the null branch's type error says nothing about a bad object
            branches = [e for e in error.context if e.validator != "type"] or error.context
            error = jsonschema.exceptions.best_match(branches)
        yield error


def error_path(error: jsonschema.ValidationError) -> list[str]:
    """The key path of an error; an unknown key is reported at the key itself."""
    path = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        path += extra[:1]
    return path


_CONFIG_VALIDATORS: dict[tuple[int, frozenset[str]], tuple[Any, Any]] = {}


def _config_validator(app: Any, delivered: frozenset[str]) -> Any:
    """The app schema as config sees it: keys that secrets deliver (or that the schema takes
    only from secrets) are not required of config; `_check_delivery` reports them."""
    schema = app.schema
    drop = set(delivered) | set(schema.get(SCHEMA_SECRET_KEYS, []))
    if not drop & set(schema.get("required", [])):
        return app
    cache_key = (id(app), frozenset(drop & set(schema["required"])))
    if cache_key not in _CONFIG_VALIDATORS:  # validators are not hashable; `app` is kept alive
        pruned = {**schema, "required": [k for k in schema["required"] if k not in drop]}
        _CONFIG_VALIDATORS[cache_key] = (app, type(app)(pruned, format_checker=app.FORMAT_CHECKER))
    return _CONFIG_VALIDATORS[cache_key][1]


def _schema_message(error: jsonschema.ValidationError) -> str:
    # Never echo the offending value: it could be a secret pasted into the wrong key.
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        known = ", ".join(sorted(error.schema.get("properties", {})))
        return f"unknown key(s) {', '.join(extra)}. Fix: remove or rename; known keys: {known}."
    if error.validator == "required":
        return f"{error.message}. Fix: add it."
    if error.validator in ("enum", "const"):
        allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
        return f"value not allowed. Fix: use one of {', '.join(map(str, allowed))}."
    if error.validator == "type":
        return f"wrong type. Fix: use a value of type {error.validator_value}."
    if error.validator == "pattern":
        return f"value does not match pattern {error.validator_value}. Fix: correct the value."
    if error.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"value out of range ({error.validator} {error.validator_value}). Fix: adjust it."
    return f"{error.validator} {error.validator_value!r} not satisfied. Fix: correct the value."
