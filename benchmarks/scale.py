"""How configplane scales: validate, plan against the Pulumi SDK's floor, policy analysis.

    venv/bin/python -m benchmarks.scale [--sizes 10,100,500,1000,2000] [--quick]

For each fleet size N (services in each of dev, staging, prod, in the service catalog:
services/<name>/; see benchmarks/fleet.py):
- validate: read and validate all three stacks, as `configplane validate` does per stack;
- plan: `configplane plan --no-policy` of one stack (validate, then the real __main__.py under
  the SDK's mocks), against the floor: the same resources declared directly by a flat program
  under the same harness and mocks (benchmarks/floor.py), measured in the same run;
- policy: the policy pack through the Analyzer protocol (configplane.offline.session), per resource
  (each Analyze plus its share of AnalyzeStack), once the pack has started, against the
  trivial pack (tests/fixtures/minimal_pack: one policy that does nothing) over the same
  resources in the same run. Both start with PULUMI_CONFIG exactly as the Pulumi CLI builds
  it (configplane.validation.configsize), whose size is reported: it no longer grows with the fleet.
Each figure is the best of up to --repeat runs, and no further run starts once --budget
seconds are spent on it. Each plan and floor run gets a new process (as a CLI run does),
and they alternate so that load on the machine hits both alike. validate, plan and floor
are CPU time of their (single-threaded) process, which other processes on the machine do
not inflate; policy analysis spans two processes and is wall time.

The output starts with the date and the commit measured (`git rev-parse --short HEAD`, or
"uncommitted" outside a git checkout; "+ uncommitted changes" when the tree differs from it).
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.fleet import STACKS, generate
from benchmarks.floor import ClassMap, probe_classes
from benchmarks.runs import Policy, time_floor, time_plan, time_policy, time_validate

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = (10, 100, 500, 1000, 2000)
QUICK_SIZES = (10, 100)
VALIDATE_GOAL_S, PLAN_RATIO_GOAL, POLICY_RATIO_GOAL, LINEAR_GOAL = 1.0, 1.25, 1.5, 1.5


def commit_stamp(repo: Path = REPO) -> str:
    """The commit the figures come from: the short HEAD hash, "+ uncommitted changes" when the
    tracked files differ from it, "uncommitted" when `repo` is no git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "uncommitted"
    return f"{head} + uncommitted changes" if dirty else head


def run_header(now: datetime.datetime | None = None, repo: Path = REPO) -> str:
    """The first line of the output: when and at which commit the figures were taken."""
    now = now or datetime.datetime.now(datetime.UTC)
    return f"configplane benchmark, {now:%Y-%m-%d %H:%M} UTC, commit {commit_stamp(repo)}"


@dataclass
class Row:
    n: int
    resources: int = 0
    validate: float = 0.0
    plan: float = 0.0
    floor: float = 0.0
    runs: dict[str, int] = field(default_factory=dict)
    policy: Policy | None = None  # the pack, PULUMI_CONFIG as the Pulumi CLI builds it
    trivial: Policy | None = None  # the trivial pack, same config and resources
    config_bytes: int = 0  # the PULUMI_CONFIG environment string of the planned stack

    def per_resource_ms(self, p: Policy | None) -> float | None:
        return None if p is None or p.seconds is None else p.seconds / self.resources * 1e3


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fresh(fn: Callable[..., Any], *args: Any) -> Any:
    """Run fn(*args) in a new process (spawned: nothing inherited from this one)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def measure(n: int, stack: str, work: Path, warmup: Path, classes: ClassMap,
            pack: Path | None, repeat: int, budget: float) -> Row:
    row = Row(n)
    project = generate(work / f"fleet-{n}" / "project", n)
    kept = work / f"fleet-{n}" / "plan.pickle"

    log(f"N={n}: validate {len(STACKS)} stacks")
    row.validate, row.runs["validate"] = fresh(time_validate, project, warmup, repeat, budget)

    log(f"N={n}: plan {stack} and its floor, alternately, each run in a new process")
    plans: list[float] = []
    floors: list[float] = []
    while len(plans) < repeat and (not plans or sum(plans) + sum(floors) < 2 * budget):
        elapsed, declared = fresh(time_plan, project, warmup, stack,
                                  None if plans else kept, classes)
        plans.append(elapsed)
        elapsed, floor_declared = fresh(time_floor, project, warmup, stack, kept.parent / "floor")
        floors.append(elapsed)
        if floor_declared != declared:
            raise SystemExit(f"N={n}: the floor declared {floor_declared} resources, "
                             f"the plan {declared}")
    row.plan, row.floor, row.runs["plan"] = min(plans), min(floors), len(plans)
    row.resources = declared + 1  # and the root stack, which the policy pack analyses too

    if pack is not None:
        log(f"N={n}: policy analysis of {row.resources} resources")
        _, row.policy, row.trivial, row.config_bytes = fresh(time_policy, pack, project, kept,
                                                             repeat, budget)
    return row


def spread(rows: Sequence[Row], per: Callable[[Row], float | None]) -> tuple[float, int, int] | None:
    """Largest over smallest per-unit cost across sizes, with the sizes they occur at
    (1.0 = perfectly linear; a larger cost at the smallest size is fixed overhead)."""
    values = [(v, r.n) for r in rows if (v := per(r)) is not None]
    if len(values) < 2:
        return None
    (high, at_high), (low, at_low) = max(values), min(values)
    return high / low, at_high, at_low


def policy_ratio(r: Row) -> float | None:
    if r.policy is None or r.trivial is None or not r.policy.seconds or not r.trivial.seconds:
        return None
    return r.policy.seconds / r.trivial.seconds


def render(rows: Sequence[Row], stack: str, pack_label: str, repeat: int,
           header: str = "") -> None:
    console = Console(highlight=False, width=max(Console().width, 150))
    if header:
        console.print(header)
    table = Table(title=f"configplane at scale: plan and policy of stack {stack}; best of up to "
                        f"{repeat} runs (runs: validate/plan/policy); CPU time except policy")
    for column in ("services", "resources", "validate 3 stacks", "/service", "plan", "floor",
                   "plan/floor", "plan/service", "policy/res", "trivial/res", "policy/trivial",
                   "PULUMI_CONFIG", "runs"):
        table.add_column(column, justify="right")
    for r in rows:
        ratio = policy_ratio(r)
        table.add_row(
            str(r.n), str(r.resources), f"{r.validate:.3f} s", f"{r.validate / r.n * 1e3:.2f} ms",
            f"{r.plan:.2f} s", f"{r.floor:.2f} s", f"{r.plan / r.floor:.2f}x",
            f"{r.plan / r.n * 1e3:.1f} ms",
            _ms(r.per_resource_ms(r.policy)) if r.policy and not r.policy.error else
            ("failed" if r.policy else "-"),
            _ms(r.per_resource_ms(r.trivial)) if r.trivial and not r.trivial.error else
            ("failed" if r.trivial else "-"),
            f"{ratio:.2f}x" if ratio else "-",
            f"{r.config_bytes / 1024:.1f} KiB" if r.config_bytes else "-",
            f"{r.runs['validate']}/{r.runs['plan']}/{r.policy.runs if r.policy else '-'}")
    console.print(table)

    g = {
        "validate": spread(rows, lambda r: r.validate / r.n),
        "plan": spread(rows, lambda r: r.plan / r.n),
        "floor": spread(rows, lambda r: r.floor / r.n),
        "policy": spread(rows, lambda r: r.per_resource_ms(r.policy)),
        "trivial pack": spread(rows, lambda r: r.per_resource_ms(r.trivial)),
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
    for r in rows:
        for label, p in (("policy pack", r.policy), ("trivial pack", r.trivial)):
            if p and p.error:
                console.print(f"N={r.n}: the {label} failed: {p.error}")

    verdicts = []
    at_500 = next((r for r in rows if r.n == 500), None)
    if at_500 is not None:
        verdicts.append((f"validate 500 services x 3 stacks < {VALIDATE_GOAL_S:g} s",
                         f"{at_500.validate:.3f} s", at_500.validate < VALIDATE_GOAL_S))
    worst = max(rows, key=lambda r: r.plan / r.floor)
    verdicts.append((f"plan <= {PLAN_RATIO_GOAL}x floor", f"worst {worst.plan / worst.floor:.2f}x "
                     f"(N={worst.n})", worst.plan / worst.floor <= PLAN_RATIO_GOAL))
    ratios = [(r, x) for r in rows if (x := policy_ratio(r)) is not None]
    if ratios:
        r, x = max(ratios, key=lambda m: m[1])
        verdicts.append((f"policy <= {POLICY_RATIO_GOAL}x the trivial pack per resource",
                         f"worst {x:.2f}x (N={r.n})", x <= POLICY_RATIO_GOAL))
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
    parser.add_argument("--sizes", help="comma-separated fleet sizes (default 10,100,500,1000,2000)")
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
    if pack is not None and not (pack / "PulumiPolicy.yaml").is_file():
        parser.error(f"--pack: no PulumiPolicy.yaml in {pack}")

    header = run_header()  # taken before the run: the tree measured, not the one after
    log(header)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="configplane-bench-") as tmp:
        work = Path(tmp)
        log("probing provider classes (a 20-service fleet, untimed)")
        classes = probe_classes(generate(work / "probe", 20), args.stack)
        warmup = generate(work / "warmup", 3)
        rows = [measure(n, args.stack, work, warmup, classes, pack, args.repeat, args.budget)
                for n in sizes]
    render(rows, args.stack, pack_label, args.repeat, header)
    log(f"benchmark took {time.perf_counter() - started:.0f} s")
    return 0  # a benchmark reports; goals not met are printed, not a failure


if __name__ == "__main__":
    raise SystemExit(main())
