"""The error boundary: input-caused failures are one clean message naming the file and the fix
(exit 1, 2 for usage), anything else a short internal-error message with no value and no
traceback unless CONFIGPLANE_DEBUG=1."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from configplane.cli.boundary import EXIT_INTERNAL, RedactingStream, protect, running
from configplane.inputs import RunContext
from configplane.offline import PolicyPackError, PolicyPackSession
from tests.projects import REPO, copy_project
from tests.security.conftest import assert_clean, cli

SECRET = "Qm7-canary-0b9a8c7d-value"


def run_module(*args: str, stdin=None, stdout=None, env=None, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "configplane", *args], cwd=cwd, stdin=stdin,
                          stdout=stdout if stdout is not None else subprocess.PIPE,
                          stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
                          timeout=300)


def test_closed_stdout_is_a_clean_message():
    proc = subprocess.run(f"{sys.executable} -m configplane validate --stack dev >&-",
                          shell=True, cwd=REPO, stderr=subprocess.PIPE, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.decode() == (
        "error: cannot write the output: standard output is closed. Fix: run the command with "
        "its output open (a terminal, a pipe or a file: `> out.json`).\n")


@pytest.mark.parametrize("command", ["scan --jsonl -", "drift-report -"])
def test_closed_stdin_is_an_error_not_an_empty_input(command):
    """`<&-`: there is no input at all, which an empty result must not pass for (issue 18)."""
    proc = subprocess.run(f"{sys.executable} -m configplane {command} <&-", shell=True,
                          cwd=REPO, capture_output=True, timeout=300)
    assert proc.returncode == 1 and proc.stdout == b""
    assert b"standard input is closed" in proc.stderr, proc.stderr
    assert b"Traceback" not in proc.stderr


def test_empty_stdin_is_an_empty_input():
    proc = subprocess.run(f"{sys.executable} -m configplane scan --jsonl - </dev/null",
                          shell=True, cwd=REPO, capture_output=True, timeout=300)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")


def test_out_under_a_regular_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    run = cli("plan", "--stack", "dev", "--no-policy", "--out", str(blocker / "plan"))
    assert_clean(run, [])
    assert run.code == 1
    assert run.stderr.startswith(f"error: --out {blocker / 'plan'}: cannot write the plan there")
    assert "Fix: name a directory" in run.stderr


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "schemas/services/http-api.schema.json: not valid JSON (Expecting property "
                  "name enclosed in double quotes at line 1, column 2). Fix: correct the JSON."),
    ('{"type": "objectz"}', "schemas/services/http-api.schema.json: not a valid JSON Schema at "
                            "`type` (anyOf of the metaschema fails). Fix: correct the schema."),
    ('{"type": "object", "properties": {"PORT": {"type": "string", "pattern": "([a-z"}}}',
     "schemas/services/http-api.schema.json: "),
])
def test_broken_app_schemas_are_clean_errors_naming_the_schema(project, content, message):
    (project / "schemas/services/http-api.schema.json").write_text(content)
    run = cli("validate", "--stack", "dev", "--project-dir", str(project), "--format", "json")
    assert_clean(run, ["hunter", "shop-dev.cluster"])
    assert run.code == 1
    errors = json.loads(run.stdout)["errors"]
    assert {e["file"] for e in errors} == {"schemas/services/http-api.schema.json"}
    assert {e["path"] for e in errors} == {"services.api.app_schema"}
    assert all(f'{e["file"]}: {e["message"]}'.startswith(message) for e in errors), errors


def test_broken_stack_schema_is_a_clean_error(project):
    (project / "schemas/stack.schema.json").write_text('{"type": 5}')
    run = cli("validate", "--stack", "dev", "--project-dir", str(project), "--format", "json")
    assert_clean(run, [])
    assert json.loads(run.stdout)["errors"] == [{
        "path": "(schema)", "file": "schemas/stack.schema.json", "line": None,
        "message": "not a valid JSON Schema at `type` (anyOf of the metaschema fails). Fix: "
                   "correct the schema."}]


def test_yaml_syntax_error_says_how_to_fix_the_file(project):
    (project / "Pulumi.dev.yaml").write_text(f"config:\n  configplane:x: [{SECRET}\n")
    run = cli("validate", "--stack", "dev", "--project-dir", str(project), "--format", "json")
    assert_clean(run, [])  # the value is not secret-looking: the file's line may be quoted
    error = json.loads(run.stdout)["errors"][0]
    # the place: the file and line (the loader names the column), never the line's text
    assert (error["file"], error["line"]) == ("Pulumi.dev.yaml", 3)
    assert error["message"].startswith("not valid YAML, column 1: ")
    assert error["message"].endswith("Fix: correct the syntax (a YAML linter shows the spot).")
    assert "--stack" not in error["message"]
    missing = cli("validate", "--stack", "qa", "--project-dir", str(project), "--format", "json")
    assert json.loads(missing.stdout)["errors"][0]["message"].endswith(
        "Fix: use one of the stacks that exist: dev, prod, staging.")


def test_a_secret_quoted_by_a_yaml_error_is_redacted(project):
    token = "ghp_" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8"
    (project / "Pulumi.dev.yaml").write_text(f"config:\n  vault:token: {token}\n  bad: [x\n")
    for fmt in ("json", "table"):
        run = cli("validate", "--stack", "dev", "--project-dir", str(project), "--format", fmt)
        assert run.code == 1
        assert_clean(run, [token, token[4:]])


def test_usage_errors_exit_2():
    run = cli("validate")
    assert run.code == 2 and "Missing option '--stack'" in run.stderr
    assert cli("no-such-verb").code == 2


def test_an_internal_error_prints_no_value_and_no_traceback(monkeypatch):
    def boom(*args, **kwargs):
        raise KeyError(SECRET)

    monkeypatch.setattr("configplane.cli.commands.validate.run_issues", boom)
    run = cli("validate", "--stack", "dev")
    assert run.code == EXIT_INTERNAL == 70  # not 1: a bug, not the input's fault
    assert run.stderr == ("error: internal error (KeyError); no values are shown. Fix: report "
                          "it with the command line; run with CONFIGPLANE_DEBUG=1 for the "
                          "traceback.\n")
    monkeypatch.setenv("CONFIGPLANE_DEBUG", "1")
    debug = cli("validate", "--stack", "dev")
    assert "Traceback" in debug.stderr and debug.code == EXIT_INTERNAL


def test_debug_traceback_is_redacted_too(monkeypatch):
    monkeypatch.setenv("CONFIGPLANE_DEBUG", "1")

    def boom(*args, **kwargs):
        protect(SECRET)
        raise ValueError(f"bad value {SECRET}")

    monkeypatch.setattr("configplane.cli.commands.validate.run_issues", boom)
    run = cli("validate", "--stack", "dev")
    assert "Traceback" in run.stderr and SECRET not in run.stderr and "[secret]" in run.stderr


def test_streams_redact_across_writes_and_json_escapes():
    import io
    target = io.StringIO()
    run = RunContext.create()
    stream = RedactingStream(target, "standard output", run.redactor)
    with pytest.raises(SystemExit), running(run):
        protect('pa"ss-wörd-123')
        stream.write("a pa")
        stream.write('"ss-wörd-123 b\n')
        stream.write(json.dumps({"v": 'pa"ss-wörd-123'}) + "\n")
        stream.flush()
        raise SystemExit(3)
    assert target.getvalue() == 'a [secret] b\n{"v": "[secret]"}\n'


def test_a_config_too_large_for_the_pack_is_a_clear_message(tmp_path):
    session = PolicyPackSession(REPO / "policies", project="configplane", stack="dev",
                                config={"configplane:services": "x" * (200 * 1024)})
    with pytest.raises(PolicyPackError) as e:
        session.start()
    assert str(e.value).startswith("the stack's configuration (200 KiB of PULUMI_CONFIG) is too "
                                   "large to hand to the policy pack")
    assert "Argument list too long" not in str(e.value)


def test_non_utf8_stack_file_is_clean(project):
    (project / "Pulumi.dev.yaml").write_bytes("config:\n  a: b\n".encode("utf-16"))
    run = cli("validate", "--stack", "dev", "--project-dir", str(project), "--format", "json")
    assert_clean(run, [])
    assert run.code == 1
    assert json.loads(run.stdout)["errors"] == [{
        "path": "", "file": "Pulumi.dev.yaml", "line": None,
        "message": "file is UTF-16 (byte-order mark at byte 0). Fix: save it as UTF-8."}]


def test_python_m_configplane_runs_through_the_boundary(tmp_path):
    project = copy_project(tmp_path / "p")
    (project / "schemas/services/worker.schema.json").write_text('{"type": "objectz"}')
    proc = run_module("validate", "--stack", "dev", "--project-dir", str(project),
                      "--format", "json")
    assert proc.returncode == 1
    assert b"Traceback" not in proc.stderr + proc.stdout
    assert b"schemas/services/worker.schema.json" in proc.stdout


def test_a_broken_stack_files_declared_secrets_are_known_before_anything_prints(project):
    # libyaml's messages name a line and column; PyYAML's own parser quotes the line: either
    # way the value is known to the redactor before the error is printed.
    from configplane.cli.boundary import protect_stack, redactor
    from configplane.redaction import detect
    from tests.security.conftest import edit_yaml

    weak = "bluebird"
    edit_yaml(project / "Pulumi.yaml", lambda d: d["config"].update(
        {"configplane:launchCode": {"type": "string", "secret": True}}))
    assert detect("launchCode", weak) == ()  # only the declaration makes it secret
    (project / "Pulumi.dev.yaml").write_text(
        f"config:\n  configplane:launchCode: {weak}\n  configplane:x: [y\n")
    seen = {}
    with pytest.raises(SystemExit), running(RunContext.create(project)):
        protect_stack(project, "dev")
        seen["knows"] = redactor().knows(weak)
        seen["line"] = redactor().text(f"  configplane:launchCode: {weak}")
        raise SystemExit(1)
    assert seen == {"knows": True, "line": "  configplane:launchCode: [secret]"}
