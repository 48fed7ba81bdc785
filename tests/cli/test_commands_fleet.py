"""The fleet through the CLI (docs/fleet.md): plan and validate per environment and per
shard, `where`, and `shard plan`'s commands."""

from __future__ import annotations

import json
import shlex

from tests.projects import REPO
from tests.security.conftest import cli

P = ("--project-dir", str(REPO))


def test_plan_reports_every_stack_of_the_environment():
    run = cli("plan", "--stack", "dev", *P, "--format", "json", "--quiet")
    assert run.code == 0, run.text[-2000:]
    document = json.loads(run.stdout)
    stacks = {s["stack"]: s for s in document["stacks"]}
    assert list(stacks) == ["dev", "dev-api-team", "dev-payments-team", "dev-web-team"]
    assert sum(s["resources"] for s in stacks.values()) == document["summary"]["resources"]
    in_stack = {r["urn"].split("::")[0].removeprefix("urn:pulumi:") for r in document["resources"]}
    assert in_stack == set(stacks)
    assert set(document["outputs"]["services"]) == {"api", "web", "worker"}


def test_plan_of_one_shard_plans_it_and_its_platform_stack():
    for args in (("--stack", "prod", "--shard", "payments-team"),
                 ("--stack", "prod-payments-team"), ("--stack", "prod", "--service", "worker")):
        run = cli("plan", *args, *P, "--format", "json", "--no-policy")
        assert run.code == 0, run.text[-2000:]
        document = json.loads(run.stdout)
        assert [s["stack"] for s in document["stacks"]] == ["prod", "prod-payments-team"]
        assert set(document["outputs"]["services"]) == {"worker"}
    run = cli("plan", "--stack", "prod", "--shard", "nope", *P, "--no-policy")
    assert run.code == 1 and "has no shard `nope`" in run.stderr and "Traceback" not in run.text


def test_validate_a_shard_and_an_unknown_stack():
    assert cli("validate", "--stack", "prod", "--shard", "api-team", *P).code == 0
    assert cli("validate", "--stack", "prod-web-team", *P).code == 0
    run = cli("validate", "--stack", "qa-x", *P, "--format", "json")
    assert run.code == 1 and "file not found" in run.stdout and "Pulumi.qa-x.yaml" in run.stdout
    run = cli("validate", "--stack", "a b", *P, "--format", "json")
    assert run.code == 1 and "is not a stack name" in run.stdout


def test_where_names_the_stack_and_the_output():
    run = cli("where", "worker", *P, "--format", "json")
    assert run.code == 0
    rows = json.loads(run.stdout)
    assert [(r["environment"], r["stack"], r["output"]) for r in rows] == [
        ("dev", "dev-payments-team", "services.worker"),
        ("prod", "prod-payments-team", "services.worker"),
        ("staging", "staging-payments-team", "services.worker")]
    assert rows[0]["command"] == ["pulumi", "stack", "output", "--stack", "dev-payments-team",
                                  "--json", "services"]
    assert cli("where", "nobody", *P).code == 1
    assert cli("where", "api", "--stack", "qa", *P).code == 1


def test_shard_plan_prints_shell_safe_state_moves():
    run = cli("shard", "plan", "--stack", "prod", *P)
    assert run.code == 0, run.text[-2000:]
    moves = [shlex.split(line) for line in run.stdout.splitlines()
             if line.startswith("pulumi state move")]
    assert [m[5:7] for m in moves] == [["--dest", "prod-api-team"],
                                       ["--dest", "prod-payments-team"],
                                       ["--dest", "prod-web-team"]]
    for move in moves:
        assert move[3:5] == ["--source", "prod"]
        assert all(u.startswith("urn:pulumi:prod::configplane::") for u in move[8:])
    document = json.loads(cli("shard", "plan", "--stack", "prod", *P, "--format", "json").stdout)
    assert [m["argv"] for m in document["moves"]] == moves
