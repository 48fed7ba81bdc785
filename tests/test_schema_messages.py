"""configplane/schema_messages.py: the value-free JSON Schema messages of the program and the
pack (one file, two importers: the pack reads it through policies/schema_messages.py), over
real jsonschema errors."""

from __future__ import annotations

import jsonschema
from hypothesis import given
from hypothesis import strategies as st

from configplane.schema_messages import (
    deepest,
    drop_required,
    error_path,
    pack_message,
    program_message,
)

SECRET = "hunter2-Canary7f3e9cQ2w"
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["PORT", "LOG_LEVEL"],
    "propertyNames": {"pattern": "^[A-Z_]+$"},
    "properties": {
        "PORT": {"type": "integer", "minimum": 1, "maximum": 65535},
        "LOG_LEVEL": {"enum": ["debug", "info", "warn"]},
        "MODE": {"const": "live"},
        "HOST": {"type": "string", "pattern": "^[a-z.]+$", "maxLength": 64},
        "TAGS": {"type": "array", "uniqueItems": True},
    },
}


def errors(instance: object, schema: dict = SCHEMA) -> list[jsonschema.ValidationError]:
    validator = jsonschema.Draft202012Validator(schema)
    return sorted(validator.iter_errors(instance), key=lambda e: (list(e.absolute_path),
                                                                 e.validator))


def only(instance: object) -> jsonschema.ValidationError:
    (error,) = errors({"PORT": 8080, "LOG_LEVEL": "info", **instance})
    return error


def test_program_and_pack_messages_name_the_place_and_never_the_value() -> None:
    cases = {
        "PORT": (SECRET, "wrong type. Fix: use a value of type integer.",
                 'data.PORT: type "integer" not satisfied'),
        "LOG_LEVEL": (SECRET, "value not allowed. Fix: use one of debug, info, warn.",
                      'data.LOG_LEVEL: enum ["debug", "info", "warn"] not satisfied'),
        "MODE": (SECRET, "value not allowed. Fix: use one of live.",
                 'data.MODE: const "live" not satisfied'),
        "HOST": ("UPPER", "value does not match pattern ^[a-z.]+$. Fix: correct the value.",
                 'data.HOST: pattern "^[a-z.]+$" not satisfied'),
        "TAGS": ([SECRET, SECRET], "uniqueItems True not satisfied. Fix: correct the value.",
                 "data.TAGS: uniqueItems not satisfied"),
    }
    for key, (value, program, pack) in cases.items():
        error = only({key: value})
        assert (error_path(error), program_message(error), pack_message(error, "data")) == (
            [key], program, pack), key
    bound = only({"PORT": 70000})
    assert program_message(bound) == "value out of range (maximum 65535). Fix: adjust it."
    assert pack_message(bound, "data") == "data.PORT: maximum 65535 not satisfied"


def test_unknown_keys_are_named_at_the_key() -> None:
    error = next(e for e in errors({"PORT": 1, "LOG_LEVEL": "info", "EXTRA": SECRET,
                                    "ALSO": SECRET}) if e.validator == "additionalProperties")
    assert error_path(error) == ["ALSO"]
    assert program_message(error) == (
        "unknown key(s) ALSO, EXTRA. Fix: remove or rename; known keys: HOST, LOG_LEVEL, MODE, "
        "PORT, TAGS.")
    assert pack_message(error, "data") == "data: unknown key(s) ALSO, EXTRA"


def test_required_and_property_names() -> None:
    (missing,) = errors({"PORT": 1})
    assert program_message(missing) == "'LOG_LEVEL' is a required property. Fix: add it."
    assert pack_message(missing, "data") == "data: 'LOG_LEVEL' is a required property"
    named = [e for e in errors({"PORT": 1, "LOG_LEVEL": "info", "bad-key": 1})
             if "propertyNames" in e.absolute_schema_path]
    assert [pack_message(e, "data") for e in named] == [
        'data: key "bad-key": pattern "^[A-Z_]+$" not satisfied']


def test_deepest_picks_the_branch_that_got_furthest() -> None:
    schema = {"anyOf": [{"type": "string"},
                        {"type": "object", "properties": {"a": {"type": "object", "properties": {
                            "b": {"type": "integer"}}}}, "required": ["a"]}]}
    (error,) = errors({"a": {"b": SECRET}}, schema)
    assert error.validator == "anyOf"
    inner = deepest(error)
    assert (list(inner.absolute_path), inner.validator) == (["a", "b"], "type")
    assert pack_message(inner, "data.flags") == 'data.flags.a.b: type "integer" not satisfied'
    (flat,) = errors(SECRET, {"type": "integer"})
    assert deepest(flat) is flat


@given(required=st.lists(st.sampled_from("ABCDE"), unique=True),
       drop=st.sets(st.sampled_from("ABCDEF")))
def test_drop_required(required: list[str], drop: set[str]) -> None:
    schema = {"type": "object", "required": required, "x-other": 1}
    pruned = drop_required(schema, drop)
    assert pruned["required"] == [k for k in required if k not in drop]
    assert {k: v for k, v in pruned.items() if k != "required"} == {"type": "object",
                                                                     "x-other": 1}
    assert schema["required"] == required  # the given schema is left as it was
    if not set(required) & drop:
        assert pruned is schema
