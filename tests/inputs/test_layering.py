"""Merge laws and provenance (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from configplane.inputs import (
    Layer,
    Origin,
    apply_tenant,
    leaves,
    merge,
    resolve,
    resolve_tenant,
    tenant_layers,
)

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


# --- tenants: a tenant's overrides are layers `tenant:<name>` on the service's config --------

KEYS = st.sampled_from(["A", "B", "C"])
VALUES = st.one_of(st.integers(0, 3), st.sampled_from(["x", "y"]), st.booleans())
CONFIGS = st.dictionaries(KEYS, st.one_of(VALUES, st.none()), max_size=3)
# A service layer: its config, and the tenant's overrides (a mapping, a null that takes them
# all back, or nothing).
SERVICE_LAYERS = st.fixed_dictionaries({}, optional={
    "config": CONFIGS,
    "tenants": st.one_of(st.none(), st.fixed_dictionaries({}, optional={
        "t": st.one_of(st.none(), st.fixed_dictionaries({}, optional={
            "config": st.one_of(st.none(), CONFIGS)}))})),
})


def _service_layers(docs):
    return [Layer(f"layer{i}", f"file{i}.yaml", {"svc": d}) for i, d in enumerate(docs)]


@given(st.lists(SERVICE_LAYERS, min_size=1, max_size=4))
def test_a_tenant_gets_the_service_config_with_its_merged_overrides_on_top(docs):
    """What the checker renders (apply_tenant of the validated service config and the tenant's
    merged config) is what the tenant's resolution holds: a tenant's null takes its own
    override back (the service's value applies again), it never deletes a service key."""
    layers = _service_layers(docs)
    whole = resolve(layers)
    service = whole.value.get("svc", {})
    overrides = ((service.get("tenants") or {}).get("t") or {}).get("config") or {}
    tenant = resolve_tenant(whole, ("svc",), "t", layers)
    assert tenant.value == {"svc": {"config": apply_tenant(service.get("config") or {},
                                                           overrides)}}
    for key in tenant.value["svc"]["config"]:
        origin = tenant.origins[("svc", "config", key)]
        if key in overrides:  # the last layer that set the override that survived
            setter = next(i for i in reversed(range(len(docs)))
                          if _sets(docs[i], ("tenants", "t", "config", key)))
            assert origin == Origin("tenant:t", f"file{setter}.yaml")
        else:
            assert origin == whole.origins[("svc", "config", key)]
        assert tenant.history[("svc", "config", key)][-1 if key in overrides else 0] is not None


@given(st.lists(SERVICE_LAYERS, min_size=1, max_size=4))
def test_tenant_settings_follow_the_service_settings_and_say_where_they_were_written(docs):
    layers = _service_layers(docs)
    whole = resolve(layers)
    tenant = resolve_tenant(whole, ("svc",), "t", layers)
    for path, settings in tenant.history.items():
        service_part = [s for s in settings if s.origin.layer != "tenant:t"]
        assert service_part == whole.history.get(path, [])
        assert settings[:len(service_part)] == service_part  # the service's first
        for s in settings[len(service_part):]:
            assert s.origin.layer == "tenant:t"
            if path == ("svc", "config"):  # a null that took the overrides back (or `{}`)
                assert s.value in (None, {})
                assert s.written_at in {("svc", "tenants"), ("svc", "tenants", "t"),
                                        ("svc", "tenants", "t", "config")}
            else:
                assert s.written_at == ("svc", "tenants", "t", "config", *path[2:])
            file = int(s.origin.file.removeprefix("file").removesuffix(".yaml"))
            assert _at(docs[file], s.written_at[1:]) == s.value  # what that file has there


def _at(document, path):
    for key in path:
        document = document[key]
    return document


def test_tenant_layers_from_each_file_with_lines():
    layers = [
        Layer("service", "services/w/service.yaml",
              {"w": {"config": {"A": 1}, "tenants": {"t": {"config": {"A": 2, "B": 3}}}}},
              {("w", "tenants", "t", "config", "A"): 7, ("w", "tenants", "t", "config", "B"): 8}),
        Layer("environment", "services/w/prod.yaml", {"w": {"config": {"A": 5}}}),
        Layer("environment", "services/w/staging.yaml", {"w": {"tenants": {"t": None}}},
              {("w", "tenants", "t"): 2}),
    ]
    found = tenant_layers(layers, ("w",), "t")
    assert found == [
        Layer("tenant:t", "services/w/service.yaml", {"w": {"config": {"A": 2, "B": 3}}},
              {("w", "config", "A"): 7, ("w", "config", "B"): 8},
              moved=(("w", "config"), ("w", "tenants", "t", "config"))),
        Layer("tenant:t", "services/w/staging.yaml", {"w": {"config": None}},
              {("w", "config"): 2}, moved=(("w", "config"), ("w", "tenants", "t"))),
    ]
    tenant = resolve_tenant(resolve(layers), ("w",), "t", layers)
    # the null took both overrides back: the service's values apply, A from prod.yaml
    assert tenant.value == {"w": {"config": {"A": 5}}}
    assert tenant.origins == {("w", "config", "A"): Origin("environment", "services/w/prod.yaml")}
    assert [(s.value, s.origin.where, s.written_at) for s in tenant.history[("w", "config")]] == [
        (None, "services/w/staging.yaml:2", ("w", "tenants", "t"))]
    assert [(s.value, s.origin.where, s.written_at)
            for s in tenant.history[("w", "config", "A")]] == [
        (1, "services/w/service.yaml", None), (5, "services/w/prod.yaml", None),
        (2, "services/w/service.yaml:7", ("w", "tenants", "t", "config", "A"))]
