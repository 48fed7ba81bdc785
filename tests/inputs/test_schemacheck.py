"""The compiled fast path for valid documents decides exactly as jsonschema does.

`schema_errors` trusts fastjsonschema's "valid" and asks jsonschema only otherwise, so the
two must agree on every document: checked on the sample stacks' merged documents mutated at
random (types, values, deletions, unknown keys, a trailing newline on a string: JSON Schema's
`$` is the end of the string, Python's also matches before a final "\\n"), for every schema the
checks use. The fast path is the one `load_validator` registers in `schemacheck.FAST` for the
validators the checks use (`stack._validator`, schemafiles.load_validator)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from configplane.inputs import (
    FAST,
    SCHEMAS_DIR,
    config_validator,
    load_validator,
    read_stack_files,
    resolve_inputs,
)
from configplane.model import FLAGD_FLAGS_URI, flagd_fast_check, flagd_validator, render_flags
from configplane.validation.pipeline import _validator
from tests.conftest import REPO
from tests.documents import parent, paths

# The schemas the stack checks through `schema_errors`. Flags are no longer among them: they
# are checked by configplane/model/flags.py against flagd's vendored schemas (a registry, jsonschema
# alone), not through `_validator("flags.schema.json")`.
SCHEMAS = sorted([SCHEMAS_DIR / "stack.schema.json",
                  *(SCHEMAS_DIR / "services").glob("*.schema.json")])


def samples(schema: Path) -> list:
    found = []
    for stack in ("dev", "staging", "prod"):
        document = resolve_inputs(read_stack_files(REPO, stack)).value
        if schema.name == "stack.schema.json":
            found.append(document)
        for service in document["services"].values():
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


@st.composite
def mutated_from(draw, documents: list):
    """One of `documents` with 1-3 mutations anywhere: a value replaced, deleted, added, or a
    string given a trailing newline."""
    document = copy.deepcopy(draw(st.sampled_from(documents)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(paths(document))))
        action = draw(st.sampled_from(["replace", "delete", "add", "newline"]))
        if not path:
            if action == "replace":
                document = draw(json_values)
            continue
        holder = parent(document, path)
        if action == "newline":
            if isinstance(holder[path[-1]], str):
                holder[path[-1]] += "\n"
        elif action == "replace":
            holder[path[-1]] = draw(json_values)
        elif action == "delete" and isinstance(holder, dict):
            del holder[path[-1]]
        elif isinstance(holder, dict):
            holder[draw(st.text(max_size=6))] = draw(json_values)
    return document


def fast_valid(schema: Path, document) -> bool:
    try:
        FAST[id(_validator(schema))](document)
    except Exception:  # noqa: BLE001
        return False
    return True


def test_stack_uses_the_validators_that_register_the_fast_path():
    assert _validator is load_validator


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda p: p.name)
def test_every_schema_has_a_fast_path(schema):
    assert id(_validator(schema)) in FAST


def string_leaves(document):
    for path in paths(document):
        value = document
        for key in path:
            value = value[key]
        if path and isinstance(value, str):
            yield path


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda p: p.name)
def test_a_trailing_newline_is_decided_alike(schema):
    """Every string of every sample with "\\n" appended: both decide alike."""
    validator = _validator(schema)
    decided = 0
    for sample in samples(schema):
        for path in string_leaves(sample):
            document = copy.deepcopy(sample)
            parent = document
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] += "\n"
            assert fast_valid(schema, document) == validator.is_valid(document), path
            decided += 1
    assert decided, f"{schema.name}: no sample with a string to change"


def test_a_trailing_newline_fails_a_dollar_anchored_pattern_on_both_paths():
    """`^\\d{12}$` (the AWS account id): "333333333333\\n" is not an account id, for either."""
    schema = SCHEMAS_DIR / "stack.schema.json"
    document = copy.deepcopy(samples(schema)[0])
    assert fast_valid(schema, document) and _validator(schema).is_valid(document)
    document["platform"]["aws"]["account_id"] += "\n"
    assert not _validator(schema).is_valid(document)
    assert not fast_valid(schema, document)


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda p: p.name)
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_fast_path_and_jsonschema_agree(schema, data):
    validator = _validator(schema)
    document = data.draw(mutated_from(samples(schema)))
    assert fast_valid(schema, document) == validator.is_valid(document)


@pytest.mark.parametrize("schema", [s for s in SCHEMAS if s.parent.name == "services"],
                         ids=lambda p: p.name)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_pruned_app_schema_keeps_a_fast_path_that_agrees(schema, data):
    """The app schema as config sees it (required keys that secrets deliver dropped:
    `config_validator`) is checked by a compiled check too, deciding as jsonschema does."""
    kind = _validator(schema)
    delivered = frozenset(data.draw(st.sets(st.sampled_from(kind.schema["required"]),
                                            min_size=1)))
    pruned = config_validator(kind, delivered)
    assert id(pruned) in FAST
    document = data.draw(mutated_from(samples(schema)))
    try:
        FAST[id(pruned)](document)
        fast = True
    except Exception:  # noqa: BLE001
        fast = False
    assert fast == pruned.is_valid(document)


# --- flagd's schemas: flags.py trusts fastjsonschema's "valid" over the vendored copies ----

FLAGD_TARGETING_URI = "https://flagd.dev/schema/v0/targeting.json"
UPSTREAM_CASES = sorted((SCHEMAS_DIR / "vendor" / "flagd" / "test").rglob("*.json"))


def flagd_fast_valid(uri: str, document) -> bool:
    try:
        flagd_fast_check(uri, SCHEMAS_DIR)(document)
    except Exception:  # noqa: BLE001
        return False
    return True


def flag_documents() -> list:
    """The flagd documents the sample stacks render (every service with flags, every stack)."""
    found = []
    for stack in ("dev", "staging", "prod"):
        document = resolve_inputs(read_stack_files(REPO, stack)).value
        found += [render_flags(s["flags"]) for s in document["services"].values() if s.get("flags")]
    return found


def test_flagd_has_a_fast_path_and_the_samples_use_it():
    assert flagd_fast_check(FLAGD_FLAGS_URI, SCHEMAS_DIR) is not None
    assert flag_documents() and all(flagd_fast_valid(FLAGD_FLAGS_URI, d) for d in flag_documents())


@pytest.mark.parametrize("path", UPSTREAM_CASES, ids=lambda p: str(p.relative_to(SCHEMAS_DIR)))
def test_flagd_fast_path_decides_upstream_cases_as_jsonschema(path):
    uri = FLAGD_FLAGS_URI if path.parent.parent.name == "flags" else FLAGD_TARGETING_URI
    document = json.loads(path.read_text())
    assert flagd_fast_valid(uri, document) == flagd_validator(uri, SCHEMAS_DIR).is_valid(document)


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_flagd_fast_path_and_jsonschema_agree_on_mutated_documents(data):
    document = data.draw(mutated_from(flag_documents()))
    validator = flagd_validator(FLAGD_FLAGS_URI, SCHEMAS_DIR)
    assert flagd_fast_valid(FLAGD_FLAGS_URI, document) == validator.is_valid(document)
