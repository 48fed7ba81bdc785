"""A service's own app schema (`services/<name>/schema.json`) and how it composes with the
platform's kind schema (`schemas/services/<kind>.schema.json`): what `validate`, the program
and the pack (configmap-schema, through the link policies/service_schema.py) apply.

The service team owns the file (its directory, its CODEOWNERS); the platform sets the limits:

- it may add keys of its own (named in its `properties`, that the kind does not declare) and
  narrow keys the kind declares (the effective subschema of such a key is
  `allOf: [kind's, service's]`), add `required` keys, add keys taken from secrets or
  overridable by tenants among its own keys, and add root constraints (`allOf`, `anyOf`,
  `oneOf`, `not`, `if`/`then`/`else`, `dependentRequired`, ...), which only narrow;
- it cannot loosen the kind: the kind's `required`, its property schemas, its root
  `additionalProperties` and those of its sections, its secret and tenant keys all stay, so a
  config the effective schema accepts is one the kind accepts once the service's own keys are
  set aside (tests/test_service_schema.py proves it as a property);
- a key of its own that names a secret (the pack's detector decides: `*_TOKEN`, `*_PASSWORD`,
  `API_KEY`...) cannot be plain config: it is declared under `secrets:`;
- a `$ref` points inside the file (`#/$defs/...`): no other file, no URL, no `$id` or
  anchors that would change what a reference means; references are inlined once, so a loop
  or an expansion bomb is refused, and the file is bounded in bytes, depth and nodes;
- patterns must compile under RE2 (no backreferences or lookaround): service patterns are
  matched in linear time, so no config value can hang `validate` or the pack.

Standard library only and free of other imports (the pack links this file); the few facts it
shares with configplane/contract.py are copies pinned by tests/test_service_schema.py.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

SERVICE_SCHEMA_FILE = "schema.json"  # in services/<name>/
MAX_BYTES = 64 * 1024
MAX_DEPTH = 24  # nesting of JSON objects and arrays in the file
MAX_NODES = 4000  # schema nodes once its references are inlined
MAX_INLINED_BYTES = 4 * MAX_BYTES  # and the JSON of their values (enums, consts, patterns)

# Copies of configplane/contract.py (a linked fact imports no other module; pinned by a test).
SECRET_KEYS = "x-configplane-secret-keys"
TENANT_KEYS = "x-configplane-tenant-overridable"
DATA_KEY = r"[-._a-zA-Z0-9]+"

# Draft 2020-12 keywords, by what their value is.
ONE_SCHEMA = ("not", "if", "then", "else", "items", "contains", "additionalProperties",
              "propertyNames", "unevaluatedItems", "unevaluatedProperties", "contentSchema")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
SCHEMA_MAPS = ("properties", "dependentSchemas", "$defs")
PLAIN = ("type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
         "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
         "uniqueItems", "maxContains", "minContains", "maxProperties", "minProperties",
         "required", "dependentRequired", "title", "description", "default", "deprecated",
         "readOnly", "writeOnly", "examples", "$comment", "format", "contentEncoding",
         "contentMediaType", "$ref")
KEYWORDS = frozenset((*ONE_SCHEMA, *SCHEMA_LISTS, *SCHEMA_MAPS, *PLAIN))
# Keywords that change what a reference means, or match keys by pattern (which could make a
# secret-named key plain config): refused anywhere in a service's schema.
REFUSED = {
    "$id": "it would change what `$ref` resolves against",
    "$anchor": "references point at `#/$defs/<name>`, not anchors",
    "$dynamicRef": "references point at `#/$defs/<name>`",
    "$dynamicAnchor": "references point at `#/$defs/<name>`",
    "$recursiveRef": "references point at `#/$defs/<name>`",
    "$recursiveAnchor": "references point at `#/$defs/<name>`",
    "$vocabulary": "the platform chooses the vocabulary",
    "definitions": "it is `$defs` in draft 2020-12",
    "patternProperties": "keys are declared by name, so each one is judged (a pattern could "
                         "make a secret-named key plain config)",
}
# Root keywords beyond the ones composed key by key: constraints that only narrow.
ROOT_NARROWING = ("allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentRequired",
                  "dependentSchemas", "minProperties", "maxProperties", "propertyNames")
ROOT_OWN = ("$schema", "title", "description", "$comment", "type", "properties", "required",
            "additionalProperties", "$defs", SECRET_KEYS, TENANT_KEYS)
FIX_ROOT = ("Fix: use `properties`, `required`, `$defs`, `x-configplane-secret-keys`, "
            "`x-configplane-tenant-overridable` or constraints that narrow "
            f"({', '.join(ROOT_NARROWING)}).")

Path = tuple[str, ...]
SecretKey = Callable[[str], bool]  # does this config key name a secret (the pack's detector)
PatternCheck = Callable[[str], bool]  # does this pattern compile under RE2


@dataclass(frozen=True)
class SchemaProblem:
    """One problem of a service's schema file: where in the file (a key path) and what, with
    the fix. Never quotes a value of the file (a const could hold a pasted secret)."""

    path: Path
    message: str


class _Refused(Exception):
    def __init__(self, path: Path, message: str):
        super().__init__(message)
        self.problem = SchemaProblem(path, message)


def parse(data: bytes) -> tuple[Any, list[SchemaProblem]]:
    """The file's JSON, or why it cannot be used (size, encoding, syntax, duplicate keys,
    non-finite numbers, depth): never an exception."""
    if len(data) > MAX_BYTES:
        return None, [SchemaProblem((), f"the file is {len(data)} bytes; a service schema is "
                                    f"at most {MAX_BYTES}. Fix: keep the service's own keys "
                                    "only (the kind's are the platform's).")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, [SchemaProblem((), "not UTF-8. Fix: save the file as UTF-8 JSON.")]
    if _depth(text) > MAX_DEPTH:
        return None, [SchemaProblem((), f"nested deeper than {MAX_DEPTH} levels. Fix: flatten "
                                    "it (config values are flat).")]

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        for key in keys:
            if keys.count(key) > 1:
                raise ValueError(f"the key `{_show(key)}` appears twice in one object")
        return dict(pairs)

    def finite(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(text, object_pairs_hook=unique, parse_constant=finite), []
    except json.JSONDecodeError as exc:
        return None, [SchemaProblem((), f"not valid JSON ({exc.msg} at line {exc.lineno}, "
                                    f"column {exc.colno}). Fix: correct the JSON.")]
    except (ValueError, RecursionError) as exc:
        return None, [SchemaProblem((), f"not valid JSON ({exc}). Fix: correct the JSON.")]


def _depth(text: str) -> int:
    """The deepest nesting of brackets outside strings (before parsing: the parser recurses)."""
    deepest = level = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            level += 1
            deepest = max(deepest, level)
        elif char in "]}":
            level -= 1
    return deepest


def compose(kind: Mapping[str, Any], service: Any, secret_key: SecretKey,
            pattern_ok: PatternCheck, source: str = SERVICE_SCHEMA_FILE
            ) -> tuple[dict[str, Any] | None, list[SchemaProblem]]:
    """The effective app schema of a service: its kind's schema narrowed and extended by the
    service's (see the module doc), or None and every problem of the service's schema."""
    if not isinstance(service, dict):
        return None, [SchemaProblem((), "a service schema is a JSON object. Fix: start from "
                                    '`{"properties": {}}`.')]
    props = kind.get("properties")
    kind_props: dict[str, Any] = props if isinstance(props, dict) else {}
    problems = _check_root(kind, service)
    lists = {("properties",), ("required",), (SECRET_KEYS,), (TENANT_KEYS,)}
    if not any(p.path in lists for p in problems):  # they have their shapes
        problems += _check_own_keys(kind, kind_props, service, secret_key)
    problems += _check_tree(service, (), pattern_ok)
    if problems:
        return None, problems
    try:
        inlined = _inline(service, service, (), (), [0, 0])
    except _Refused as exc:
        return None, [exc.problem]
    own = inlined.get("properties", {})

    effective = copy.deepcopy(dict(kind))
    properties = dict(effective.get("properties") or {})
    for key, sub in own.items():
        properties[key] = {"allOf": [properties[key], sub]} if key in kind_props else sub
    effective["properties"] = properties
    for keyword in ("required", SECRET_KEYS, TENANT_KEYS):
        merged = list(kind.get(keyword) or [])
        merged += [k for k in inlined.get(keyword, []) if k not in merged]
        if merged:
            effective[keyword] = merged
    narrowing = {k: v for k, v in inlined.items() if k in ROOT_NARROWING}
    if narrowing:
        effective["allOf"] = [*(kind.get("allOf") or []), narrowing]
    effective["title"] = f"{kind.get('title') or 'app schema'} + {source}"
    return effective, []


def _check_root(kind: Mapping[str, Any], service: dict[str, Any]) -> list[SchemaProblem]:
    problems = []
    for key in service:
        if key not in ROOT_OWN and key not in ROOT_NARROWING and not key.startswith("x-") \
                and key not in REFUSED:
            problems.append(SchemaProblem((key,), f"`{_show(key)}` is not allowed at the root "
                                          f"of a service schema. {FIX_ROOT}"))
    if "$schema" in service and service["$schema"] != kind.get("$schema"):
        problems.append(SchemaProblem(("$schema",), "a service schema uses its kind's draft "
                                      f"({kind.get('$schema')}). Fix: remove `$schema` or set "
                                      "it to that."))
    if "type" in service and service["type"] != "object":
        problems.append(SchemaProblem(("type",), 'the app config is an object. Fix: remove '
                                      '`type` or set it to "object".'))
    if "additionalProperties" in service and service["additionalProperties"] is not False:
        problems.append(SchemaProblem(("additionalProperties",), "the kind closes the config to "
                                      "the keys it declares; a service may not open it. Fix: "
                                      "declare each key of your own under `properties` (and "
                                      "remove `additionalProperties`)."))
    for keyword in ("required", SECRET_KEYS, TENANT_KEYS):
        value = service.get(keyword, [])
        if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
            problems.append(SchemaProblem((keyword,), f"`{keyword}` is a list of config keys. "
                                          "Fix: correct it."))
    if not isinstance(service.get("properties", {}), dict):
        problems.append(SchemaProblem(("properties",), "`properties` maps config keys to their "
                                      "schemas. Fix: correct it."))
    return problems


def _check_tree(node: Any, path: Path, pattern_ok: PatternCheck) -> list[SchemaProblem]:
    """Every keyword known, refused ones named, references local, patterns RE2's, every
    subschema an object or a boolean."""
    if isinstance(node, bool):
        return []
    if not isinstance(node, dict):
        return [SchemaProblem(path, "a schema is an object or true/false. Fix: correct it.")]
    problems = []
    for key, value in node.items():
        problems += _check_keyword(key, value, path, pattern_ok)
    return problems


def _check_keyword(key: str, value: Any, path: Path, pattern_ok: PatternCheck
                   ) -> list[SchemaProblem]:
    here = (*path, key)
    if key in REFUSED:
        return [SchemaProblem(here, f"`{key}` is not allowed in a service schema: "
                              f"{REFUSED[key]}. Fix: remove it.")]
    if (path == () and key in ROOT_OWN + ROOT_NARROWING and key not in KEYWORDS) \
            or key.startswith("x-"):
        return []  # $schema and the x- lists: checked by _check_root; annotations: ignored
    if key not in KEYWORDS:
        hint = _closest(key)
        return [SchemaProblem(here, f"unknown keyword `{_show(key)}` (a validator would ignore "
                              "it). Fix: " + (f"did you mean `{hint}`?" if hint else
                                              "remove it, or prefix an annotation with `x-`."))]
    if key == "$ref":
        return _check_ref(here, value)
    if key == "pattern":
        if isinstance(value, str) and pattern_ok(value):
            return []
        return [SchemaProblem(here, "not a pattern RE2 accepts (no backreferences or "
                              "lookaround): config values are matched in linear time. Fix: "
                              "rewrite it.")]
    return _check_subschemas(key, value, here, pattern_ok)


def _check_subschemas(key: str, value: Any, here: Path, pattern_ok: PatternCheck
                      ) -> list[SchemaProblem]:
    if key in ONE_SCHEMA:
        return _check_tree(value, here, pattern_ok)
    if key in SCHEMA_LISTS:
        if not isinstance(value, list) or not value:
            return [SchemaProblem(here, f"`{key}` is a non-empty list of schemas. Fix: correct "
                                  "it.")]
        return [p for index, item in enumerate(value)
                for p in _check_tree(item, (*here, str(index)), pattern_ok)]
    if key in SCHEMA_MAPS:
        if not isinstance(value, dict):
            return [SchemaProblem(here, f"`{key}` maps names to schemas. Fix: correct it.")]
        return [p for name, item in value.items()
                for p in _check_tree(item, (*here, name), pattern_ok)]
    return []


def _check_ref(path: Path, ref: Any) -> list[SchemaProblem]:
    if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")):
        return []
    return [SchemaProblem(path, "a reference points inside this file (`#/$defs/<name>`): "
                          "no other file, no URL. Fix: copy the definition under `$defs`.")]


def _inline(node: Any, root: dict[str, Any], path: Path, following: tuple[str, ...],
            count: list[int]) -> Any:
    """`node` with every `$ref` replaced by what it points at (`$defs` dropped): a loop, a
    dangling pointer or more than MAX_NODES nodes is refused."""
    count[0] += 1
    if count[0] > MAX_NODES:
        raise _Refused(path, f"more than {MAX_NODES} schema nodes once its references are "
                       "inlined. Fix: simplify it (reuse fewer, smaller definitions).")
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        here = (*path, key)
        if key == "$defs" or key == "$ref":
            continue
        if key in ONE_SCHEMA:
            out[key] = _inline(value, root, here, following, count)
        elif key in SCHEMA_LISTS:
            out[key] = [_inline(v, root, (*here, str(i)), following, count)
                        for i, v in enumerate(value)]
        elif key in SCHEMA_MAPS:
            out[key] = {n: _inline(v, root, (*here, n), following, count) for n, v in value.items()}
        else:
            count[1] += len(json.dumps(value))
            if count[1] > MAX_INLINED_BYTES:
                raise _Refused(here, f"more than {MAX_INLINED_BYTES} bytes of values once "
                               "its references are inlined. Fix: simplify it (reuse fewer, "
                               "smaller definitions).")
            out[key] = value
    if "$ref" not in node:
        return out
    pointer = node["$ref"]
    if pointer in following:
        raise _Refused((*path, "$ref"), "the references form a loop (a schema that refers back "
                       "to itself never decides). Fix: break the loop.")
    target = _resolve(root, pointer, (*path, "$ref"))
    # what the target holds is reported where it is written in the file
    inlined = _inline(target, root, _pointer_path(pointer), (*following, pointer), count)
    return {"allOf": [inlined, out]} if out else inlined


def _pointer_path(pointer: str) -> Path:
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in pointer[2:].split("/")
                 ) if pointer != "#" else ()


def _resolve(root: dict[str, Any], pointer: str, path: Path) -> Any:
    node: Any = root
    for part in _pointer_path(pointer):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _Refused(path, "the reference points at nothing in this file. Fix: point it "
                           "at a definition under `$defs`.")
    if not isinstance(node, dict | bool):
        raise _Refused(path, "the reference points at something that is not a schema. Fix: "
                       "point it at a definition under `$defs`.")
    return node


def _check_own_keys(kind: Mapping[str, Any], kind_props: Mapping[str, Any],
                    service: Mapping[str, Any], secret_key: SecretKey) -> list[SchemaProblem]:
    """The keys the service declares, requires, takes from secrets or lets tenants set."""
    problems = []
    own = service.get("properties", {})
    kind_secret = set(kind.get(SECRET_KEYS) or [])
    delivered = set(service.get(SECRET_KEYS, []))  # its own keys a secret delivers: not config
    new = {k for k in own if k not in kind_props}
    for key in sorted(new):
        here = ("properties", key)
        if not re.fullmatch(DATA_KEY, key):
            problems.append(SchemaProblem(here, f"config key `{_show(key)}` cannot be a "
                                          "ConfigMap key (letters, digits, '-', '_' and '.' "
                                          "only). Fix: rename it."))
        elif key not in delivered and (key in kind_secret or secret_key(key)):
            problems.append(SchemaProblem(here, f"`{key}` names a secret, and config is plain "
                                          "text in a ConfigMap. Fix: remove it from the schema "
                                          "and declare it under `secrets:` in service.yaml (or "
                                          "list it in `x-configplane-secret-keys` if a secret "
                                          "delivers it)."))
    declared = set(kind_props) | set(own)
    for key in service.get("required", []):
        if key not in declared:
            problems.append(SchemaProblem(("required",), f"`{_show(key)}` is required but "
                                          "declared nowhere (the kind closes the config). Fix: "
                                          "declare it under `properties`."))
    for keyword, what in ((SECRET_KEYS, "taken from secrets"), (TENANT_KEYS,
                                                                 "overridable by tenants")):
        for key in service.get(keyword, []):
            if key not in new:
                problems.append(SchemaProblem((keyword,), f"only the service's own keys can be "
                                              f"made {what}; `{_show(key)}` is "
                                              + ("the kind's: the platform decides that. Fix: "
                                                 "ask the platform, or remove it."
                                                 if key in kind_props else
                                                 "not declared. Fix: declare it under "
                                                 "`properties`.")))
    return problems


def _closest(word: str) -> str | None:
    found = difflib.get_close_matches(word, sorted(KEYWORDS | set(REFUSED)), n=1, cutoff=0.75)
    return found[0] if found else None


def _show(text: str) -> str:
    """A key as printed in a message: short, one line (the file is the user's, not a value)."""
    text = text if len(text) <= 64 else text[:61] + "..."
    return text.encode("unicode_escape").decode("ascii")
