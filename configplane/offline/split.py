"""Splitting an existing environment's one stack into its platform stack and shard stacks
without destroying anything: which resources go to which stack, and the exact
`pulumi state move` commands (Pulumi >= 3.120) that move them (docs/fleet.md, Moving).

Both sides are offline plans of the same program: the environment as the one stack it was
(`run_plan(..., one_stack=True)`) and each stack of the split (`plan_environment`). A resource
is matched by its URN with the stack name taken out (its type chain, parents included, and
name): what `pulumi state move` keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configplane.inputs import NAMESPACE
from configplane.offline.fleet import FleetPlan, plan_environment
from configplane.offline.plan import Plan, run_plan
from configplane.offline.results import STACK_TYPE, PlannedResource

MIN_PULUMI = "3.120.0"  # the first release with `pulumi state move`


def unstacked(urn: str) -> str:
    """A URN without its stack: `urn:pulumi:<stack>::<project>::<type>::<name>` -> the rest."""
    return urn.split("::", 1)[1]


def in_stack(urn: str, stack: str) -> str:
    return f"urn:pulumi:{stack}::{unstacked(urn)}"


@dataclass
class StackMove:
    """The resources one new stack takes from the old stack, and the command that moves them."""

    source: str
    dest: str
    urns: list[str]  # the top-level URNs (in the old stack) whose subtrees move
    moved: int  # resources moved, children included
    aliases: list[dict[str, str]] = field(default_factory=list)  # a URN whose parent changed

    def argv(self) -> list[str]:
        return ["pulumi", "state", "move", "--source", self.source, "--dest", self.dest,
                "--yes", *self.urns]


@dataclass
class SplitPlan:
    environment: str
    moves: list[StackMove]
    stays: int  # resources that stay in the platform stack
    config: list[list[str]]  # commands that move secure values to the shard that reads them
    # the old stack's resources no new stack declares, and new ones the old did not (each an
    # error: the split would delete or create them); a StackReference is read, not created
    unmatched_old: list[str] = field(default_factory=list)
    unmatched_new: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"environment": self.environment, "min_pulumi": MIN_PULUMI,
                "stays_in_platform_stack": self.stays,
                "config": self.config,
                "moves": [{"source": m.source, "dest": m.dest, "resources": m.moved,
                           "urns": m.urns, "argv": m.argv(), "aliases": m.aliases}
                          for m in self.moves],
                "unmatched_old": self.unmatched_old, "unmatched_new": self.unmatched_new}


def managed(plan: Plan) -> list[PlannedResource]:
    """What a stack's state holds for the split: managed resources, not reads, and not the
    shards' explicit providers (no cloud object; docs/fleet.md says what happens to them)."""
    return [r for r in plan.resources if not r.read and not r.type.startswith("pulumi:providers:")]


def split_environment(project_dir: Path, environment: str, **options: Any) -> SplitPlan:
    project_dir = Path(project_dir).resolve()
    old = run_plan(project_dir, environment, one_stack=True, **options)
    fleet = plan_environment(project_dir, environment, **options)
    return split_of(old, fleet)


def split_of(old: Plan, fleet: FleetPlan) -> SplitPlan:
    """Where each resource of `old` (the one stack) lands among `fleet`'s stacks."""
    environment = fleet.environment
    home: dict[str, str] = {}  # unstacked URN -> the new stack that declares it
    new_seen: list[str] = []
    for stack, plan in zip(fleet.stacks, fleet.plans, strict=True):
        for r in managed(plan):
            home[unstacked(r.urn)] = stack.name
            new_seen.append(unstacked(r.urn))
    old_by_key = {unstacked(r.urn): r for r in managed(old)}
    root = f"urn:pulumi:{environment}::{old.project}::{STACK_TYPE}::{old.project}-{environment}"
    moves: dict[str, StackMove] = {}
    stays = 0
    for key, r in sorted(old_by_key.items()):
        dest = home.get(key)
        if dest is None or dest == environment:
            stays += dest == environment
            continue
        move = moves.setdefault(dest, StackMove(environment, dest, [], 0))
        move.moved += 1
        parent = r.parent if r.parent and r.parent != root else None
        if parent is None or home.get(unstacked(parent)) != dest:
            move.urns.append(r.urn)  # its subtree moves with it
            if parent is not None:  # moved without its parent: the root becomes its parent
                move.aliases.append({"urn": in_stack(r.urn, dest), "parent": parent})
    config = [cmd for plan in fleet.plans[1:] for cmd in _config_moves(plan, environment)]
    return SplitPlan(environment, [moves[k] for k in sorted(moves)], stays, config,
                     sorted(k for k in old_by_key if k not in home),
                     sorted(k for k in new_seen if k not in old_by_key))


def _config_moves(plan: Plan, environment: str) -> list[list[str]]:
    """`pulumi config cp` + `rm` for each secure value a shard's services read that is still
    in the environment's stack file (only the shard can decrypt its own file)."""
    if plan.model is None or plan.inputs is None:
        return []
    out = []
    for svc in plan.model.services.values():
        for spec in svc.spec.secrets.values():
            full = f"{NAMESPACE}:{spec.config_key}"
            if spec.source == "secure" and spec.config_key and full not in plan.inputs.shard_secure:
                out.append(["pulumi", "config", "cp", "--stack", environment, "--dest",
                            plan.stack, full])
                out.append(["pulumi", "config", "rm", "--stack", environment, full])
    return out
