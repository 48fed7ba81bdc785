"""How fast the `configplane` command answers, as a user runs it (a new process each time).

    venv/bin/python -m benchmarks.cli [--services 2000] [--repeat 5]

- `configplane --help` against a bare interpreter start (`python -c pass`, the same
  interpreter), measured in the same run, alternating: goal at most 3x;
- `validate --service X` and `plan --service X` of one service in a fleet of --services
  services (benchmarks/fleet.py, the project's policy pack linked in): goals 1 s and 2 s,
  with the compiled-schema cache warm (its own directory, filled by one untimed run, as any
  second run on a machine finds it), and `plan --service X` once more with the cache off
  (CONFIGPLANE_NO_CACHE=1): what the cache saves.
Each figure is the best of --repeat runs of the CPU time (user + system) of the process and
the processes it waited for (the plan's policy pack), which other load on a shared machine
does not inflate; wall time is printed beside it. The output starts with the date and the
commit measured, as benchmarks/scale.py's does.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmarks.fleet import generate, service_name
from benchmarks.scale import REPO, run_header

HELP_RATIO_GOAL, VALIDATE_GOAL_S, PLAN_GOAL_S = 3.0, 1.0, 2.0
NO_CACHE = "schema cache off"
CONFIGPLANE = str(Path(sys.executable).parent / "configplane")


def timed(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of `argv`, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env={**env, "CI": "true"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return min(cpu for cpu, _ in runs), min(wall for _, wall in runs)


def measure(services: int, repeat: int, work: Path) -> dict[str, tuple[float, float]]:
    fleet = generate(work / "fleet", services)
    if not (fleet / "policies").exists():
        (fleet / "policies").symlink_to(REPO / "policies")
    one = service_name(services // 2)
    plan = [CONFIGPLANE, "plan", "--stack", "prod", "--service", one, "--quiet"]
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "configplane --help": [CONFIGPLANE, "--help"],
        f"validate --service (of {services})": [CONFIGPLANE, "validate", "--stack", "prod",
                                                "--service", one],
        f"plan --service (of {services})": plan,
        f"plan --service (of {services}), {NO_CACHE}": plan,
    }
    cached = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
    env = {name: {**cached, "CONFIGPLANE_NO_CACHE": "1"} if NO_CACHE in name else cached
           for name in cases}
    timed(plan, fleet, cached)  # fills the cache: the figures are of a second run
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(repeat):  # alternate, so that load on the machine hits every case alike
        for name, argv in cases.items():
            runs[name].append(timed(argv, fleet, env[name]))
    return {name: best(r) for name, r in runs.items()}


def report(results: dict[str, tuple[float, float]]) -> list[str]:
    bare = results["python -c pass"][0]
    lines = ["| command | CPU (best) | wall (best) | x bare interpreter | goal |",
             "|---|---:|---:|---:|---|"]
    for name, (cpu, wall) in results.items():
        if name == "configplane --help":
            goal = f"<= {HELP_RATIO_GOAL:g}x: {'met' if cpu <= HELP_RATIO_GOAL * bare else 'NOT met'}"
        elif name.startswith("validate"):
            goal = f"<= {VALIDATE_GOAL_S:g} s: {'met' if cpu <= VALIDATE_GOAL_S else 'NOT met'}"
        elif name.startswith("plan") and NO_CACHE not in name:
            goal = f"<= {PLAN_GOAL_S:g} s: {'met' if cpu <= PLAN_GOAL_S else 'NOT met'}"
        else:
            goal = "baseline" if name.startswith("python") else "for comparison"
        lines.append(f"| `{name}` | {cpu:.3f} s | {wall:.3f} s | {cpu / bare:.1f}x | {goal} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cli", description=__doc__)
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(run_header())
    with tempfile.TemporaryDirectory(prefix="configplane-cli-bench-") as work:
        results = measure(args.services, args.repeat, Path(work))
    print("\n".join(report(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
