"""How configplane scales: validate, plan against the Pulumi SDK's floor, policy analysis.

    venv/bin/python -m benchmarks.scale [--sizes 10,100,500,1000] [--quick]

For each fleet size N (services in each of dev, staging, prod; see benchmarks/fleet.py):
- validate: read and validate all three stacks, as `configplane validate` does per stack;
- plan: `configplane plan --no-policy` of one stack (validate, then the real __main__.py under
  the SDK's mocks), against the floor: the same resources declared directly by a flat program
  under the same harness and mocks (benchmarks/floor.py), measured in the same run;
- policy: the policy pack through the Analyzer protocol (configplane.analyzer), per resource
  (each Analyze plus its share of AnalyzeStack), once the pack has started. Measured twice:
  with the stack config as the Pulumi CLI passes it (PULUMI_CONFIG, which holds the whole
  fleet), and with the two fleet documents left out of it (what the pack itself costs).
Each figure is the best of up to --repeat runs, and no further run starts once --budget
seconds are spent on it; plan and floor runs alternate so that load on the machine hits
both alike.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.fleet import STACKS, generate
from benchmarks.floor import ClassMap, FloorRunner, probe_classes, write_floor
from configplane.analyzer import AnalyzedResource, PolicyPackError, PolicyPackSession
from configplane.commands.validate import load_or_issues
from configplane.plan import Plan, analyzed_resources, plan_config, run_plan
from configplane.stackfiles import DEFAULTS_KEY, SERVICES_KEY, read_stack_files

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = (10, 100, 500, 1000)
QUICK_SIZES = (10, 100)
VALIDATE_GOAL_S, PLAN_RATIO_GOAL, POLICY_GOAL_MS, LINEAR_GOAL = 1.0, 1.25, 1.0, 1.5


@dataclass
class Policy:
    """One policy measurement: seconds for all resources, or why the pack could not run."""

    seconds: float | None = None
    error: str | None = None
    runs: int = 0
    start: float | None = None  # start, configure and first Analyze of the pack
    mandatory: int = 0  # mandatory violations found on the fleet


@dataclass
class Row:
    n: int
    resources: int = 0
    validate: float = 0.0
    plan: float = 0.0
    floor: float = 0.0
    runs: dict[str, int] = field(default_factory=dict)
    policy: Policy | None = None  # fleet documents left out of PULUMI_CONFIG
    policy_cli: Policy | None = None  # PULUMI_CONFIG as the Pulumi CLI passes it

    def per_resource_ms(self, p: Policy | None) -> float | None:
        return None if p is None or p.seconds is None else p.seconds / self.resources * 1e3


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def best_of(fn: Callable[[], Any], repeat: int, budget: float) -> tuple[float, int, Any]:
    """Best wall time of up to `repeat` runs; no run starts after `budget` seconds."""
    best, spent, runs, result = float("inf"), 0.0, 0, None
    while runs < repeat and (runs == 0 or spent < budget):
        result = None
        gc.collect()
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
        best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
    return best, runs, result


def validate_all(project: Path) -> None:
    for stack in STACKS:
        _, issues = load_or_issues(project, stack)
        if issues:  # the generator must produce a valid fleet; anything else is its bug
            raise SystemExit(f"generated stack {stack} is invalid: {issues[0]}")


def plan_once(project: Path, stack: str) -> Plan:
    """What `configplane plan --no-policy` computes: validation, then the program."""
    _, issues = load_or_issues(project, stack)
    if issues:
        raise SystemExit(f"generated stack {stack} is invalid: {issues[0]}")
    return run_plan(project, stack)


def measure_plan(row: Row, project: Path, stack: str, floor_dir: Path, classes: ClassMap,
                 repeat: int, budget: float) -> Plan:
    """Alternate plan and floor runs; the first plan's resources make the floor program."""
    plans: list[float] = []
    floors: list[float] = []
    first: Plan | None = None
    runner: FloorRunner | None = None
    while len(plans) < repeat and (not plans or sum(plans) + sum(floors) < 2 * budget):
        gc.collect()
        start = time.perf_counter()
        plan = plan_once(project, stack)
        plans.append(time.perf_counter() - start)
        if first is None:
            first = plan
            write_floor(first, classes, floor_dir)
            runner = FloorRunner(project, stack, floor_dir)
        del plan
        gc.collect()
        start = time.perf_counter()
        floor = runner.run()
        floors.append(time.perf_counter() - start)
        if len(floor.resources) != len(first.resources):
            raise SystemExit(f"N={row.n}: the floor declared {len(floor.resources)} resources, "
                             f"the plan {len(first.resources)}")
        del floor
    row.plan, row.floor, row.runs["plan"] = min(plans), min(floors), len(plans)
    return first


def measure_policy(pack: Path, plan: Plan, resources: Sequence[AnalyzedResource],
                   config: Mapping[str, str], secret_keys: Sequence[str], repeat: int,
                   budget: float) -> Policy:
    policy_config = pack / "config" / f"{plan.stack}.json"
    result = Policy()
    try:
        with PolicyPackSession(pack, project=plan.project, stack=plan.stack, config=config,
                               config_secret_keys=secret_keys,
                               policy_config_file=policy_config if policy_config.is_file()
                               else None) as session:
            start = time.perf_counter()
            session.run(resources[:1])  # start, configure, warm up
            result.start = time.perf_counter() - start
            result.seconds, result.runs, report = best_of(
                lambda: session.run(resources), repeat, budget)
            result.mandatory = len(report.mandatory)
    except PolicyPackError as exc:
        # e.g. E2BIG: Linux limits one environment string (PULUMI_CONFIG) to 128 KiB.
        result.error = "E2BIG" if "Argument list too long" in str(exc) else str(exc)
    return result


def measure(n: int, stack: str, work: Path, classes: ClassMap, pack: Path | None,
            repeat: int, budget: float) -> Row:
    row = Row(n)
    project = generate(work / f"fleet-{n}" / "project", n)

    log(f"N={n}: validate {len(STACKS)} stacks")
    row.validate, row.runs["validate"], _ = best_of(lambda: validate_all(project), repeat, budget)

    log(f"N={n}: plan {stack} and its floor")
    plan = measure_plan(row, project, stack, work / f"fleet-{n}" / "floor", classes, repeat,
                        budget)
    resources = analyzed_resources(plan)  # the root stack is analysed too
    row.resources = len(resources)

    if pack is not None:
        config, secret_keys = plan_config(read_stack_files(project, stack), project)
        log(f"N={n}: policy analysis of {row.resources} resources, CLI config")
        row.policy_cli = measure_policy(pack, plan, resources, config, secret_keys, repeat, budget)
        log(f"N={n}: policy analysis of {row.resources} resources, fleet documents left out")
        trimmed = {k: v for k, v in config.items() if k not in (DEFAULTS_KEY, SERVICES_KEY)}
        row.policy = measure_policy(pack, plan, resources, trimmed, secret_keys, repeat, budget)
    return row


def spread(rows: Sequence[Row], per: Callable[[Row], float | None]) -> tuple[float, int, int] | None:
    """Largest over smallest per-unit cost across sizes, with the sizes they occur at
    (1.0 = perfectly linear; a larger cost at the smallest size is fixed overhead)."""
    values = [(v, r.n) for r in rows if (v := per(r)) is not None]
    if len(values) < 2:
        return None
    (high, at_high), (low, at_low) = max(values), min(values)
    return high / low, at_high, at_low


def render(rows: Sequence[Row], stack: str, pack_label: str, repeat: int) -> None:
    console = Console(highlight=False, width=max(Console().width, 150))
    table = Table(title=f"configplane at scale: plan and policy of stack {stack}, "
                        f"best of up to {repeat} runs (runs: validate/plan/policy)")
    for column in ("services", "resources", "validate 3 stacks", "/service", "plan", "floor",
                   "plan/floor", "plan/service", "floor/service", "policy/res",
                   "policy/res CLI config", "runs"):
        table.add_column(column, justify="right")
    for r in rows:
        cli = r.per_resource_ms(r.policy_cli)
        table.add_row(
            str(r.n), str(r.resources), f"{r.validate:.3f} s", f"{r.validate / r.n * 1e3:.2f} ms",
            f"{r.plan:.2f} s", f"{r.floor:.2f} s", f"{r.plan / r.floor:.2f}x",
            f"{r.plan / r.n * 1e3:.1f} ms", f"{r.floor / r.n * 1e3:.1f} ms",
            _ms(r.per_resource_ms(r.policy)),
            _ms(cli) if cli is not None else (r.policy_cli.error if r.policy_cli else "-"),
            f"{r.runs['validate']}/{r.runs['plan']}/{r.policy.runs if r.policy else '-'}")
    console.print(table)

    g = {
        "validate": spread(rows, lambda r: r.validate / r.n),
        "plan": spread(rows, lambda r: r.plan / r.n),
        "floor": spread(rows, lambda r: r.floor / r.n),
        "policy": spread(rows, lambda r: r.per_resource_ms(r.policy)),
        "policy CLI config": spread(rows, lambda r: r.per_resource_ms(r.policy_cli)),
    }
    console.print("linearity: largest / smallest per-service cost (policy: per resource) across "
                  "sizes, 1.00 = linear: " + ", ".join(
                      f"{k} {v[0]:.2f} (max at N={v[1]}, min at N={v[2]})"
                      for k, v in g.items() if v))
    started = [r.policy for r in rows if r.policy and r.policy.start is not None]
    if started:
        console.print(
            f"policy pack {pack_label}: start-up {min(p.start for p in started):.2f} s (once per "
            "plan, not in the per-resource figures); mandatory violations on the fleet: "
            + ", ".join(f"N={r.n}: {r.policy.mandatory}" for r in rows if r.policy))
    if any(r.policy_cli and r.policy_cli.error == "E2BIG" for r in rows):
        console.print("E2BIG: the pack cannot start: PULUMI_CONFIG (the stack config as JSON, "
                      "fleet included) is over Linux's 128 KiB limit for one environment string.")

    verdicts = []
    at_500 = next((r for r in rows if r.n == 500), None)
    if at_500 is not None:
        verdicts.append((f"validate 500 services x 3 stacks < {VALIDATE_GOAL_S:g} s",
                         f"{at_500.validate:.3f} s", at_500.validate < VALIDATE_GOAL_S))
    worst = max(rows, key=lambda r: r.plan / r.floor)
    verdicts.append((f"plan <= {PLAN_RATIO_GOAL}x floor", f"worst {worst.plan / worst.floor:.2f}x "
                     f"(N={worst.n})", worst.plan / worst.floor <= PLAN_RATIO_GOAL))
    for label, pick in (("policy", lambda r: r.policy), ("policy, CLI config",
                                                         lambda r: r.policy_cli)):
        measured = [(r, ms) for r in rows if (ms := r.per_resource_ms(pick(r))) is not None]
        if measured:
            r, ms = max(measured, key=lambda m: m[1])
            verdicts.append((f"{label} <= {POLICY_GOAL_MS:g} ms per resource",
                             f"worst {ms:.3f} ms (N={r.n})", ms <= POLICY_GOAL_MS))
    for k, v in g.items():
        if v:
            verdicts.append((f"{k} linear (largest / smallest per-unit cost <= {LINEAR_GOAL})",
                             f"{v[0]:.2f}x", v[0] <= LINEAR_GOAL))
    for goal, value, met in verdicts:
        console.print(f"{'met    ' if met else 'NOT met'}  {goal}: {value}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} ms"


def pack_dir(choice: Path | None) -> tuple[Path, str]:
    if choice is not None:
        return choice.resolve(), str(choice)
    if (REPO / "policies" / "__main__.py").is_file():
        return REPO / "policies", "policies/"
    return REPO / "tests" / "fixtures" / "minimal_pack", "tests/fixtures/minimal_pack (stand-in)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", help="comma-separated fleet sizes (default 10,100,500,1000)")
    parser.add_argument("--quick", action="store_true", help="sizes 10,100 only")
    parser.add_argument("--stack", default="prod", choices=STACKS, help="stack to plan")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best of)")
    parser.add_argument("--budget", type=float, default=10.0,
                        help="seconds per figure after which no further run starts "
                             "(plan and floor together: twice this)")
    parser.add_argument("--pack", type=Path, help="policy pack directory (default policies/)")
    parser.add_argument("--no-policy", action="store_true", help="skip policy analysis")
    args = parser.parse_args(argv)
    sizes = list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    if args.sizes:
        try:
            sizes = sorted({int(s) for s in args.sizes.split(",")})
        except ValueError:
            parser.error(f"--sizes: expected comma-separated integers, got {args.sizes!r}")
        if sizes[0] < 1:
            parser.error("--sizes: sizes must be at least 1")
    if args.repeat < 1:
        parser.error("--repeat: at least 1")
    pack, pack_label = (None, "") if args.no_policy else pack_dir(args.pack)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="configplane-bench-") as tmp:
        work = Path(tmp)
        log("probing provider classes (a 20-service fleet, untimed)")
        classes = probe_classes(generate(work / "probe", 20), args.stack)
        rows = [measure(n, args.stack, work, classes, pack, args.repeat, args.budget)
                for n in sizes]
    render(rows, args.stack, pack_label, args.repeat)
    log(f"benchmark took {time.perf_counter() - started:.0f} s")
    return 0  # a benchmark reports; goals not met are printed, not a failure


if __name__ == "__main__":
    raise SystemExit(main())
