"""Splitting an environment's one stack into its platform stack and shards moves resources,
never creates or deletes one (docs/fleet.md, Moving), proven on the offline plans of every
sample environment: the environment as one stack (`one_stack=True`, what the state holds
before the split) against the plans of each stack of the split."""

from __future__ import annotations

import shlex
from functools import cache

import pulumi
import pytest

from configplane.offline import run_plan
from configplane.offline.fleet import plan_environment
from configplane.offline.results import STACK_TYPE
from configplane.offline.split import managed, split_of, unstacked
from tests.conftest import REPO, STACKS


@cache
def plans(environment: str):
    return run_plan(REPO, environment, one_stack=True), plan_environment(REPO, environment)


def known(value):
    """Inputs with the engine's unknowns as one marker (the SDK's Unknown has no equality)."""
    if isinstance(value, pulumi.output.Unknown):
        return "(unknown)"
    if isinstance(value, pulumi.Asset | pulumi.Archive):  # no equality either: by content
        return (type(value).__name__, known(vars(value)))
    if isinstance(value, dict):
        return {k: known(v) for k, v in value.items()}
    if isinstance(value, list):
        return [known(v) for v in value]
    return value


def parent_key(r) -> str | None:
    """A parent, stackless; the root stack (each stack has its own) is no parent here."""
    return None if r.parent is None or f"::{STACK_TYPE}::" in r.parent else unstacked(r.parent)


@pytest.mark.parametrize("environment", STACKS)
def test_every_resource_lands_in_exactly_one_stack_unchanged(environment):
    old, fleet = plans(environment)
    olds = {unstacked(r.urn): r for r in managed(old)}
    seen: dict[str, str] = {}
    platform_keys = {unstacked(r.urn) for r in managed(fleet.plans[0])}
    for stack, plan in zip(fleet.stacks, fleet.plans, strict=True):
        for r in managed(plan):
            key = unstacked(r.urn)
            assert key not in seen, f"{key} in {seen[key]} and {stack.name}"
            seen[key] = stack.name
            before = olds[key]  # KeyError: the split would create it
            assert (r.type, r.name, parent_key(r)) == (before.type, before.name, parent_key(before))
            assert known(r.inputs) == known(before.inputs), key
            # what differs: ordering edges to platform resources, which a shard cannot name
            # (another stack's); the deploy order (platform stack first) keeps them
            now = {unstacked(u) for u in r.options["dependsOn"]}
            was = {unstacked(u) for u in before.options["dependsOn"]}
            assert now <= was and (was - now) <= platform_keys, key
            if stack.kind == "platform":
                assert now == was and r.provider == before.provider
            assert {k: v for k, v in r.options.items() if k != "dependsOn"} == \
                {k: v for k, v in before.options.items() if k != "dependsOn"}
    assert set(seen) == set(olds)  # nothing is left behind to be deleted


@pytest.mark.parametrize("environment", STACKS)
def test_a_shard_adds_only_a_read_and_its_explicit_providers(environment):
    _, fleet = plans(environment)
    for plan in fleet.plans[1:]:
        extra = [r for r in plan.resources if r not in managed(plan)]
        assert sorted(r.type for r in extra) == ["pulumi:providers:aws",
                                                 "pulumi:providers:kubernetes",
                                                 "pulumi:providers:vault",
                                                 "pulumi:pulumi:StackReference"]
        reference = next(r for r in extra if r.read)
        assert reference.inputs["name"].endswith(f"/configplane/{environment}")
        providers = {r.urn + "::" + f"{r.name}-id": r for r in extra if not r.read}
        for r in managed(plan):  # each resource of a package is served by its explicit provider
            package = r.type.split(":", 1)[0]
            if r.custom and package in ("aws", "kubernetes", "vault"):
                assert providers[r.provider].name == package, r.urn


@pytest.mark.parametrize("environment", STACKS)
def test_the_move_commands_rebuild_each_stack_from_the_old_one(environment):
    """Applying the printed moves as `pulumi state move` does (each URN with all its
    descendants) to the old stack leaves exactly the platform stack and fills each shard."""
    old, fleet = plans(environment)
    split = split_of(old, fleet)
    assert split.unmatched_old == [] and split.unmatched_new == []
    state = {unstacked(r.urn): r for r in managed(old)}
    children: dict[str, list[str]] = {}
    for key, r in state.items():
        if parent_key(r):
            children.setdefault(parent_key(r), []).append(key)
    remaining = set(state)
    for move in split.moves:
        argv = move.argv()
        assert argv[:8] == ["pulumi", "state", "move", "--source", environment, "--dest",
                            move.dest, "--yes"]
        assert shlex.split(shlex.join(argv)) == argv
        assert move.aliases == []  # no parent changes: the components move whole
        taken, todo = set(), [unstacked(u) for u in argv[8:]]
        while todo:
            key = todo.pop()
            taken.add(key)
            todo += children.get(key, [])
        assert taken <= remaining  # no resource moved twice
        remaining -= taken
        target = next(p for s, p in zip(fleet.stacks, fleet.plans, strict=True)
                      if s.name == move.dest)
        assert taken == {unstacked(r.urn) for r in managed(target)}
        assert move.moved == len(taken)
    assert remaining == {unstacked(r.urn) for r in managed(fleet.plans[0])}
    assert split.stays == len(remaining)
    assert split.config == []  # the samples' secure values already sit in their shards' files
