"""The offline plan of an environment's stacks: its platform stack, then its shards in
parallel processes (bounded by the machine's cores), each shard's StackReference fed with the
platform stack's planned outputs (docs/fleet.md)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configplane.inputs import reading_once, reading_once_active
from configplane.model import FleetStack, environment_topology, stack_role
from configplane.offline.plan import Plan, run_plan


class FleetSelectionError(Exception):
    """A --shard or --service that names nothing in the environment (message names the fix)."""


@dataclass
class FleetPlan:
    """The plans of one environment's stacks, the platform stack first."""

    environment: str
    stacks: list[FleetStack]
    plans: list[Plan] = field(default_factory=list)

    def merged(self) -> Plan:
        """All stacks as one report: every resource and violation (each URN names its stack),
        the platform's outputs with every shard's services beside them."""
        outputs: dict[str, Any] = dict(self.plans[0].outputs) if self.plans else {}
        services: dict[str, Any] = {}
        for plan in self.plans:
            services.update(plan.outputs.get("services") or {})
        if services or "services" in outputs:
            outputs["services"] = dict(sorted(services.items()))
        merged = Plan(stack=self.environment, project=self.plans[0].project if self.plans else "",
                      resources=[r for p in self.plans for r in p.resources], outputs=outputs,
                      violations=[v for p in self.plans for v in p.violations])
        merged.model = self.plans[0].model if len(self.plans) == 1 else None
        merged.inputs = self.plans[0].inputs if len(self.plans) == 1 else None
        return merged

    def as_dict(self, redactor: Any = None) -> dict[str, Any]:
        return {"environment": self.environment,
                "stacks": [{**s.as_dict(), "plan": p.as_dict(redactor)}
                           for s, p in zip(self.stacks, self.plans, strict=True)]}


def select_stacks(project_dir: Path, environment: str, shards: Iterable[str] = (),
                  services: Iterable[str] = ()) -> list[FleetStack]:
    """The environment's stacks a run plans: the platform stack, then every shard, or only
    the shards named (`--shard`) and those holding the services named (`--service`)."""
    topology = environment_topology(project_dir, environment)
    stacks = list(topology.stacks())
    shards, services = list(shards), list(services)
    if not (shards or services) or not topology.sharded:
        if shards and not topology.sharded:
            raise FleetSelectionError(f"environment `{environment}` is one stack (no "
                                      "platform.shards). Fix: drop --shard.")
        return stacks[:1] if not topology.sharded else stacks
    known = set(topology.shards())
    for shard in shards:
        if shard not in known:
            raise FleetSelectionError(f"environment `{environment}` has no shard `{shard}` "
                                      f"(shards: {', '.join(sorted(known)) or 'none'}). Fix: "
                                      "check the name (`configplane where <service>`).")
    wanted = set(shards) | {topology.assignment[s] for s in services if s in topology.assignment}
    return [stacks[0], *(s for s in stacks[1:] if s.shard in wanted)]


def _plan_one(project_dir: Path, stack: str, options: Mapping[str, Any], once: bool) -> Plan:
    """One shard's plan in a worker process; `once`: its command reads and validates each
    stack once (configplane.inputs.reading_once), here too."""
    with reading_once() if once else nullcontext():
        return run_plan(project_dir, stack, **options)


def plan_environment(project_dir: Path, environment: str, *, shards: Iterable[str] = (),
                     services: Iterable[str] = (), workers: int | None = None,
                     progress: Callable[[Any], None] | None = None,
                     **options: Any) -> FleetPlan:
    """Plan the environment's stacks (`select_stacks`): the platform stack here, then the
    shards in up to `workers` processes (default: the machine's cores); one shard, or one
    worker, plans in this process (with `progress`). `options`: run_plan's (policy,
    secure_values, policy_config_file, mocks)."""
    project_dir = Path(project_dir).resolve()
    role = stack_role(project_dir, environment)
    if role.kind != "platform":
        raise FleetSelectionError(f"`{environment}` is a shard stack. Fix: plan its "
                                  f"environment `{role.environment}` with --shard {role.shard}.")
    stacks = select_stacks(project_dir, environment, shards, services)
    chosen = list(services) or None
    platform = run_plan(project_dir, environment, progress=progress, **options)
    plans = [platform]
    rest = stacks[1:]
    shard_options = {**options, "services": chosen, "references": {environment: platform.outputs}}
    workers = max(1, min(workers or os.cpu_count() or 1, len(rest)))
    if workers == 1 or options.get("mocks") is not None:
        plans += [run_plan(project_dir, s.name, progress=progress, **shard_options) for s in rest]
    else:
        # spawn: a fresh interpreter per worker, never a fork of this one's SDK state
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            once = reading_once_active()
            futures = [pool.submit(_plan_one, project_dir, s.name, shard_options, once)
                       for s in rest]
            plans += [f.result() for f in futures]
    return FleetPlan(environment, stacks, plans)
