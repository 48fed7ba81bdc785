"""The `configplane` group: its verb table, `--help` that imports no verb, `--version`, and the
project found from a subdirectory as the Pulumi CLI finds it."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from configplane.cli.app import COMMANDS, main
from configplane.inputs import find_project_dir
from tests.conftest import REPO


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_the_table_says_what_each_command_says(verb):
    module, summary = COMMANDS[verb]
    command: click.Command = importlib.import_module(f"configplane.cli.commands.{module}").command
    assert command.name == verb
    assert command.get_short_help_str(10**6) == summary


def test_every_command_module_is_in_the_table():
    modules = {p.stem for p in (REPO / "configplane" / "cli" / "commands").glob("*.py")}
    helpers = {"__init__", "options", "drift_render", "plan_compare"}  # no verb of their own
    assert sorted(module for module, _ in COMMANDS.values()) == sorted(modules - helpers)


def _modules_after(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    script = ("import json, sys\nfrom configplane.cli.app import main\n"
              "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
              "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    return done, set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"]])
def test_help_and_version_import_only_click(args):
    done, modules = _modules_after(*args)
    ours = {m for m in modules if m.startswith("configplane")}
    assert ours == {"configplane", "configplane.cli", "configplane.cli.app"}
    heavy = {"rich", "pulumi", "yaml", "pydantic", "jsonschema", "detect_secrets", "grpc"}
    assert not heavy & {m.split(".")[0] for m in modules}
    assert done.stdout  # it did print


def test_a_plan_imports_the_ops_layer_and_git_only_to_compare(tmp_path):
    """`plan` without --compare needs neither `configplane.ops` nor what it imports (ruamel.yaml):
    a shard's plan is run on every pull request, and imports are a third of its time."""
    from tests.projects import copy_project

    project = copy_project(tmp_path / "project")
    done, modules = _modules_after("plan", "--stack", "dev", "--no-policy", "--quiet",
                                   "--project-dir", str(project))
    assert "Traceback" not in done.stderr, done.stderr
    assert "configplane.offline.plan" in modules  # it did plan
    assert not {m for m in modules if m == "configplane.ops" or m.startswith(("configplane.ops.",
                                                                              "ruamel"))}


def test_help_lists_every_verb_as_click_would():
    # The listing from the table equals click's own, built from the imported commands.
    ours = CliRunner().invoke(main, ["--help"], prog_name="configplane", terminal_width=80)
    reference = click.Group(name="configplane", help=main.help, params=main.params,
                            context_settings=main.context_settings)
    for verb in COMMANDS:
        reference.add_command(main.get_command(click.Context(main), verb), verb)
    theirs = CliRunner().invoke(reference, ["--help"], prog_name="configplane", terminal_width=80)
    assert "  validate  " in ours.output
    assert ours.output == theirs.output


def test_version_is_the_installed_distribution():
    result = CliRunner().invoke(main, ["--version"])
    assert (result.exit_code, result.output) == (0, f"configplane {version('configplane')}\n")


# --- the project from here up -------------------------------------------------------------

def test_the_nearest_pulumi_yaml_from_here_up(tmp_path):
    outer = tmp_path / "outer"
    inner = outer / "nested" / "inner"
    deep = inner / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (outer / "Pulumi.yaml").write_text("name: outer\n")
    (inner / "Pulumi.yaml").write_text("name: inner\n")
    for start, expected in [(outer, outer), (outer / "nested", outer), (inner, inner),
                            (inner / "a", inner), (deep, inner)]:
        found = find_project_dir(start)
        assert not found.is_absolute()
        assert (start / found).resolve() == expected.resolve(), start
    assert find_project_dir(inner) == Path(".")
    assert find_project_dir(deep) == Path("../../..")
    # a directory named Pulumi.yaml is not a project file
    lonely = tmp_path / "lonely" / "x"
    (lonely / "Pulumi.yaml").mkdir(parents=True)
    assert find_project_dir(lonely) == Path(".")


def test_commands_run_from_a_service_directory(project, monkeypatch):
    monkeypatch.chdir(project / "services" / "api")
    from configplane.cli.commands.explain import command as explain
    from configplane.cli.commands.validate import command as validate

    result = CliRunner().invoke(validate, ["--stack", "dev"])
    assert (result.exit_code, result.output) == (0, "stack dev: configuration is valid\n")
    at_root = CliRunner().invoke(explain, ["--stack", "prod", "api", "LOG_LEVEL", "--format", "json",
                                           "--project-dir", str(project)])
    monkeypatch.chdir(project / "services")
    from_below = CliRunner().invoke(explain, ["--stack", "prod", "api", "LOG_LEVEL",
                                              "--format", "json"])
    assert (from_below.exit_code, from_below.output) == (0, at_root.output)


def test_no_project_anywhere_up_is_a_clean_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from configplane.cli.commands.validate import command as validate

    result = CliRunner().invoke(validate, ["--stack", "dev", "--format", "json"])
    assert result.exit_code == 1
    errors = json.loads(result.output)["errors"]
    assert [(e["file"], e["path"]) for e in errors] == [("Pulumi.yaml", "")]
    assert errors[0]["message"].startswith("file not found in ")


def test_shell_completion_as_docs_cli_md_documents_it(tmp_path):
    # docs/cli.md's lines set COMPLETE_VAR; click answers with the verbs and options
    from configplane.cli.reference import COMPLETE_VAR

    script = Path(sys.executable).parent / "configplane"

    def complete(words: str) -> list[str]:
        env = {**os.environ, COMPLETE_VAR: "bash_complete", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - 1)}
        done = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60,
                              cwd=REPO)
        assert done.returncode == 0, done.stderr
        return [line.split(",", 1)[1] for line in done.stdout.splitlines()]

    assert complete("configplane d") == ["diff", "dr", "drift", "drift-report"]
    assert complete("configplane validate --st") == ["--stack"]
    source = subprocess.run([str(script)], env={**os.environ, COMPLETE_VAR: "bash_source"},
                            capture_output=True, text=True, timeout=60)
    assert "complete -o nosort -F _configplane_completion configplane" in source.stdout
