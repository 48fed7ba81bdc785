"""A stack that does not exist: the error lists the stacks that do and guesses the typo."""

from __future__ import annotations

import json
import string
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from configplane.cli.commands.validate import command as validate
from configplane.inputs import existing_stacks, missing_stack_problem

NAMES = st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=12)


@contextmanager
def _project(stacks: set[str]) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="stacks-") as folder:
        root = Path(folder)
        _write(root, stacks)
        yield root


def _write(root: Path, stacks: set[str]) -> None:
    (root / "Pulumi.yaml").write_text("name: shop\nruntime: python\n")
    for stack in stacks:  # environments: their files set the platform's settings
        (root / f"Pulumi.{stack}.yaml").write_text("config:\n  configplane:platform: {}\n")


@settings(max_examples=40, deadline=None)
@given(st.sets(NAMES, min_size=1, max_size=5), NAMES)
def test_the_message_lists_every_stack_that_exists(stacks, asked):
    if asked in stacks:
        return
    with _project(stacks) as root:
        assert existing_stacks(root) == sorted(stacks)
        problem = missing_stack_problem(root, asked)
    assert problem.endswith(f"Fix: use one of the stacks that exist: {', '.join(sorted(stacks))}.")
    assert f"there is no stack {asked!r}" in problem


def test_a_shards_stack_is_not_offered_as_an_environment(tmp_path):
    # a shard's file holds secure values only (docs/fleet.md): it is reached with --shard
    _write(tmp_path, {"dev"})
    (tmp_path / "Pulumi.dev-api-team.yaml").write_text("config: {}\n")
    assert existing_stacks(tmp_path) == ["dev", "dev-api-team"]
    assert missing_stack_problem(tmp_path, "qa").endswith("stacks that exist: dev.")


@settings(max_examples=40, deadline=None)
@given(st.sets(st.text(alphabet=string.ascii_lowercase, min_size=4, max_size=10), min_size=1,
               max_size=4), st.data())
def test_a_typo_one_letter_off_is_guessed(stacks, data):
    target = data.draw(st.sampled_from(sorted(stacks)))
    at = data.draw(st.integers(min_value=0, max_value=len(target) - 1))
    typo = target[:at] + target[at + 1:]  # one letter dropped, as `prd` for `prod`
    if typo in stacks:
        return
    with _project(stacks) as root:
        problem = missing_stack_problem(root, typo)
    guessed = problem.split("did you mean `", 1)[1].split("`", 1)[0]
    assert guessed in stacks


def test_validate_names_the_stacks_of_the_sample_project(project):
    result = CliRunner().invoke(validate, ["--stack", "prd", "--project-dir", str(project),
                                           "--format", "json"])
    assert result.exit_code == 1
    (error,) = json.loads(result.output)["errors"]
    assert error["file"] == "Pulumi.prd.yaml"
    assert error["message"] == (f"file not found in {project.resolve()}: there is no stack 'prd'; "
                                "did you mean `prod`? Fix: use one of the stacks that exist: "
                                "dev, prod, staging.")
