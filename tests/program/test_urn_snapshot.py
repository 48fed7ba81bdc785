"""Guardrail for moves: every sample stack's resources, by URN and type, as a golden file.

A refactor must not rename a resource (a new URN is a delete and a create under `pulumi up`).
A change that means to add, remove or rename resources regenerates the files with
`CONFIGPLANE_UPDATE_SNAPSHOTS=1 venv/bin/python -m pytest tests/program/test_urn_snapshot.py` and
shows the difference in its diff.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import REPO, STACKS
from tests.projects import sample_plan

SNAPSHOTS = REPO / "tests" / "snapshots"


def urn_lines(stack: str) -> list[str]:
    plan = sample_plan(stack)
    return sorted(f"{r.type} {r.urn}" for r in plan.resources)


@pytest.mark.parametrize("stack", STACKS)
def test_resources_keep_their_urns(stack: str) -> None:
    golden = SNAPSHOTS / f"urns-{stack}.txt"
    lines = urn_lines(stack)
    if os.environ.get("CONFIGPLANE_UPDATE_SNAPSHOTS") == "1":
        golden.write_text("\n".join(lines) + "\n")
    assert golden.is_file(), f"{golden} missing: generate it (see this module's docstring)"
    assert lines == golden.read_text().splitlines()
