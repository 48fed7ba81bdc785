"""A compiled check for valid documents: `fastjsonschema`, where it decides as jsonschema does.

configplane validates thousands of documents per stack (the stack, each service's app
config, each flag set). Most are valid; jsonschema's interpreter is slow at saying so. A
schema that uses only the keywords below is also compiled by fastjsonschema (defaults not
applied, jsonschema's own format checkers); `schema_errors` trusts its "valid" and runs
jsonschema only when there is something to report, for its messages and paths.
tests/inputs/test_schemacheck.py checks both agree on mutated documents for every schema.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import jsonschema

from configplane.contract import SCHEMA_SECRET_KEYS
from configplane.inputs.schemacache import SchemaCache
from configplane.schema_messages import drop_required

# Keywords the compiled check decides exactly as jsonschema does (draft 7 and the 2020-12
# subset our schemas use); a schema with any other keyword keeps jsonschema alone.
FAST_KEYWORDS = {
    "$schema", "$id", "$ref", "$defs", "definitions", "$comment", "title", "description",
    "default", "examples", "type", "enum", "const", "properties", "additionalProperties",
    "patternProperties", "required", "propertyNames", "minProperties", "maxProperties", "items",
    "minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "pattern", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "anyOf", "oneOf", "allOf",
    "not", "format", "deprecated",
}
FAST: dict[int, Any] = {}  # id(jsonschema validator) -> compiled check of the same schema


def keywords(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key.startswith("x-"):
                continue
            found.add(key)
            if key in ("properties", "patternProperties", "$defs", "definitions"):
                for sub in value.values() if isinstance(value, dict) else ():
                    found |= keywords(sub)
            elif key not in ("enum", "const", "default", "examples", "required"):
                found |= keywords(value)
    elif isinstance(schema, list):
        for item in schema:
            found |= keywords(item)
    return found


def compiled(schema: dict, checker: Any, *, cache: SchemaCache, identity: str = "",
             vet: Callable[[], None] | None = None) -> Any:
    """The compiled check of `schema`, or None where jsonschema must decide alone. Taken from
    `cache` when there (`identity`: what else its key must cover, e.g. the file's text);
    otherwise `vet` runs first (it raises for a schema that must not be stored), then it is
    compiled and stored. `vet` does not run for a schema kept from an earlier run: it passed."""
    if not keywords(schema) <= FAST_KEYWORDS:
        return None
    try:
        import fastjsonschema  # noqa: F401 - the pack's environment may not have it
    except ImportError:
        return None
    # A format jsonschema does not check (e.g. `uri` without rfc3987) is not checked here
    # either: fastjsonschema's own regex for it would refuse what jsonschema accepts.
    formats = {name: (lambda value: True) for name in _formats(schema)}
    formats.update({name: (lambda value, n=name: checker.conforms(value, n))
                    for name in checker.checkers})
    key = cache.key(schema, formats, identity)
    found = cache.load(key, formats)
    if found is not None:
        return found
    if vet is not None:
        vet()
    try:
        return cache.build(key, schema, formats)
    except Exception:  # noqa: BLE001 - a schema it cannot compile: jsonschema alone
        return None


def _formats(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "format" and isinstance(value, str):
                found.add(value)
            else:
                found |= _formats(value)
    elif isinstance(schema, list):
        for item in schema:
            found |= _formats(item)
    return found


def ecma_patterns(schema: Any) -> Any:
    """A copy of the schema whose `pattern`s end in `\\Z` where they end in `$`."""
    if isinstance(schema, dict):
        return {k: (v[:-1] + r"\Z" if k == "pattern" and isinstance(v, str) and v.endswith("$")
                    and not v.endswith("\\$") else ecma_patterns(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [ecma_patterns(v) for v in schema]
    return schema


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


_CONFIG_VALIDATORS: dict[tuple[int, frozenset[str]], tuple[Any, Any]] = {}


def config_validator(app: Any, delivered: frozenset[str]) -> Any:
    """The app schema as config sees it: keys that secrets deliver (or that the schema takes
    only from secrets) are not required of config; the checker reports them."""
    schema = app.schema
    drop = set(delivered) | set(schema.get(SCHEMA_SECRET_KEYS, []))
    if not drop & set(schema.get("required", [])):
        return app
    cache_key = (id(app), frozenset(drop & set(schema["required"])))
    if cache_key not in _CONFIG_VALIDATORS:  # validators are not hashable; `app` is kept alive
        pruned = drop_required(schema, drop)
        validator = type(app)(pruned, format_checker=app.FORMAT_CHECKER)
        if id(app) in FAST:  # the kind's schema has a compiled check: so has its pruned copy
            # (a composed one's patterns are RE2's and have none): without it, jsonschema
            # alone said "valid" of every database service's config
            fast = compiled(ecma_patterns(pruned), app.FORMAT_CHECKER,
                            cache=SchemaCache.from_environment())
            if fast is not None:
                FAST[id(validator)] = fast
        _CONFIG_VALIDATORS[cache_key] = (app, validator)
    return _CONFIG_VALIDATORS[cache_key][1]
