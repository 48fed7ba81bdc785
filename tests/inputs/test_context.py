"""The run context: made once per command (or program run), passed explicitly, never global."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from configplane.cli.boundary import protect, redactor, running
from configplane.cli.commands.explain import command as explain
from configplane.cli.commands.validate import command as validate
from configplane.inputs import SELECTION_KEY, RunContext, Selection
from tests.projects import copy_project

ZEBRA_DETECTOR = '''
from dataclasses import dataclass, field


@dataclass
class Finding:
    secret: bool
    rules: list = field(default_factory=list)


def scan(key, value):
    return Finding(True, ["zebra"]) if "zebra" in str(value) else Finding(False)
'''
DESCRIPTION = "zebra crossing ahead"


def _with_description(project: Path) -> Path:
    path = project / "services/api/service.yaml"
    document = yaml.safe_load(path.read_text())
    document["secrets"]["DATABASE_PASSWORD"]["description"] = DESCRIPTION
    path.write_text(yaml.safe_dump(document))
    return project


@pytest.fixture
def two_projects(tmp_path: Path) -> tuple[Path, Path]:
    """The same project twice; the second's pack has its own detector (it flags "zebra")."""
    plain = _with_description(copy_project(tmp_path / "plain"))
    zebra = _with_description(copy_project(tmp_path / "zebra"))
    (zebra / "policies").mkdir()
    (zebra / "policies/secret_detector.py").write_text(ZEBRA_DETECTOR)
    return plain, zebra


def _validate(project: Path) -> list[str]:
    result = CliRunner().invoke(validate, ["--stack", "dev", "--project-dir", str(project),
                                           "--format", "json"])
    return [e["path"] for e in json.loads(result.output)["errors"]]


def _explained(project: Path) -> object:
    result = CliRunner().invoke(explain, ["--stack", "dev", "api",
                                          "secrets.DATABASE_PASSWORD.description",
                                          "--project-dir", str(project), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["value"]


def test_each_command_judges_with_its_own_projects_pack_and_redactor(two_projects):
    plain, zebra = two_projects
    flagged = ["services.api.secrets.DATABASE_PASSWORD.description"]
    for _ in range(2):  # in either order, one process: nothing carries over
        assert _validate(zebra) == flagged
        assert _explained(zebra) == "[secret]"
        assert _validate(plain) == []
        assert _explained(plain) == DESCRIPTION


def test_two_runs_do_not_share_redacted_values():
    first, second = RunContext.create(), RunContext.create()
    with running(first):
        protect("hunter2-but-longer")
        assert redactor().text("x hunter2-but-longer") == "x [secret]"
    with running(second):
        assert redactor() is second.redactor
        assert redactor().text("x hunter2-but-longer") == "x hunter2-but-longer"
    assert first.redactor is not second.redactor


def test_outside_a_run_there_is_no_redactor_to_reach():
    with pytest.raises(RuntimeError, match="no configplane command is running"):
        redactor()


names = st.frozensets(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True), max_size=5)


@given(names)
def test_a_selection_survives_the_trip_through_config(services):
    selection = Selection.of(services)
    config = selection.as_config()
    assert Selection.from_config(config) == selection
    assert (config == {}) == (not services)  # every service: no key at all
    assert all(selection.admits(s) for s in services)


@pytest.mark.parametrize("raw", ['"api"', '{"services": "api"}', '{"services": [1]}',
                                 '{"shards": ["a"]}', "[]"])
def test_a_selection_the_plan_did_not_write_is_refused(raw):
    with pytest.raises(ValueError, match=SELECTION_KEY):
        Selection.from_config({SELECTION_KEY: raw})
