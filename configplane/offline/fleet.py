"""The offline plan of an environment's stacks: its platform stack, then its shards in
parallel processes (bounded by the machine's cores), each shard's StackReference fed with the
platform stack's planned outputs (docs/fleet.md). One shard (`plan --shard`) plans beside its
platform stack: the platform in a forked copy of this process, the shard here, its
StackReference waiting for the platform's outputs."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from configplane.forking import ForkedCall, may_fork
from configplane.inputs import reading_once, reading_once_active
from configplane.model import FleetStack, environment_topology, stack_role
from configplane.offline.plan import Plan, run_plan
from configplane.redaction import Redactor

PLANNING_PLATFORM = ("planning the platform stack", "run the plan again; if it recurs, plan "
                     "the platform stack alone (`configplane plan --stack <env>`) to see why")


class FleetSelectionError(Exception):
    """A --shard or --service that names nothing in the environment (message names the fix)."""


@dataclass
class FleetPlan:
    """The plans of one environment's stacks, the platform stack first."""

    environment: str
    stacks: list[FleetStack]
    plans: list[Plan] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)  # the pid that planned each stack

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


def _plan_one(project_dir: Path, stack: str, options: Mapping[str, Any],
              once: bool) -> tuple[int, Plan]:
    """One stack's plan in a worker process, and that process's pid; `once`: its command
    reads and validates each stack once (configplane.inputs.reading_once), here too."""
    with reading_once() if once else nullcontext():
        return os.getpid(), run_plan(project_dir, stack, **options)


def _plan_announcing(announce: Callable[[Mapping[str, Any]], None], project_dir: Path,
                     stack: str, options: Mapping[str, Any], once: bool,
                     redactor: Redactor | None) -> tuple[int, Plan, dict[Any, Any]]:
    """`_plan_one` in a forked process, announcing the stack's outputs as soon as its program
    has run; then, while the shard still plans, the plan judged by `redactor` as it will be
    printed: the detector's verdicts, for the command's process to `learn`."""
    pid, plan = _plan_one(project_dir, stack, {**options, "on_outputs": announce}, once)
    verdicts: dict[Any, Any] = {}
    if redactor is not None:
        try:
            with redactor.detector.recording() as verdicts:
                plan.as_dict(redactor)
        except Exception:  # noqa: BLE001 - printing judges again, and reports what fails
            verdicts = {}
    return pid, plan, verdicts


class _PendingOutputs(Mapping[str, Any]):
    """A stack's planned outputs, waited for when first read (the shard's StackReference)."""

    def __init__(self, planned: ForkedCall):
        self._planned = planned

    def _outputs(self) -> Mapping[str, Any]:
        return cast(Mapping[str, Any], self._planned.announced())

    def __getitem__(self, key: str) -> Any:
        return self._outputs()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs())

    def __len__(self) -> int:
        return len(self._outputs())


def plan_environment(project_dir: Path, environment: str, *, shards: Iterable[str] = (),
                     services: Iterable[str] = (), workers: int | None = None,
                     progress: Callable[[Any], None] | None = None,
                     redactor: Redactor | None = None, **options: Any) -> FleetPlan:
    """Plan the environment's stacks (`select_stacks`): the platform stack here, then the
    shards in up to `workers` processes (default: the machine's cores); one worker plans
    every stack in this process (with `progress`). One shard with two workers or more: the
    platform stack in a forked process (configplane.forking.may_fork) while the shard plans here (with
    `progress`); that process also judges its plan with `redactor` (what will print it),
    and this one learns its detector's verdicts. `options`: run_plan's (policy,
    secure_values, policy_config_file, mocks)."""
    project_dir = Path(project_dir).resolve()
    role = stack_role(project_dir, environment)
    if role.kind != "platform":
        raise FleetSelectionError(f"`{environment}` is a shard stack. Fix: plan its "
                                  f"environment `{role.environment}` with --shard {role.shard}.")
    stacks = select_stacks(project_dir, environment, shards, services)
    chosen = list(services) or None
    rest = stacks[1:]
    cores = workers or os.cpu_count() or 1
    here = options.get("mocks") is not None  # mocks are objects of this process
    shard_options = {**options, "services": chosen}
    once = reading_once_active()
    if len(rest) == 1 and cores > 1 and not here and may_fork():
        try:
            forked = ForkedCall(_plan_announcing, project_dir, environment, options, once,
                                redactor, announcing=True, doing=PLANNING_PLATFORM)
        except OSError:  # no process to be had (a process limit, memory): one after the other
            forked = None
        if forked is not None:
            return _beside_platform(project_dir, environment, stacks, forked, shard_options,
                                    progress, redactor)
    platform = run_plan(project_dir, environment, progress=progress, **options)
    fleet = FleetPlan(environment, stacks, [platform], [os.getpid()])
    shard_options["references"] = {environment: platform.outputs}
    workers = max(1, min(cores, len(rest)))
    if workers == 1 or here:
        for s in rest:
            fleet.plans.append(run_plan(project_dir, s.name, progress=progress, **shard_options))
            fleet.processes.append(os.getpid())
        return fleet
    # spawn: a fresh interpreter per worker, never a fork of this one's SDK state
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_plan_one, project_dir, s.name, shard_options, once)
                   for s in rest]
        for pid, plan in (f.result() for f in futures):
            fleet.processes.append(pid)
            fleet.plans.append(plan)
    return fleet


def _beside_platform(project_dir: Path, environment: str, stacks: list[FleetStack],
                     platform: ForkedCall, shard_options: dict[str, Any],
                     progress: Callable[[Any], None] | None,
                     redactor: Redactor | None) -> FleetPlan:
    """The platform stack planning in a forked process (`platform`), the one shard here at
    the same time; the outcome as planning them one after the other gives (a platform
    failure first)."""
    shard_options["references"] = {environment: _PendingOutputs(platform)}
    try:
        shard = run_plan(project_dir, stacks[1].name, progress=progress, **shard_options)
    except KeyboardInterrupt:  # interrupted: no waiting
        platform.cancel()
        raise
    except BaseException:  # a program's sys.exit too
        platform.result()  # its failure, if it failed, is the one to report
        raise
    pid, planned, verdicts = platform.result()
    if redactor is not None:
        redactor.detector.learn(verdicts)
    return FleetPlan(environment, stacks, [planned, shard], [pid, os.getpid()])
