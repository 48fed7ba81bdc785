"""Policy config precedence (defaults <- the pack's initial config <- the file), in-process."""

from __future__ import annotations

import pytest

from configplane.offline import PolicyConfig, PolicyConfigError, RawPolicy, reconcile_policy_config


def policy(name: str, schema: dict | None, required: tuple[str, ...] = ()) -> RawPolicy:
    return RawPolicy(name, "", "advisory", "resource", "", name, schema, required)


def test_a_policy_without_a_config_schema_keeps_its_level_and_takes_no_properties():
    # schema_properties None: the pack supports no config for it (was: AttributeError)
    got = reconcile_policy_config([policy("plain", None)], {}, {"plain": PolicyConfig("mandatory", None)},
                                  "cfg.json")
    assert got == {"plain": PolicyConfig("mandatory", None)}


def test_defaults_then_initial_then_the_file():
    schema = {"limit": {"type": "integer", "default": 1}, "mode": {"type": "string", "default": "a"}}
    got = reconcile_policy_config(
        [policy("p", schema)], {"p": PolicyConfig(None, {"limit": 2})},
        {"p": PolicyConfig("disabled", {"mode": "b"})}, "cfg.json")
    assert got == {"p": PolicyConfig("disabled", {"limit": 2, "mode": "b"})}


def test_properties_are_checked_against_the_schema():
    with pytest.raises(PolicyConfigError, match="p: limit: 'x' is not of type 'integer'"):
        reconcile_policy_config([policy("p", {"limit": {"type": "integer"}})], {},
                                {"p": PolicyConfig(None, {"limit": "x"})}, "cfg.json")
