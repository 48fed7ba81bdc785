"""Schema files (schemas/*.json): read once, checked against their metaschema, applied with
JSON Schema's own regex semantics. A file that cannot be used is a `SchemaFileError` naming it
(never a traceback that would print the instance being validated)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from configplane.inputs.layering import dotted
from configplane.inputs.schemacache import SchemaCache
from configplane.inputs.schemacheck import FAST, compiled
from configplane.projectfiles import ProjectFileError, read_text

# The schemas of a source checkout: the default where no project directory is given (commands
# pass `<project>/schemas`, so an installed wheel reads the project's own).
SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"


class SchemaFileError(Exception):
    """A schema file that cannot be used: missing, not JSON, not a valid JSON Schema."""

    def __init__(self, file: str, message: str):
        super().__init__(f"{file}: {message}")
        self.file = file
        self.message = message


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    # ECMA-262 semantics (JSON Schema's): `$` is the end of the string, where Python's `$`
    # also matches before a trailing newline (so "api\n" would pass `^[a-z]+$`).
    if not validator.is_type(instance, "string"):
        return
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    if not re.search(pattern, instance):
        yield jsonschema.ValidationError(f"does not match {pattern!r}")


def load_validator(path: Path, cache: SchemaCache | None = None) -> jsonschema.protocols.Validator:
    """The validator of a schema file, compiled once per content: every copy of a project
    (each test's, each stack's) shares it, and an edited file is compiled afresh. Its compiled
    check comes from `cache` (SchemaCache.from_environment() when None) across runs."""
    name = _display(path)
    try:  # contained in its directory (no link out), its size checked before it is read
        text = read_text(path.parent, path.name)
    except ProjectFileError as exc:
        raise SchemaFileError(name, f"{exc.problem}") from None
    except FileNotFoundError:
        raise SchemaFileError(name, "schema file not found. Fix: restore it.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaFileError(name, f"cannot read the schema ({type(exc).__name__}). Fix: "
                              "save it as UTF-8 JSON.") from None
    return _compiled_validator(name, text, cache or SchemaCache.from_environment())


@lru_cache(maxsize=1024)
def _compiled_validator(name: str, text: str, cache: SchemaCache) -> jsonschema.protocols.Validator:
    """Keyed by the name errors show, the content and the cache; a failure is raised again
    each time. A schema whose compiled check the cache holds was checked when it was stored."""
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaFileError(name, f"not valid JSON ({exc.msg} at line {exc.lineno}, column "
                              f"{exc.colno}). Fix: correct the JSON.") from None
    if not isinstance(schema, dict | bool):
        raise SchemaFileError(name, "a JSON Schema is an object. Fix: correct the file.")
    cls = jsonschema.validators.validator_for(schema)
    checked = []

    def check() -> None:
        _check_schema(name, schema, cls)
        checked.append(True)

    # the fast path for valid documents decides with the same `$` as the patterns below
    fast = None if isinstance(schema, bool) else compiled(
        _ecma_patterns(schema), cls.FORMAT_CHECKER, cache=cache, vet=check,
        identity=f"{text}\n{cls.__name__}")
    if not checked and fast is None:
        check()
    ecma = jsonschema.validators.extend(cls, {"pattern": _pattern})
    validator = ecma(schema, format_checker=cls.FORMAT_CHECKER)
    if fast is not None:
        FAST[id(validator)] = fast
    return validator


def _check_schema(name: str, schema: Any, cls: Any) -> None:
    """The schema against its metaschema (`{"type": "objectz"}`, broken regexes)."""
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = dotted([str(p) for p in exc.absolute_path]) or "(root)"
        raise SchemaFileError(name, f"not a valid JSON Schema at `{where}` ({exc.validator} "
                              "of the metaschema fails). Fix: correct the schema.") from None
    for pattern in _patterns(schema):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise SchemaFileError(name, f"pattern {pattern!r} is not a valid regular expression "
                                  f"({exc.msg}). Fix: correct the pattern.") from None


def _ecma_patterns(schema: Any) -> Any:
    """A copy of the schema whose `pattern`s end in `\\Z` where they end in `$`."""
    if isinstance(schema, dict):
        return {k: (v[:-1] + r"\Z" if k == "pattern" and isinstance(v, str) and v.endswith("$")
                    and not v.endswith("\\$") else _ecma_patterns(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_ecma_patterns(v) for v in schema]
    return schema


def _patterns(schema: Any) -> Iterable[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            elif key == "patternProperties" and isinstance(value, dict):
                yield from (k for k in value if isinstance(k, str))
                for sub in value.values():
                    yield from _patterns(sub)
            else:
                yield from _patterns(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _patterns(item)


def _display(path: Path) -> str:
    parts = path.parts
    return "/".join(parts[parts.index("schemas"):]) if "schemas" in parts else str(path)
