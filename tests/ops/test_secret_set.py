"""`configplane secret set` on a copy of the project: one command, then `validate` passes (with
the grant the command prints applied by the platform, or written with --grant); the value goes
to `pulumi config set --secret` through stdin, never argv, never output; comments are kept;
hostile keys, services and stacks are refused with nothing written."""

from __future__ import annotations

import difflib
import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from configplane.cli.commands.secret import command as secret
from configplane.cli.commands.validate import command as validate
from configplane.ops import ImportProblem
from configplane.ops.importer import add_secret
from tests.ops.test_importer import HOSTILE_DOCUMENTS
from tests.projects import copy_project, files_text
from tests.test_projectfiles import tree

VALUE = "canary-sset-Qw8Zr4Lp2Nx7Kv5"

# A stand-in for the Pulumi CLI: records its argv and stores what it reads from stdin as a
# `secure:` value in the stack file, as `pulumi config set --secret` does (encryption aside).
FAKE_PULUMI = f"""#!{sys.executable}
import base64, json, os, sys, yaml
args = sys.argv[1:]
with open(os.environ["FAKE_PULUMI_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
value = sys.stdin.read()
value = value[:-1] if value.endswith("\\n") else value
stack = args[args.index("--stack") + 1]
key = next(a for a in args if a.startswith("configplane:"))
cwd = args[args.index("--cwd") + 1] if "--cwd" in args else "."
path = os.path.join(cwd, f"Pulumi.{{stack}}.yaml")
doc = (yaml.safe_load(open(path)) if os.path.exists(path) else None) or {{}}  # a new shard's
doc.setdefault("config", {{}})[key] = {{"secure": "v1:bm9uY2Vub25jZQ==:"
                                       + base64.b64encode(value[::-1].encode()).decode()}}
yaml.safe_dump(doc, open(path, "w"), sort_keys=False)
"""


def run(*args: str, project: Path, stdin: str | None = None, env: dict | None = None):
    return CliRunner().invoke(secret, ["set", *args, "--project-dir", str(project)],
                              input=stdin, env=env)


def valid(project: Path, stack: str = "dev") -> list[dict]:
    result = CliRunner().invoke(validate, ["--stack", stack, "--project-dir", str(project),
                                           "--format", "json"])
    return json.loads(result.output)["errors"]


def set_secure(project: Path, stack: str, key: str) -> None:
    path = project / f"Pulumi.{stack}.yaml"  # a new shard's file: `pulumi stack init` made it
    doc = yaml.safe_load(path.read_text()) if path.is_file() else {"config": {}}
    doc["config"][key] = {"secure": "v1:bm9uY2Vub25jZQ==:Y2lwaGVydGV4dGNpcGhlcnRleHQ="}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def apply_printed_grant(project: Path, grant: dict) -> None:
    """What the platform does with the printed grant."""
    path = project / grant["file"]
    doc = yaml.safe_load(path.read_text())
    node = doc["config"]
    for part in grant["path"].split("."):
        node = node.setdefault(part, {})
    for service, keys in grant["add"].items():
        node.setdefault(service, []).extend(keys)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.mark.parametrize("extra", [(), ("--overlay",), ("--store", "aws")])
def test_one_command_then_the_printed_grant_and_validate_passes(project: Path, extra) -> None:
    comments = [line for line in (project / "Pulumi.yaml").read_text().splitlines()
                if line.lstrip().startswith("#")]
    result = run("--stack", "dev", "--service", "web", "PARTNER_TOKEN", *extra, "--format",
                 "json", project=project)
    assert result.exit_code == 0, result.output
    done = json.loads(result.output)
    assert done["config_key"] == "configplane:webPartnerToken"
    # the value goes to the stack that holds web: its team's shard (docs/fleet.md)
    assert done["command"][:7] == ["pulumi", "config", "set", "--secret", "--stack",
                                   "dev-web-team", "configplane:webPartnerToken"]
    assert [line for line in (project / "Pulumi.yaml").read_text().splitlines()
            if line.lstrip().startswith("#")] == comments  # every comment kept, in order
    errors = valid(project)
    assert {e["path"] for e in errors} >= {"services.web.secrets.PARTNER_TOKEN.config_key"}
    apply_printed_grant(project, done["grant"])
    set_secure(project, "dev-web-team", "configplane:webPartnerToken")
    assert valid(project) == []
    if "--overlay" not in extra:  # in the base: every stack needs the value
        for stack in ("staging", "prod"):
            set_secure(project, f"{stack}-web-team", "configplane:webPartnerToken")
            assert valid(project, stack) == []


def test_the_platform_grants_with_grant_and_run_sets_the_value_from_stdin(project: Path,
                                                                          tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text(FAKE_PULUMI)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "pulumi.log"
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_PULUMI_LOG": str(log)}
    result = run("--stack", "dev", "--service", "worker", "--grant", "--run", "PARTNER_TOKEN",
                 project=project, stdin=VALUE + "\n", env=env)
    assert result.exit_code == 0, result.output
    assert VALUE not in result.output and VALUE not in log.read_text()  # never argv, never shown
    assert "the platform must grant" not in result.output
    assert VALUE not in files_text(project)  # stored only as the stand-in's ciphertext
    assert valid(project) == []
    grants = yaml.safe_load((project / "Pulumi.yaml").read_text())["config"][
        "configplane:defaults"]["value"]["platform"]["grants"]["secure_keys"]
    assert grants["worker"] == ["paymentsApiKey", "workerPartnerToken"]


@pytest.mark.parametrize("args, fragment", [
    (("--service", "../web", "KEY"), "no service"),
    (("--service", "web\n", "KEY"), "no service"),
    (("--service", "nope", "KEY"), "no service"),
    (("--service", "Web", "KEY"), "no service"),
    (("--service", "web", "BAD KEY"), "letters, digits"),
    (("--service", "web", "KEY\n"), "letters, digits"),
    (("--service", "web", "../../x"), "letters, digits"),
    (("--service", "web", "COOKIE_ENCRYPTION_KEY"), "already declared"),
    (("--service", "web", "KEY", "--config-key", "a:b"), "not a Pulumi config key"),
    (("--service", "web", "KEY", "--config-key", "apiDbPassword"), "granted to service api"),
    (("--service", "web", "KEY", "--config-key", "defaults"), "not as a secret"),
])
def test_hostile_or_conflicting_input_is_refused_and_nothing_written(project: Path, args,
                                                                    fragment) -> None:
    before = files_text(project)
    result = run("--stack", "dev", *args, project=project)
    assert result.exit_code == 1 and fragment in result.output and "Traceback" not in result.output
    assert files_text(project) == before


@pytest.mark.parametrize("stack", ["prd", "../dev", "dev\n", ""])
def test_an_unknown_stack_is_refused(project: Path, stack: str) -> None:
    before = files_text(project)
    result = run("--stack", stack, "--service", "web", "KEY", project=project)
    assert result.exit_code == 1 and "Fix: use one of: dev, prod, staging" in result.output
    assert files_text(project) == before


def test_a_service_not_in_the_stack_is_refused_for_its_overlay(project: Path) -> None:
    (project / "services/web/dev.yaml").write_text("null\n")
    result = run("--stack", "dev", "--service", "web", "KEY", "--overlay", project=project)
    assert result.exit_code == 1 and "not in this stack" in result.output


@pytest.mark.parametrize("link, target", [
    ("services/web/dev.yaml", "{outside}/dev.yaml"),  # the overlay, a dangling link out
    ("services/web/dev.yaml", "../api/dev.yaml"),     # another service's overlay
    ("Pulumi.yaml", "{outside}/Pulumi.yaml"),         # a platform file, out of the project
])
def test_a_link_out_of_its_owners_directory_is_neither_read_nor_written(tmp_path: Path, link,
                                                                       target) -> None:
    project = copy_project(tmp_path / "project")
    outside = tmp_path / "outside"
    outside.mkdir()
    if link == "Pulumi.yaml":
        (outside / "Pulumi.yaml").write_text((project / link).read_text())
    (project / link).unlink()
    (project / link).symlink_to(target.format(outside=outside))
    before = tree(tmp_path)
    result = run("--stack", "dev", "--service", "web", "PARTNER_TOKEN", "--overlay", "--grant",
                 project=project)
    assert result.exit_code == 1 and "symlink to outside" in result.output, result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1
    assert tree(tmp_path) == before


SERVICE_FILES = [
    "app_schema: worker\nconfig:\n  A: 1\n",
    "app_schema: worker\n# the secrets\nsecrets:\n  X:\n    source: generated\n    store: vault"
    "\n\n# flags follow\nflags: {}\n",
    "app_schema: worker\nsecrets:\n    X: {source: generated, store: vault}  # inline\n",
    "config:\n  A: 1\nsecrets:\n",
    "config:\n  A: 1  # a trailing comment\n# and a last line\n",
]


@pytest.mark.parametrize("text", SERVICE_FILES)
def test_a_secret_is_one_inserted_block_that_reads_back(text: str) -> None:
    """add_secret (import's editor) changes a service file by inserted lines only, keeps every
    comment line where it was relative to what it introduces, and parses as intended."""
    spec = {"source": "secure", "config_key": "webK", "store": "vault"}
    result = add_secret(text, "K", spec, "services/web/service.yaml")
    document = yaml.safe_load(text)
    assert yaml.safe_load(result) == {**document,
                                      "secrets": {**(document.get("secrets") or {}), "K": spec}}
    before, after = text.splitlines(), result.splitlines()
    ops = [op for op in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes()
           if op[0] != "equal"]
    assert [op[0] for op in ops] == ["insert"]  # one block inserted, nothing else changed
    assert not any(line.lstrip().startswith("#") for line in after[ops[0][3]:ops[0][4]])
    if "# flags follow" in text:  # the comment still introduces flags, not the new secret
        assert after.index("# flags follow") == after.index("flags: {}") - 1
        assert after.index("# flags follow") > after.index("  K:")


def test_an_edit_that_would_change_other_lines_is_refused_with_the_spec_to_add() -> None:
    with pytest.raises(ImportProblem) as e:
        add_secret("secrets: {X: {source: generated}}\n", "K", {"source": "secure"},
                   "services/web/service.yaml")
    assert str(e.value) == ("services/web/service.yaml: could not add secrets.K without changing "
                            "something else (unusual layout). Fix: add it by hand under "
                            "`secrets:`: `K: {source: secure}`.")


@pytest.mark.parametrize("document", HOSTILE_DOCUMENTS)
@pytest.mark.parametrize("file", ["Pulumi.yaml", "Pulumi.dev.yaml", "services/api/service.yaml"])
def test_a_hostile_project_file_is_a_clean_error(tmp_path, file, document):
    """Whatever the project's files hold, secret set edits cleanly or refuses with one message
    naming the file; it never crashes and writes nothing when it refuses."""
    project = copy_project(tmp_path / "p")
    (project / file).write_text(document)
    before = files_text(project)
    for extra in ((), ("--grant",), ("--overlay",)):
        result = run("--stack", "dev", "--service", "api", "NEW_TOKEN", *extra, project=project)
        output = result.output
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
        assert result.exit_code in (0, 1) and "internal error" not in output, output
        if result.exit_code == 1:
            assert output.startswith("error: ") and files_text(project) == before, output
        before = files_text(project)


@pytest.mark.parametrize("word", ["no", "on", "Off", "yes", "null", "~", "0x1F", "2026-01-02"])
def test_a_word_yaml_1_1_reads_as_no_text_is_written_quoted(word: str) -> None:
    # ruamel.yaml writes YAML 1.2, where these are text; configplane's loader reads 1.1
    text = "name: x\nsecrets:\n  a:\n    source: secure\n"
    after = add_secret(text, word, {"source": "secure", "config_key": word}, "f")
    assert yaml.safe_load(after)["secrets"][word] == {"source": "secure", "config_key": word}
