"""The compiled fast path for valid documents decides exactly as jsonschema does.

`schema_errors` trusts fastjsonschema's "valid" and asks jsonschema only otherwise, so the
two must agree on every document: checked on the sample stacks' merged documents mutated at
random (types, values, deletions, unknown keys), for every schema the checks use."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from configplane.stack import _FAST, SCHEMAS_DIR, _validator, flags_document, resolve_inputs
from configplane.stackfiles import read_stack_files
from tests.conftest import REPO

SCHEMAS = sorted([SCHEMAS_DIR / "stack.schema.json", SCHEMAS_DIR / "flags.schema.json",
                  *(SCHEMAS_DIR / "services").glob("*.schema.json")])


def samples(schema: Path) -> list:
    found = []
    for stack in ("dev", "staging", "prod"):
        document = resolve_inputs(read_stack_files(REPO, stack)).value
        if schema.name == "stack.schema.json":
            found.append(document)
        for service in document["services"].values():
            if schema.name == "flags.schema.json" and service.get("flags"):
                found.append(flags_document(service["flags"]))
            if schema.parent.name == "services" and \
                    service["app_schema"] == schema.name.removesuffix(".schema.json"):
                found.append(service["config"])
    return found


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) |
    st.text(max_size=12) | st.sampled_from(["info", "ENABLED", "http://x", "", "off", "1h"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.text(max_size=6), children, max_size=3),
    max_leaves=6)


def paths(document, prefix=()):
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from paths(value, (*prefix, index))


@st.composite
def mutated(draw, schema: Path):
    document = copy.deepcopy(draw(st.sampled_from(samples(schema))))
    for _ in range(draw(st.integers(1, 3))):
        everywhere = list(paths(document))
        path = draw(st.sampled_from(everywhere))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if not path:
            if action == "replace":
                document = draw(json_values)
            continue
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        if action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(json_values)
    return document


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda p: p.name)
def test_every_schema_has_a_fast_path(schema):
    assert id(_validator(schema)) in _FAST


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda p: p.name)
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_fast_path_and_jsonschema_agree(schema, data):
    validator = _validator(schema)
    fast = _FAST[id(validator)]
    document = data.draw(mutated(schema))
    try:
        fast(document)
        fast_valid = True
    except Exception:  # noqa: BLE001
        fast_valid = False
    assert fast_valid == validator.is_valid(document)
