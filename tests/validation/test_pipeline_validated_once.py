"""A read-only command validates each stack once (configplane.inputs.reading_once): `plan`
validates in the CLI, again before planning and a third time in the program; the later two
reuse the first's model or problems, which are what a fresh validation gives."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from configplane.cli.commands.plan import command as plan_command
from configplane.cli.commands.validate import command as validate
from configplane.inputs import read_inputs, reading_once
from configplane.model import InvalidStack, narrowed, stack_role, topology_of
from configplane.validation import load_or_issues, load_stack
from tests.conftest import REPO

VALIDATION = "stack validation"


def counted(command, args: list[str]) -> tuple[object, list[tuple]]:
    """The command's result and the validations it computed (`reading_once`'s hook: a
    command run inside a scope joins it)."""
    seen: list[tuple] = []
    with reading_once(observe=lambda kind, key: seen.append(key) if kind == VALIDATION else None):
        result = CliRunner().invoke(command, args)
    return result, seen


@pytest.mark.parametrize("shard", ["payments-team", "api-team"])
def test_plan_of_a_shard_validates_each_of_its_stacks_once(shard):
    """`plan --shard` plans the platform stack and the shard in this process: two stacks,
    two validations (not six), each a different stack's services."""
    result, seen = counted(plan_command, ["--stack", "prod", "--shard", shard, "--no-policy",
                                          "--quiet", "--format", "json",
                                          "--project-dir", str(REPO)])
    assert result.exit_code == 0, result.output[-2000:]
    planned = json.loads(result.output)
    assert len(planned["stacks"]) == 2
    assert len(seen) == len(set(seen)) == len(planned["stacks"])


def test_validate_of_every_shard_validates_each_once():
    result, seen = counted(validate, ["--stack", "prod", "--project-dir", str(REPO),
                                      "--format", "json"])
    assert result.exit_code == 0, result.output[-2000:]
    assert len(seen) == len(set(seen)) == 1  # the environment, all its services


def test_the_shared_model_is_the_one_a_fresh_validation_builds_and_stays_unchanged():
    """The model the plan's stages share is equal to one built outside any scope, before and
    after the program used it (no user changes it), and each later validation gets that one."""
    role = stack_role(REPO, "prod-payments-team")
    inputs = read_inputs(REPO, "prod", shard_files=[role.name])
    inputs = narrowed(inputs, topology_of(inputs).services_of(role))
    fresh = load_stack(inputs, REPO / "schemas")
    with reading_once():
        shared = load_or_issues(REPO, role.name)[0]
        assert shared == fresh
        CliRunner().invoke(plan_command, ["--stack", "prod", "--shard", "payments-team",
                                          "--no-policy", "--quiet", "--project-dir", str(REPO)])
        assert load_stack(inputs, REPO / "schemas") is shared
    assert shared == fresh == load_stack(inputs, REPO / "schemas")


def test_a_stacks_problems_are_reported_alike_each_time_and_each_caller_gets_its_own(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(REPO, project, ignore=shutil.ignore_patterns("venv", ".git", "tests"))
    base = project / "services" / "web" / "service.yaml"
    base.write_text(base.read_text().replace("PORT: 3000", "PORT: not-a-port"))
    inputs = read_inputs(project, "dev")
    with pytest.raises(InvalidStack) as outside:
        load_stack(inputs, project / "schemas")
    seen: list[tuple] = []
    with reading_once(observe=lambda kind, key: seen.append(key)):
        raised = []
        for _ in range(3):
            with pytest.raises(InvalidStack) as found:
                load_stack(inputs, project / "schemas")
            raised.append(list(found.value.issues))
            found.value.issues.clear()  # one caller's change is not the next one's
    assert len(seen) == 1
    assert raised == [outside.value.issues] * 3 and outside.value.issues


def test_other_inputs_are_validated_again(tmp_path):
    """The memo's key holds what decides the result: a changed layer, another day or another
    schemas directory is a new validation."""
    from dataclasses import replace
    from datetime import date

    inputs = read_inputs(REPO, "dev")
    seen: list[tuple] = []
    with reading_once(observe=lambda kind, key: seen.append(key)):
        first = load_stack(inputs, REPO / "schemas")
        load_stack(inputs, REPO / "schemas", today=date(2030, 1, 2))
        shutil.copytree(REPO / "schemas", tmp_path / "schemas")
        load_stack(inputs, tmp_path / "schemas")
        web = inputs.service_layers["web"]
        layer = web[-1].document["web"]
        changed = replace(web[-1], document={"web": {**layer, "config": {
            **layer.get("config", {}), "LOG_LEVEL": "warn"}}})
        other = load_stack(replace(inputs, service_layers={**inputs.service_layers,
                                                           "web": (*web[:-1], changed)}),
                           REPO / "schemas")
        again = load_stack(inputs, REPO / "schemas")
    assert len(seen) == 4 and again is first and other != first
