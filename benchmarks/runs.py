"""The timed work of benchmarks/scale.py. Each function runs in a fresh process, as a
`configplane` command does: a plan leaves the Pulumi SDK's objects behind in its process,
and a later run's garbage collections would pay for them. Before the clock starts, each
process plans a tiny fleet (`warmup`), so one-time costs (first use of each provider class,
schema compilation) are not counted per service; they are the same for plan and floor."""

from __future__ import annotations

import gc
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Imported before any clock starts, by the plan and the floor alike.
import pulumi_aws  # noqa: F401
import pulumi_kubernetes  # noqa: F401
import pulumi_random  # noqa: F401
import pulumi_vault  # noqa: F401

from benchmarks.fleet import STACKS
from benchmarks.floor import ClassMap, FloorRunner, write_floor
from configplane.inputs import read_stack_files, reading_once
from configplane.offline import Plan, PolicyPackError, PolicyPackSession, analyzed_resources, run_plan
from configplane.validation import cli_config, config_size, load_or_issues

# validate, plan and floor run in one thread of one process: their CPU time is what they
# cost, and it does not move when other processes share the machine. The policy analysis
# spans two processes (client and pack): wall time.
CPU = time.process_time


@dataclass
class Policy:
    """One policy measurement: seconds for all resources, or why the pack could not run."""

    seconds: float | None = None
    error: str | None = None
    runs: int = 0
    start: float | None = None  # start, configure and first Analyze of the pack
    mandatory: int = 0  # mandatory violations found on the fleet


def best_of(fn: Callable[[], Any], repeat: int, budget: float,
            clock: Callable[[], float] = time.perf_counter) -> tuple[float, int, Any]:
    """Best time of up to `repeat` runs; no run starts after `budget` seconds."""
    best, spent, runs, result = float("inf"), 0.0, 0, None
    while runs < repeat and (runs == 0 or spent < budget):
        result = None
        gc.collect()
        start = clock()
        result = fn()
        elapsed = clock() - start
        best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
    return best, runs, result


def _check(issues: list, stack: str) -> None:
    if issues:  # the generator must produce a valid fleet; anything else is its bug
        raise SystemExit(f"generated stack {stack} is invalid: {issues[0]}")


def _validate_all(project: Path) -> None:
    for stack in STACKS:
        _check(load_or_issues(project, stack)[1], stack)


def time_validate(project: Path, warmup: Path, repeat: int, budget: float) -> tuple[float, int]:
    """`configplane validate` of every stack (validation leaves nothing behind: one process)."""
    _validate_all(warmup)
    best, runs, _ = best_of(lambda: _validate_all(project), repeat, budget, CPU)
    return best, runs


def time_plan(project: Path, warmup: Path, stack: str, keep: Path | None = None,
              classes: ClassMap | None = None) -> tuple[float, int]:
    """What `configplane plan --no-policy` computes: validation, then the program, within one
    read-only command's scope (`reading_once`: the command, the harness and the program share
    one read and validation of the stack). With `keep`, the plan is pickled there and the
    floor program written beside it (after the clock)."""
    run_plan(warmup, stack, one_stack=True)
    gc.collect()
    start = CPU()
    with reading_once():
        _check(load_or_issues(project, stack)[1], stack)
        plan = run_plan(project, stack, one_stack=True)  # the environment as one stack
    elapsed = CPU() - start
    if keep is not None:
        write_floor(plan, classes or {}, keep.parent / "floor")
        keep.write_bytes(pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL))
    return elapsed, len(plan.resources)


def time_floor(project: Path, warmup: Path, stack: str, floor_dir: Path) -> tuple[float, int]:
    run_plan(warmup, stack, one_stack=True)
    runner = FloorRunner(project, stack, floor_dir)
    gc.collect()
    start = CPU()
    floor = runner.run()
    return CPU() - start, len(floor.resources)


TRIVIAL_PACK = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "minimal_pack"


def time_policy(pack: Path, project: Path, kept: Path, repeat: int, budget: float
                ) -> tuple[int, Policy, Policy, int]:
    """The pack over the plan's resources, and the trivial pack (one policy that does
    nothing) over the same resources in the same run: the protocol's own cost. Both start
    with PULUMI_CONFIG exactly as the Pulumi CLI builds it (configplane.validation.configsize: every
    key's value as a string, secure values as placeholders of their decrypted length)."""
    plan: Plan = pickle.loads(kept.read_bytes())
    resources = analyzed_resources(plan)  # the root stack is analysed too
    inputs = read_stack_files(project, plan.stack)
    config = cli_config(inputs)
    secret_keys = sorted(k for k, v in inputs.values.items() if v.secure)
    results = []
    for directory in (pack, TRIVIAL_PACK):
        policy_config = directory / "config" / f"{plan.stack}.json"
        result = Policy()
        try:
            with PolicyPackSession(directory, project=plan.project, stack=plan.stack,
                                   config=config, config_secret_keys=secret_keys,
                                   policy_config_file=policy_config if policy_config.is_file()
                                   else None) as session:
                start = time.perf_counter()
                session.run(resources[:1])  # start, configure, warm up
                result.start = time.perf_counter() - start
                result.seconds, result.runs, report = best_of(
                    lambda s=session: s.run(resources), repeat, budget)
                result.mandatory = len(report.mandatory)
        except PolicyPackError as exc:
            result.error = str(exc)
        results.append(result)
    return len(resources), results[0], results[1], config_size(inputs).total
