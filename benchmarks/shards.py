"""The fleet split into stacks (issue 19): what one stack holds, what a pull request previews,
what a shard costs as commands, and the whole fleet planned in parallel against one process.

    venv/bin/python -m benchmarks.shards [--services 2000] [--teams 40] [--stack prod]

On a generated fleet (benchmarks/fleet.py, owners spread over --teams teams) in one run:
- stacks: per environment, its platform stack and one shard per team (configplane.model
  .topology); resources of the platform stack and of the largest shard, each planned offline;
- pull request: `configplane affected` on a git repository of the fleet after one service's
  file changed: the stacks it lists, and their share of the fleet's stacks and services;
- one shard as commands: `configplane validate` and `configplane plan --no-policy` of the
  largest shard, each a new process (wall time, best of 3: what a user waits for; and that
  run's CPU, which the machine's load moves far less), and the same work in this process
  (CPU time), so that what the command adds shows (process start, the secret detector's
  load, the output phase). The commands use a cache directory of their own
  (XDG_CACHE_HOME), filled by an untimed `plan` first, and Python's cache of compiled
  modules; `plan` then runs with the catalog's parse cache removed before each run (a fresh
  checkout; compiled schemas and the detector's kept verdicts stay, as on the user's
  machine: configplane/inputs/verdictcache.py), then with it filled by those runs
  (configplane/inputs/parsecache.py: what every later command pays); and in the pull
  request's copy of the fleet, one service's file changed again before each run, with those
  caches: what a pull request's CI job pays, as it restores main's (docs/ci.md). The empty
  parse cache is a machine's first run (or its first after configplane changed): reported,
  without a goal;
- the whole environment planned offline: one process against the platform stack and every
  shard in parallel processes (bounded by the cores), wall time;
- the real engine: `pulumi preview` time per stack ESTIMATED from published figures (DESIGN.md
  §3: ~1,300 resources preview in about 4 minutes), not measured: there is no engine here.

A shard is planned as `plan --shard` plans it: the platform stack first (its outputs feed the
shard's StackReference), then the shard, whose own resources are counted; the whole environment
as one stack is the layout before the split (`one_stack`, what `shard plan` moves from).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.fleet import STACKS, generate
from benchmarks.scale import log, run_header

PREVIEW_SECONDS_PER_RESOURCE = 240 / 1300  # published: ~1,300 resources preview in ~4 minutes
LARGEST_GOAL, SHARD_COMMAND_GOAL_S = 1500, 5.0
CLI = [sys.executable, "-m", "configplane"]


def shard_args(stack: str, shard: str) -> list[str]:
    return ["--stack", stack, "--shard", shard]


def plan_count(project: Path, stack: str, shard: str | None = None) -> tuple[int, float]:
    """Resources planned (no pack) in the platform stack, or with `shard` in that shard (its
    platform planned first, for its StackReference), and the CPU seconds that stack took."""
    from configplane.offline import run_plan
    from configplane.ownership import shard_stack_name
    start = time.process_time()
    plan = run_plan(project, stack)
    if shard is not None:
        start = time.process_time()
        plan = run_plan(project, shard_stack_name(stack, shard), references={stack: plan.outputs})
    return len(plan.resources), time.process_time() - start


def whole_count(project: Path, stack: str) -> int:
    """Resources of the environment planned as the one stack it was before its split."""
    from configplane.offline import run_plan
    return len(run_plan(project, stack, one_stack=True).resources)


def validate_cpu(project: Path, stack: str) -> float:
    from configplane.validation import load_or_issues
    start = time.process_time()
    _, issues = load_or_issues(project, stack)
    if issues:
        raise SystemExit(f"the generated fleet is invalid: {issues[0]}")
    return time.process_time() - start


def fresh(fn, *args):
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def command_seconds(args: Sequence[str], cwd: Path, env: dict[str, str] | None = None,
                    repeat: int = 1, before: Callable[[int], None] | None = None
                    ) -> tuple[float, float]:
    """The best wall time of `repeat` runs of a command, and that run's CPU (user + system
    of the process and its children): the CPU moves little with the machine's load, the
    wall time much. `before(n)` sets the scene of run n, untimed."""
    best = (float("inf"), 0.0)
    for n in range(repeat):
        if before is not None:
            before(n)
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run([*CLI, *args], cwd=cwd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=False, env=env)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode not in (0,):
            raise SystemExit(f"configplane {' '.join(args[:4])}... failed: {done.stderr[-500:]}")
        cpu = (after.ru_utime - used.ru_utime) + (after.ru_stime - used.ru_stime)
        best = min(best, (wall, cpu))
    return best


def parallel_plan(project: Path, stack: str, workers: int) -> float:
    """Wall time of planning the platform stack, then every shard in processes of their own
    (`configplane plan --stack <env>`: configplane.offline.plan_environment)."""
    from configplane.offline import plan_environment
    start = time.perf_counter()
    plan_environment(project, stack, workers=workers)
    return time.perf_counter() - start


def one_process_plan(project: Path, stack: str) -> tuple[float, int]:
    """Wall time of planning the environment as one stack in a new process, and its resources."""
    start = time.perf_counter()
    count = fresh(whole_count, project, stack)
    return time.perf_counter() - start, count


def affected_stacks(project: Path, service: str) -> list[str]:
    """`configplane affected` after a change to one service's base file, in a git repository."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "fleet"]):
        subprocess.run(["git", "-C", str(project), *args], check=True, env=env,
                       capture_output=True)
    path = project / "services" / service / "service.yaml"
    path.write_text(path.read_text() + "# a one-service change\n")
    import json
    done = subprocess.run([*CLI, "affected", "--base", "main", "--format", "json"],
                          cwd=project, capture_output=True, text=True, check=True)
    return [s["stack"] for s in json.loads(done.stdout)["stacks"]]


@dataclass
class Result:
    services: int
    teams: int
    stack: str
    stacks: dict[str, int] = field(default_factory=dict)  # environment -> stacks
    shard_services: dict[str, list[str]] = field(default_factory=dict)  # the stack's shards
    platform: int = 0
    largest_shard: str = ""
    largest: int = 0  # the largest shard's own resources
    whole: int = 0
    affected: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)  # the changed service's shard, per environment
    validate_cmd: float = 0.0  # wall, best of 3; *_cmd_cpu: that run's CPU
    validate_cmd_cpu: float = 0.0
    validate_cpu: float = 0.0
    plan_cmd: float = 0.0  # the parse cache filled by the run before; best of 3
    plan_cmd_cpu: float = 0.0
    plan_cold_cmd: float = 0.0  # the parse cache empty
    plan_cold_cmd_cpu: float = 0.0
    plan_pr_cmd: float = 0.0  # the caches filled, then one service's file changed
    plan_pr_cmd_cpu: float = 0.0
    plan_cpu: float = 0.0
    start: float = 0.0
    one_process: float = 0.0
    parallel: float = 0.0
    workers: int = 1


def measure(project: Path, services: int, teams: int, stack: str, whole: bool) -> Result:
    from configplane.model import environment_stacks, service_stack, service_stacks, stack_role

    result = Result(services, teams, stack)
    for environment in STACKS:
        result.stacks[environment] = len(environment_stacks(project, environment))
    for name, fleet_stack in service_stacks(project, stack).items():
        result.shard_services.setdefault(fleet_stack.name, []).append(name)
    largest = max(result.shard_services, key=lambda s: len(result.shard_services[s]))
    result.largest_shard, members = largest, result.shard_services[largest]
    shard = stack_role(project, largest).shard or ""

    log(f"plan the platform stack and the largest shard ({largest}, {len(members)} services)")
    result.platform, _ = fresh(plan_count, project, stack)
    result.largest, result.plan_cpu = fresh(plan_count, project, stack, shard)
    result.validate_cpu = fresh(validate_cpu, project, largest)

    log("one shard as commands: plan --no-policy (untimed, then parse cache empty, then "
        "filled), validate (new processes)")
    env = {**os.environ, "XDG_CACHE_HOME": str(project.parent / "cache")}
    env.pop("CONFIGPLANE_NO_CACHE", None)
    # Python's own cache of compiled modules, as a user's machine keeps it (a sandbox may set
    # PYTHONDONTWRITEBYTECODE: every command would compile configplane and components/ again)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    result.start = command_seconds(["--help"], project, env, repeat=3)[0]
    plan = ["plan", *shard_args(stack, shard), "--no-policy", "--format", "json", "--quiet"]
    command_seconds(plan, project, env)  # untimed: every schema compiled and kept

    def parse_cache_emptied(_: int) -> None:
        for kept in (project.parent / "cache" / "configplane").glob("parse-*"):
            kept.unlink()  # the parse cache only (configplane/inputs/parsecache.py)

    result.plan_cold_cmd, result.plan_cold_cmd_cpu = command_seconds(
        plan, project, env, repeat=3, before=parse_cache_emptied)
    result.plan_cmd, result.plan_cmd_cpu = command_seconds(plan, project, env, repeat=3)
    result.validate_cmd, result.validate_cmd_cpu = command_seconds(
        ["validate", *shard_args(stack, shard)], project, env, repeat=3)

    if whole:
        result.workers = os.cpu_count() or 1
        log(f"the whole of {stack}: one process, then {len(result.shard_services) + 1} stacks "
            f"on {result.workers} processes")
        result.one_process, result.whole = one_process_plan(project, stack)
        result.parallel = parallel_plan(project, stack, result.workers)

    log("a one-service pull request: configplane affected")
    copy = project.parent / "pr"
    shutil.copytree(project, copy)
    result.affected = affected_stacks(copy, members[0])
    result.expected = sorted(service_stack(project, e, members[0]).name for e in STACKS)
    log("the pull request's plan of its shard, with the caches its CI job restores")
    changed = copy / "services" / members[0] / "service.yaml"

    def pushed(n: int) -> None:  # each run's change is new: its file is parsed again
        changed.write_text(changed.read_text() + f"# push {n}\n")

    result.plan_pr_cmd, result.plan_pr_cmd_cpu = command_seconds(plan, copy, env, repeat=3,
                                                                 before=pushed)
    return result


def render(r: Result, header: str) -> None:
    console = Console(highlight=False, width=max(Console().width, 130))
    console.print(header)
    shard = r.largest
    stacks = sum(r.stacks.values())
    table = Table(title=f"{r.services} services, {r.teams} teams, environment {r.stack}")
    for column in ("figure", "value", "goal"):
        table.add_column(column)
    goal_s = f"< {SHARD_COMMAND_GOAL_S:g} s"
    rows = [
        ("stacks per environment", ", ".join(f"{e} {n}" for e, n in r.stacks.items()), ""),
        ("resources: platform stack", str(r.platform), f"<= {LARGEST_GOAL}"),
        (f"resources: largest shard ({r.largest_shard}, "
         f"{len(r.shard_services[r.largest_shard])} services)",
         str(shard), f"<= {LARGEST_GOAL}"),
        ("one-service pull request previews", f"{len(r.affected)} of {stacks} stacks "
         f"({len(r.affected) / stacks:.1%}): {', '.join(r.affected)}", "one shard per environment"),
        ("`configplane validate` of one shard (command, wall, best of 3)",
         f"{r.validate_cmd:.2f} s (command CPU {r.validate_cmd_cpu:.2f} s; work in-process "
         f"{r.validate_cpu:.2f} s CPU)", goal_s),
        ("`configplane plan --no-policy` of one shard (command, wall, best of 3)",
         f"{r.plan_cmd:.2f} s (command CPU {r.plan_cmd_cpu:.2f} s; work in-process "
         f"{r.plan_cpu:.2f} s CPU)", goal_s),
        ("  the same in a pull request's CI job (main's caches restored, the changed "
         "service's file parsed; command, wall, best of 3)",
         f"{r.plan_pr_cmd:.2f} s (command CPU {r.plan_pr_cmd_cpu:.2f} s)", goal_s),
        ("  the same, parse cache empty (a machine's first run; command, wall, best of 3)",
         f"{r.plan_cold_cmd:.2f} s (command CPU {r.plan_cold_cmd_cpu:.2f} s)", ""),
        ("process start (`configplane --help`, wall)", f"{r.start:.2f} s", ""),
    ]
    if r.one_process:
        rows += [
            (f"whole {r.stack}: one process ({r.whole} resources, wall)", f"{r.one_process:.1f} s", ""),
            (f"whole {r.stack}: {len(r.shard_services) + 1} stacks on {r.workers} processes (wall)",
             f"{r.parallel:.1f} s ({r.one_process / r.parallel:.2f}x faster)", ""),
        ]
    estimate = PREVIEW_SECONDS_PER_RESOURCE
    rows += [
        ("ESTIMATE: real `pulumi preview`, largest shard", f"~{shard * estimate / 60:.1f} min", ""),
        ("ESTIMATE: real `pulumi preview`, platform stack", f"~{r.platform * estimate / 60:.1f} min", ""),
    ]
    if r.whole:
        rows.append((f"ESTIMATE: real `pulumi preview`, {r.stack} as one stack",
                     f"~{r.whole * estimate / 60:.0f} min", ""))
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print("Estimates scale the published figure (~1,300 resources preview in about 4 "
                  "minutes, DESIGN.md §3) by resource count; they are not measurements.")
    verdicts = [
        (f"largest stack <= {LARGEST_GOAL} resources", max(shard, r.platform) <= LARGEST_GOAL),
        ("a one-service pull request previews its shard, one per environment",
         sorted(r.affected) == r.expected),
        (f"validate of one shard < {SHARD_COMMAND_GOAL_S:g} s", r.validate_cmd < SHARD_COMMAND_GOAL_S),
        (f"plan of one shard < {SHARD_COMMAND_GOAL_S:g} s (parse cache filled)",
         r.plan_cmd < SHARD_COMMAND_GOAL_S),
        (f"plan of one shard < {SHARD_COMMAND_GOAL_S:g} s (a pull request's CI job)",
         r.plan_pr_cmd < SHARD_COMMAND_GOAL_S),
    ]
    for goal, met in verdicts:
        console.print(f"{'met    ' if met else 'NOT met'}  {goal}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shards", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--teams", type=int, default=40)
    parser.add_argument("--stack", default="prod", choices=STACKS)
    parser.add_argument("--no-whole", action="store_true",
                        help="skip planning the whole environment (minutes at 2,000 services)")
    args = parser.parse_args(argv)
    if args.services < 1 or not 1 <= args.teams <= args.services:
        parser.error("--services >= 1 and 1 <= --teams <= --services")
    header = run_header()
    log(header)
    started, load = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="configplane-shards-") as tmp:
        project = generate(Path(tmp) / "project", args.services, teams=args.teams)
        result = measure(project, args.services, args.teams, args.stack, not args.no_whole)
    render(result, header)
    log(f"benchmark took {time.perf_counter() - started:.0f} s; load average at the start "
        f"{load[0]:.2f}, at the end {os.getloadavg()[0]:.2f} (wall times grow with it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
