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


def test_github_environments_prints_shell_safe_commands_for_every_shard_and_no_other():
    """One protected GitHub environment per shard stack of the environment (no platform's,
    no preview's), every word a shell word of its own: the script a shell would run is the
    argv the commands name, and `sh -n` reads it."""
    import subprocess

    from configplane.model import environment_stacks
    from configplane.ops import script_lines, shard_environments

    for environment in ("dev", "staging", "prod"):
        run = cli("github-environments", "--env", environment, "--project-dir", str(REPO))
        assert run.code == 0, run.text
        assert subprocess.run(["sh", "-n"], input=run.stdout, text=True).returncode == 0
        repository, shards = shard_environments(REPO, environment)
        assert run.stdout.splitlines() == script_lines(environment, repository, shards)
        created = {c[4].rsplit("/", 1)[-1] for s in shards for c in s.create
                   if c[3] == "PUT"}
        assert created == {s.name for s in environment_stacks(REPO, environment)
                           if s.kind == "shard"}
        for shard in shards:
            for argv in (*shard.create, *shard.assign):
                assert shlex.join(argv) in run.stdout.splitlines()
            for _, read, write in shard.copy:
                assert read[-1] == environment and write[write.index("--env") + 1] == shard.name


def test_github_environments_refuses_bad_options_cleanly(tmp_path):
    from tests.projects import copy_project
    from tests.security.conftest import assert_clean

    for args, words in (
            (["--env", "nope"], "no such environment"),
            (["--env", "prod", "--branch", "-x"], "--branch"),
            (["--env", "prod", "--branch", "a..b"], "--branch"),
            (["--env", "prod", "--branch", "a b; rm -rf /"], "--branch")):
        run = cli("github-environments", *args, "--project-dir", str(REPO))
        assert_clean(run, [], codes=(1,))
        assert words in run.stderr and "Fix:" in run.stderr and run.stdout == "", args
    project = copy_project(tmp_path / "p")
    text = (project / "Pulumi.yaml").read_text()
    for repository, words in (("", "sets no platform.shards.github_repository"),
                              ("a/..", "github_repository"), ("a/b/c", "github_repository"),
                              ("'a/b; rm -rf /'", "github_repository")):
        line = f"github_repository: {repository}\n" if repository else ""
        (project / "Pulumi.yaml").write_text(text.replace("github_repository: shop/config\n",
                                                          line))
        run = cli("github-environments", "--env", "prod", "--project-dir", str(project))
        assert_clean(run, [], codes=(1,))
        assert words in run.stderr and "Fix" in run.stderr and run.stdout == "", repository


def test_github_environments_of_one_stack_creates_none(tmp_path):
    """An environment that is one stack deploys in `<env>` (the platform's): nothing to run."""
    from tests.projects import copy_project

    project = copy_project(tmp_path / "p")
    text = (project / "Pulumi.yaml").read_text()
    start = text.index("        shards:\n")
    end = text.index("        # Who owns each secure key")
    (project / "Pulumi.yaml").write_text(text[:start] + text[end:])
    run = cli("github-environments", "--env", "prod", "--project-dir", str(project))
    assert run.code == 0, run.text
    assert [line for line in run.stdout.splitlines() if not line.startswith("#")] == ["set -eu"]
    assert "prod is one stack" in run.stdout


FAKE_GH = r"""#!/bin/sh
# a stand-in for GitHub's CLI: environments, branch rules and variables in files under $GH_STATE;
# like GitHub, a branch rule that exists is refused (HTTP 422)
set -eu
log() { printf '%s\n' "$*" >> "$GH_STATE/calls"; }
log "$*"
if [ "$1" = api ] && [ "$2" = --method ] && [ "$3" = PUT ]; then
  mkdir -p "$GH_STATE/$(echo "$4" | tr / _)"; exit 0
fi
if [ "$1" = api ] && [ "$2" = --method ] && [ "$3" = POST ]; then
  rules="$GH_STATE/$(echo "$4" | tr / _)"
  name=$(printf '%s' "$6" | sed 's/^name=//')
  if [ -f "$rules" ] && grep -qxF -- "$name" "$rules"; then echo "HTTP 422: exists" >&2; exit 1; fi
  printf '%s\n' "$name" >> "$rules"; exit 0
fi
if [ "$1" = api ]; then
  rules="$GH_STATE/$(echo "$2" | tr / _)"
  [ -f "$rules" ] && cat "$rules"; exit 0
fi
if [ "$1" = variable ] && [ "$2" = get ]; then echo "value-of-$3"; exit 0; fi
if [ "$1" = variable ] && [ "$2" = set ]; then exit 0; fi
echo "unexpected: $*" >&2; exit 2
"""


def test_the_github_environments_script_runs_again_without_change(tmp_path):
    """Run after a shard is added, the script runs again over every shard: what exists is
    left as it is (a branch rule is added once; GitHub refuses a second one)."""
    import os
    import subprocess

    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    (bin_dir / "gh").write_text(FAKE_GH)
    (bin_dir / "gh").chmod(0o755)
    script = cli("github-environments", "--env", "prod", "--project-dir", str(REPO)).stdout
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "GH_STATE": str(state)}
    for _ in range(2):
        done = subprocess.run(["sh", "-e"], input=script, text=True, env=env,
                              capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
    calls = (state / "calls").read_text().splitlines()
    posts = [c for c in calls if c.startswith("api --method POST")]
    shards = [c for c in calls if c.startswith("api --method PUT")]
    assert shards and len(posts) == len(shards) // 2  # one rule per environment, added once
    for rules in state.glob("*deployment-branch-policies"):
        assert rules.read_text() == "main\n"
