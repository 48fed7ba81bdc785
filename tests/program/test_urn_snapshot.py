"""Guardrail for moves: every sample stack's resources, by URN and type, as a golden file.

A refactor must not rename a resource (a new URN is a delete and a create under `pulumi up`).
A change that means to add, remove or rename resources regenerates the files with
`CONFIGPLANE_UPDATE_SNAPSHOTS=1 venv/bin/python -m pytest tests/program/test_urn_snapshot.py` and
shows the difference in its diff.

`urns-<env>.txt` is each environment as the one stack it was before its split (what `shard
plan` moves resources from: unchanged by the split); `urns-<stack>.txt` for each stack of the
split, the platform stack (`-platform`, as it keeps the environment's name) and every shard
(docs/fleet.md).
"""

from __future__ import annotations

import os
from functools import cache

import pytest

from configplane.model import environment_stacks
from configplane.offline import run_plan
from configplane.offline.fleet import plan_environment
from tests.conftest import REPO, STACKS

SNAPSHOTS = REPO / "tests" / "snapshots"
FLEET = [(env, s.name) for env in STACKS for s in environment_stacks(REPO, env)]


@cache
def fleet_lines(environment: str) -> dict[str, list[str]]:
    fleet = plan_environment(REPO, environment)
    return {s.name: sorted(f"{r.type} {r.urn}" for r in p.resources)
            for s, p in zip(fleet.stacks, fleet.plans, strict=True)}


def check(golden, lines: list[str]) -> None:
    if os.environ.get("CONFIGPLANE_UPDATE_SNAPSHOTS") == "1":
        golden.write_text("\n".join(lines) + "\n")
    assert golden.is_file(), f"{golden} missing: generate it (see this module's docstring)"
    assert lines == golden.read_text().splitlines()


@pytest.mark.parametrize("stack", STACKS)
def test_the_environment_as_one_stack_keeps_its_urns(stack: str) -> None:
    plan = run_plan(REPO, stack, one_stack=True)
    check(SNAPSHOTS / f"urns-{stack}.txt", sorted(f"{r.type} {r.urn}" for r in plan.resources))


@pytest.mark.parametrize(("environment", "stack"), FLEET)
def test_each_stack_of_the_split_keeps_its_urns(environment: str, stack: str) -> None:
    name = f"{stack}-platform" if stack == environment else stack
    check(SNAPSHOTS / f"urns-{name}.txt", fleet_lines(environment)[stack])


def test_every_snapshot_is_a_stack():
    expected = {f"urns-{s}.txt" for s in STACKS}
    expected |= {f"urns-{s}-platform.txt" if s == e else f"urns-{s}.txt" for e, s in FLEET}
    assert {p.name for p in SNAPSHOTS.glob("urns-*.txt")} == expected
