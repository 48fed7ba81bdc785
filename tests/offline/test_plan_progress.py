"""Long plans show progress on a terminal and stay quiet in CI, off a terminal or with --quiet."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from configplane.cli.commands.plan import command as plan_command
from configplane.cli.commands.plan import plan_progress
from configplane.offline import run_plan
from tests.conftest import REPO


def test_progress_is_called_once_per_registered_resource_in_order():
    seen = []
    plan = run_plan(REPO, "dev", one_stack=True, progress=seen.append)
    assert [r.urn for r in seen] == [r.urn for r in plan.resources]
    assert len(seen) > 30


@pytest.mark.parametrize(("quiet", "ci", "force_terminal"), [
    (True, None, "1"),  # --quiet on a terminal
    (False, "true", "1"),  # CI on a terminal
    (False, None, None),  # not a terminal (pytest captures stderr)
])
def test_no_progress_bar_when_quiet_in_ci_or_off_a_terminal(monkeypatch, quiet, ci,
                                                            force_terminal):
    for name, value in (("CI", ci), ("FORCE_COLOR", force_terminal), ("TTY_COMPATIBLE", None)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    with plan_progress("dev", quiet) as progress:
        assert progress is None


def test_progress_bar_on_a_terminal(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich treats the console as a terminal
    with plan_progress("dev", False) as progress:
        for _ in range(3):
            progress(None)
        for _ in range(2):
            progress.analyzed(None)
        tasks = {task.description: task.completed for task in progress.bar.tasks}
    assert tasks == {"planning dev": 3, "policy pack": 2}


def test_cli_plan_quiet_prints_only_the_document(monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("CI", raising=False)
    result = CliRunner().invoke(plan_command, ["--stack", "dev", "--project-dir", str(REPO),
                                               "--no-policy", "--quiet", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert json.loads(result.stdout)["stack"] == "dev"


def test_cli_plan_shows_progress_on_stderr_of_a_terminal(monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("CI", raising=False)
    result = CliRunner().invoke(plan_command, ["--stack", "dev", "--project-dir", str(REPO),
                                               "--no-policy", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "planning dev" in result.stderr and "resources" in result.stderr
    assert json.loads(result.stdout)["stack"] == "dev"  # stdout stays clean JSON


@pytest.mark.parametrize("enabled", [True, False])
def test_run_plan_leaves_the_garbage_collector_as_it_found_it(enabled):
    import gc

    (gc.enable if enabled else gc.disable)()
    try:
        run_plan(REPO, "dev", one_stack=True)
        assert gc.isenabled() is enabled
    finally:
        gc.enable()


def test_policy_analysis_reports_progress_per_analysed_resource():
    class Recorder:
        def __init__(self):
            self.registered, self.analysed = [], []

        def __call__(self, resource):
            self.registered.append(resource.urn)

        def analyzed(self, resource):
            self.analysed.append(resource.urn)

    recorder = Recorder()
    plan = run_plan(REPO, "dev", one_stack=True, policy=True, progress=recorder)
    assert recorder.registered == [r.urn for r in plan.resources]
    root = "urn:pulumi:dev::configplane::pulumi:pulumi:Stack::configplane-dev"
    assert recorder.analysed == [root] + recorder.registered  # the root stack first, as the CLI


def test_progress_bars_for_program_and_policy_on_a_terminal(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    with plan_progress("dev", False) as progress:
        progress(None)
        progress.analyzed(None)
        tasks = {t.description: t.completed for t in progress.bar.tasks}
    assert tasks == {"planning dev": 1, "policy pack": 1}
