"""One shard planned beside its platform stack (configplane.offline.fleet): the platform in a
forked copy of the process, the shard in the process itself, its StackReference waiting for
the platform's outputs. Whatever the two processes do, the outcome is the one planning them
one after the other in one process gives (`workers=1`): the same plan, and the same error,
the platform's first.

The fork is taken only in a process where no program ran yet (configplane.forking.may_fork),
so each forked run here is a fresh interpreter of its own (`python -c`), as a `configplane plan`
command is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from configplane.offline import run_plan
from configplane.offline.fleet import plan_environment
from tests.conftest import REPO
from tests.projects import copy_project

SHARD = "payments-team"
FORKED = """
import errno, json, os, sys
from configplane.offline import plan_environment
if len(sys.argv) > 4 and sys.argv[4] == "no-fork":  # a process limit reached
    def refused():
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
    os.fork = refused
from configplane.redaction import Detector, Redactor, detector_for
redactor = Redactor(detector=detector_for(sys.argv[1]))
try:
    fleet = plan_environment(sys.argv[1], "prod", shards=[sys.argv[2]], workers=2,
                             policy=sys.argv[3] == "policy", redactor=redactor)
except Exception as exc:
    print(json.dumps({"error": [type(exc).__name__, str(exc)]}))
else:
    plan = fleet.merged()
    with redactor.detector.recording() as judged:  # what printing it judges here
        printed = plan.as_dict(redactor)
    fresh = Detector(redactor.detector.directory)  # no verdict known yet
    with fresh.recording() as platform:  # what printing the platform's plan judges
        fleet.plans[0].as_dict(Redactor(redactor.values, detector=fresh))
    print(json.dumps({"pid": os.getpid(), "processes": fleet.processes,
                      "plan": plan.as_dict(), "printed": printed,
                      "judged_platform": len(set(judged) & set(platform)),
                      "platform": len(platform)}, sort_keys=True))
"""


def forked(project: Path, shard: str = SHARD, *, policy: bool = False,
           fork: bool = True) -> dict:
    done = subprocess.run([sys.executable, "-c", FORKED, str(project), shard,
                           "policy" if policy else "none", "fork" if fork else "no-fork"],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def comparable(document: dict) -> dict:
    """A plan's document as JSON reads it back (one process's plan came through a pipe)."""
    return json.loads(json.dumps(document, sort_keys=True))


def test_a_shard_beside_its_forked_platform_plans_as_one_after_the_other():
    run = forked(REPO, policy=True)  # the pack runs in both processes, as `plan` runs it
    assert run["processes"][1] == run["pid"] != run["processes"][0], "no fork was taken"
    one_by_one = plan_environment(REPO, "prod", shards=[SHARD], workers=1, policy=True)
    assert one_by_one.processes == [os.getpid(), os.getpid()]
    expected = one_by_one.merged().as_dict()
    assert len(expected["resources"]) > 0 and expected["violations"] == []
    assert comparable(run["plan"]) == comparable(expected)


def test_the_forked_platform_judges_its_own_plan_for_printing():
    """The forked process, idle once its plan is made, judges that plan as it will be printed;
    the command's process prints it with those verdicts (judging only the rest itself), and
    prints what it would have printed judging everything: without a fork it judges them."""
    run, alone = forked(REPO), forked(REPO, fork=False)
    assert run["platform"] > 100 and alone["judged_platform"] > 100
    assert run["judged_platform"] == 0
    assert comparable(run["printed"]) == comparable(alone["printed"])


def test_without_a_process_to_fork_the_stacks_plan_one_after_the_other():
    run = forked(REPO, fork=False)
    assert run["processes"] == [run["pid"], run["pid"]]
    one_by_one = plan_environment(REPO, "prod", shards=[SHARD], workers=1)
    assert comparable(run["plan"]) == comparable(one_by_one.merged().as_dict())


@pytest.mark.parametrize("failing", ["prod", f"prod-{SHARD}", "both", "both, the shard exiting"])
def test_a_failure_is_the_one_planning_one_after_the_other_reports(tmp_path, failing):
    """A program that fails in the platform stack, in the shard, or in both (the shard's
    program also by sys.exit): the forked run reports what the sequential one does (the
    platform's failure when both fail, and when the shard fails only for want of the
    platform's outputs)."""
    project = copy_project(tmp_path / "project", policies=True)
    failing_stacks = [failing] if failing.startswith("prod") else ["prod", f"prod-{SHARD}"]
    exits = "exiting" in failing
    main = project / "__main__.py"
    main.write_text(main.read_text().replace(
        "\ndef main() -> None:\n",
        "\ndef main() -> None:\n"
        f"    if {exits!r} and pulumi.get_stack() != 'prod':\n"
        "        raise SystemExit(3)\n"
        f"    if pulumi.get_stack() in {failing_stacks!r}:\n"
        "        raise RuntimeError(f'the program fails in {pulumi.get_stack()}')\n", 1))
    run = forked(project)
    with pytest.raises(Exception) as sequential:
        plan_environment(project, "prod", shards=[SHARD], workers=1)
    assert run["error"] == [type(sequential.value).__name__, str(sequential.value)]
    assert ("fails in prod-" in run["error"][1]) == (failing == f"prod-{SHARD}")


def test_a_stack_announces_its_outputs_before_its_pack_runs():
    """What a shard beside it waits for: the platform stack's outputs, not its pack."""
    events: list[tuple[str, object]] = []

    class Progress:
        def __call__(self, resource):
            events.append(("registered", resource.urn))

        def analyzed(self, resource):
            events.append(("analyzed", resource))

    plan = run_plan(REPO, "prod", policy=True, progress=Progress(),
                    on_outputs=lambda outputs: events.append(("outputs", outputs)))
    kinds = [kind for kind, _ in events]
    assert kinds.count("outputs") == 1 and "analyzed" in kinds
    announced = kinds.index("outputs")
    assert "registered" not in kinds[announced:] and "analyzed" not in kinds[:announced]
    assert events[announced][1] == plan.outputs
