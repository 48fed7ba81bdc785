"""Merge laws and provenance (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from configplane.layering import Layer, leaves, merge, resolve

SCALARS = st.one_of(st.integers(0, 3), st.sampled_from(["x", "y"]), st.booleans(),
                    st.lists(st.integers(0, 2), max_size=2))


def documents(allow_null: bool, depth: int = 3):
    """Documents whose paths keep one type in every layer, as a schema guarantees: keys `m*`
    hold mappings, keys `s*` scalars or lists. (With a path that is a scalar in one layer and
    a mapping in another, deep merge is not associative, in configplane or anywhere.)"""
    leaf = st.one_of(SCALARS, st.none()) if allow_null else SCALARS
    scalars = st.dictionaries(st.sampled_from(["s1", "s2"]), leaf, max_size=2)
    if depth == 0:
        return scalars
    mappings = st.dictionaries(
        st.sampled_from(["m1", "m2"]),
        st.one_of(documents(allow_null, depth - 1), st.none()) if allow_null
        else documents(allow_null, depth - 1),
        max_size=2,
    )
    return st.builds(lambda a, b: {**a, **b}, scalars, mappings)


@given(documents(False), documents(False), documents(False))
def test_merge_is_associative(a, b, c):
    assert merge(merge(a, b), c) == merge(a, merge(b, c))


@given(documents(True))
def test_empty_layer_is_identity(a):
    cleaned = merge({}, a)
    assert merge(cleaned, {}) == cleaned
    assert merge({}, cleaned) == cleaned


@given(documents(False), documents(True))
def test_override_wins_and_null_deletes(base, override):
    merged = merge(base, override)
    for key, value in override.items():
        if value is None:
            assert key not in merged
        elif not (isinstance(value, dict) and isinstance(base.get(key), dict)):
            assert merged[key] == merge({}, {key: value})[key]


@given(documents(False), documents(False))
def test_lists_and_scalars_replace(base, override):
    merged = merge(base, override)
    for path, value in leaves(override).items():
        if value != {}:
            node = merged
            for key in path:
                node = node[key]
            assert node == value


@given(st.lists(documents(True), min_size=1, max_size=4))
def test_every_leaf_has_the_provenance_of_the_last_layer_that_set_it(docs):
    layers = [Layer(f"layer{i}", f"file{i}.yaml", d) for i, d in enumerate(docs)]
    resolved = resolve(layers)
    expected = merge({}, {})
    for d in docs:
        expected = merge(expected, d)
    assert resolved.value == expected
    result_leaves = leaves(resolved.value)
    assert set(resolved.origins) <= set(result_leaves)
    for path, value in result_leaves.items():
        if value == {}:
            continue
        origin = resolved.origins[path]
        setter = next(layer for layer in reversed(layers) if _sets(layer.document, path))
        assert (origin.layer, origin.file) == (setter.name, setter.file)


def _sets(document, path):
    for key in path:
        if not isinstance(document, dict) or key not in document:
            return False
        document = document[key]
    return document is not None and not isinstance(document, dict)


def test_history_keeps_overridden_values():
    resolved = resolve([
        Layer("project", "Pulumi.yaml", {"svc": {"LOG_LEVEL": "info"}}),
        Layer("environment", "Pulumi.prod.yaml", {"svc": {"LOG_LEVEL": "warn"}}),
    ])
    history = resolved.history[("svc", "LOG_LEVEL")]
    assert [(s.value, s.origin.file) for s in history] == [
        ("info", "Pulumi.yaml"), ("warn", "Pulumi.prod.yaml")]
    assert resolved.origins[("svc", "LOG_LEVEL")].file == "Pulumi.prod.yaml"
