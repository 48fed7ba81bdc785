"""The offline plan of an environment's stacks: its platform stack, then its shards in
parallel processes (bounded by the machine's cores), each shard's StackReference fed with the
platform stack's planned outputs (docs/fleet.md). One shard (`plan --shard`) plans beside its
platform stack: the platform in a forked copy of this process, the shard here, its
StackReference waiting for the platform's outputs."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from configplane.inputs import reading_once, reading_once_active
from configplane.model import FleetStack, environment_topology, stack_role
from configplane.offline.plan import Plan, program_has_run, run_plan
from configplane.redaction import Redactor


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


class ForkedCall:
    """`fn(*args)` in a forked copy of this process, started at once; `result()` waits for
    its value or raises its exception (from any thread). A fork starts with everything this
    process has imported, read and validated: the platform stack's plan begins at once,
    where a spawned interpreter would import and validate again (~2 s of CPU) first.

    `announcing`: fn is called as `fn(announce, *args)`, and what it hands to `announce`
    (once, before it returns) reaches `announced()` while fn goes on: a stack's outputs,
    long before its plan (megabytes through a pipe, read a chunk at a time by a thread that
    waits for the GIL between chunks) and its pack's verdict."""

    def __init__(self, fn: Callable[..., Any], *args: Any, announcing: bool = False):
        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_send_outcome,
                                        args=(send, fn, args, announcing),
                                        name="configplane-platform-plan", daemon=True)
        self._process.start()
        send.close()
        self._lock = threading.Lock()
        self._announced: tuple[bool, Any] | None = None
        self._outcome: tuple[bool, Any] | None = None

    def _next(self) -> None:
        """The child's next message (the caller holds the lock)."""
        try:
            kind, ok, value = self._receive.recv()
        except EOFError:  # it died without a word (killed, out of memory)
            self._process.join()
            kind, ok, value = "outcome", False, RuntimeError(
                f"the process planning the platform stack ended without a result "
                f"(exit code {self._process.exitcode}). Fix: run the plan again; if "
                "it recurs, plan the platform stack alone (`configplane plan --stack "
                "<env>`) to see why.")
        if kind == "announced":
            self._announced = (ok, value)
            return
        self._outcome = (ok, value)
        self._receive.close()
        self._process.join()

    def announced(self) -> Any:
        """What fn announced; fn's exception if it failed before announcing."""
        with self._lock:
            while self._announced is None and self._outcome is None:
                self._next()
            ok, value = self._announced or cast(tuple[bool, Any], self._outcome)
        if not ok:
            raise value
        if self._announced is None:
            raise RuntimeError("the platform stack's plan ended without its outputs")
        return value

    def result(self) -> Any:
        with self._lock:
            while self._outcome is None:
                self._next()
            ok, value = self._outcome
        if not ok:
            raise value
        return value

    def cancel(self) -> None:
        """Stop it, if it still runs (this command is failing or interrupted)."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


def _send_outcome(send: Any, fn: Callable[..., Any], args: tuple[Any, ...],
                  announcing: bool) -> None:
    def announce(value: Any) -> None:
        send.send(("announced", True, value))

    try:
        outcome: tuple[bool, Any] = (True, fn(announce, *args) if announcing else fn(*args))
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, raised there
        outcome = (False, exc)
    try:
        send.send(("outcome", *outcome))
    except Exception as exc:  # noqa: BLE001 - an exception that does not pickle
        send.send(("outcome", False, RuntimeError(f"planning the platform stack failed: "
                                                  f"{type(outcome[1]).__name__}: {exc}")))
    send.close()


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


def can_fork() -> bool:
    """Whether this process may fork a copy of itself to plan in: on Linux (macOS's system
    frameworks do not survive a fork), with no other thread running (a progress bar's, a
    pack session's) and before any program ran here (the SDK's event loop and its tasks stay
    this process's)."""
    return sys.platform == "linux" and threading.active_count() == 1 and not program_has_run()


def plan_environment(project_dir: Path, environment: str, *, shards: Iterable[str] = (),
                     services: Iterable[str] = (), workers: int | None = None,
                     progress: Callable[[Any], None] | None = None,
                     redactor: Redactor | None = None, **options: Any) -> FleetPlan:
    """Plan the environment's stacks (`select_stacks`): the platform stack here, then the
    shards in up to `workers` processes (default: the machine's cores); one worker plans
    every stack in this process (with `progress`). One shard with two workers or more: the
    platform stack in a forked process (`can_fork`) while the shard plans here (with
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
    if len(rest) == 1 and cores > 1 and not here and can_fork():
        try:
            forked = ForkedCall(_plan_announcing, project_dir, environment, options, once,
                                redactor, announcing=True)
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
