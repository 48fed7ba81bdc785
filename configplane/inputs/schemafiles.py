"""Schema files (schemas/*.json): read once, checked against their metaschema, applied with
JSON Schema's own regex semantics. A file that cannot be used is a `SchemaFileError` naming it
(never a traceback that would print the instance being validated)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import re2

from configplane import service_schema
from configplane.inputs.layering import dotted
from configplane.inputs.schemacache import SchemaCache
from configplane.inputs.schemacheck import FAST, compiled, ecma_patterns
from configplane.projectfiles import ProjectFileError, kind_of, read_bytes, read_text
from configplane.schema_messages import error_path

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


def in_document_order(cls: Any, keywords: Mapping[str, Any] | None = None) -> Any:
    """`cls` (with `keywords` replaced) whose `additionalProperties` reports the extra keys'
    errors in the document's order. jsonschema's descends into them in the order of a `set`
    of their names, which PYTHONHASHSEED changes: every service sits under `services`'
    additionalProperties, so the errors of a broken fleet (and `validate`'s report) came in a
    different order per run."""
    hashed = cls.VALIDATORS["additionalProperties"]

    def additional_properties(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        errors = list(hashed(validator, value, instance, schema) or ())
        if isinstance(instance, dict) and len(errors) > 1:
            order = {key: i for i, key in enumerate(instance)}
            errors.sort(key=lambda e: order.get(e.relative_path[0], -1)
                        if e.relative_path else -1)  # stable: one key's errors keep theirs
        return errors

    return jsonschema.validators.extend(
        cls, {**(keywords or {}), "additionalProperties": additional_properties})


@lru_cache(maxsize=1024)
def _compiled_validator(name: str, text: str, cache: SchemaCache) -> jsonschema.protocols.Validator:
    """Keyed by the name errors show, the content and the cache; a failure is raised again
    each time. A schema whose compiled check the cache holds was checked when it was stored."""
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaFileError(name, f"not valid JSON ({exc.msg} at line {exc.lineno}, column "
                              f"{exc.colno}). Fix: correct the JSON.") from None
    except RecursionError:
        raise SchemaFileError(name, "nested too deeply to read. Fix: flatten the schema.") from None
    if not isinstance(schema, dict | bool):
        raise SchemaFileError(name, "a JSON Schema is an object. Fix: correct the file.")
    cls = jsonschema.validators.validator_for(schema)
    checked = []

    def check() -> None:
        _check_schema(name, schema, cls)
        checked.append(True)

    # the fast path for valid documents decides with the same `$` as the patterns below
    fast = None if isinstance(schema, bool) else compiled(
        ecma_patterns(schema), cls.FORMAT_CHECKER, cache=cache, vet=check,
        identity=f"{text}\n{cls.__name__}")
    if not checked and fast is None:
        check()
    ecma = in_document_order(cls, {"pattern": _pattern})
    validator = ecma(schema, format_checker=cls.FORMAT_CHECKER)
    if fast is not None:
        FAST[id(validator)] = fast
    return validator


def _check_schema(name: str, schema: Any, cls: Any) -> None:
    """The schema against its metaschema (`{"type": "objectz"}`, broken regexes)."""
    try:
        if isinstance(schema, dict):  # `true` and `false` are schemas the metaschema accepts
            cls.check_schema(schema)  # the metaschema: `{"type": "objectz"}`, broken regexes
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


# --- a service's own schema (configplane/service_schema.py) ------------------------------


def service_validator(kind: jsonschema.protocols.Validator, project_dir: Path, rel: str,
                      secret_key: Callable[[str], bool]
                      ) -> tuple[jsonschema.protocols.Validator | None,
                                 list[service_schema.SchemaProblem]]:
    """The validator of a service's config: its kind's, or the kind's composed with the
    service's own schema file (`rel`, `services/<name>/schema.json`, under `project_dir`);
    None and every problem of that file when it cannot be used."""
    if kind_of(project_dir, rel) is None:
        return kind, []
    try:  # contained in the service's own directory, a regular file, its size checked first
        data = read_bytes(project_dir, rel, limit=service_schema.MAX_BYTES)
    except ProjectFileError as exc:
        return None, [service_schema.SchemaProblem((), exc.problem)]
    except OSError as exc:
        return None, [service_schema.SchemaProblem((), f"cannot be read ({exc.strerror}). "
                                                   "Fix: make it readable.")]
    document, problems = service_schema.parse(data)
    if problems:
        return None, problems
    if not isinstance(kind.schema, Mapping):  # `true`/`false`: nothing a service can extend
        return None, [service_schema.SchemaProblem((), "the kind's app schema is a boolean, so "
                      "a service cannot extend it. Fix: give the kind an object schema, or "
                      "remove this file.")]
    effective, problems = service_schema.compose(kind.schema, document, secret_key,
                                                 _re2_compiles, rel)
    problems += _metaschema_problems(type(kind), document, {p.path for p in problems})
    if problems or effective is None:
        return None, problems
    try:
        return _composed_validator(rel, json.dumps(effective, sort_keys=True)), []
    except SchemaFileError as exc:
        return None, [service_schema.SchemaProblem((), exc.message)]


def _metaschema_problems(cls: Any, document: Any, reported: set[tuple[str, ...]]
                         ) -> list[service_schema.SchemaProblem]:
    """What the draft's metaschema refuses (`"minimum": "ten"`), where compose said nothing
    at that path already; never the value."""
    problems = []
    for error in cls(cls.META_SCHEMA).iter_errors(document):
        path = tuple(error_path(error))
        if path not in reported and not any(path[:len(r)] == r for r in reported):
            reported.add(path)
            problems.append(service_schema.SchemaProblem(path, "not valid JSON Schema here "
                                                         f"({error.validator} of the "
                                                         "metaschema fails). Fix: correct it."))
    return problems


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is reported once, by us


@lru_cache(maxsize=4096)
def _re2(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error:
        return None


def _re2_compiles(pattern: str) -> bool:
    return _re2(pattern) is not None


def _re2_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    # RE2 runs in linear time, so a service's pattern cannot hang validate on a value; its
    # `$` is the end of the text, as in JSON Schema. The platform's patterns compile too (if
    # one ever does not, it is the platform's own and runs as in every kind schema).
    compiled_pattern = _re2(pattern)
    if compiled_pattern is None:
        yield from _pattern(validator, pattern, instance, schema)
    elif validator.is_type(instance, "string") and not compiled_pattern.search(instance):
        yield jsonschema.ValidationError(f"does not match {pattern!r}")


@lru_cache(maxsize=256)
def _composed_validator(name: str, text: str) -> jsonschema.protocols.Validator:
    """A composed schema, compiled once per content (no fast path: its patterns are RE2's)."""
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = dotted([str(p) for p in exc.absolute_path]) or "(root)"
        raise SchemaFileError(name, f"composed with its kind, not a valid JSON Schema at "
                              f"`{where}`. Fix: correct the service's schema.") from None
    return in_document_order(cls, {"pattern": _re2_pattern})(
        schema, format_checker=cls.FORMAT_CHECKER)
