"""`configplane migrate`: from service definitions in Pulumi config to the catalog, losing
nothing: the offline plan of every stack (the real __main__.py) is identical before and after."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from benchmarks.fleet import generate
from configplane.cli.commands.migrate import command as migrate_command
from configplane.inputs import load_file
from configplane.offline import run_plan
from tests.catalog_compat import to_legacy
from tests.conftest import REPO, STACKS


def migrate(project: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(migrate_command, ["--project-dir", str(project), *extra])
    return result.exit_code, result.output


def plans(project: Path) -> dict[str, dict]:
    return {stack: run_plan(project, stack, one_stack=True, policy=False).as_dict() for stack in STACKS}


def catalog_documents(project: Path) -> dict[str, object]:
    return {str(p.relative_to(project)): load_file(p).document
            for p in sorted((project / "services").rglob("*.yaml"))}


@pytest.fixture(scope="module")
def sample_plans() -> dict[str, dict]:
    return plans(REPO)


def test_sample_project_round_trips_with_identical_plans(project, sample_plans):
    to_legacy(project)  # the layout before the catalog, from the committed catalog
    assert not (project / "services").exists()
    assert plans(project) == sample_plans  # the old layout still plans the same

    code, output = migrate(project)
    assert code == 0 and "dry run" in output
    assert not (project / "services").exists()  # a dry run writes nothing

    code, output = migrate(project, "--write")
    assert code == 0, output
    assert plans(project) == sample_plans  # same URNs, same inputs, same outputs
    moved = catalog_documents(project)
    committed = catalog_documents(REPO)
    del moved["services/defaults.yaml"], committed["services/defaults.yaml"]  # owners: by hand
    assert moved == committed
    for stack in STACKS:
        config = yaml.safe_load((project / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert "configplane:services" not in config
    assert migrate(project) == (0, "nothing to migrate: no service definitions in Pulumi config\n")


def test_a_generated_fleet_round_trips_with_identical_plans(tmp_path):
    legacy = generate(tmp_path / "legacy", 10, layout="config")
    catalog = generate(tmp_path / "catalog", 10)
    before = plans(legacy)
    assert migrate(legacy, "--write")[0] == 0
    assert plans(legacy) == before == plans(catalog)
    moved, generated = catalog_documents(legacy), catalog_documents(catalog)
    assert moved.pop("services/defaults.yaml") == {"owners": [], "service": {}}
    generated.pop("services/defaults.yaml")
    assert moved == generated


LEGACY_PROJECT = """\
name: configplane
config:
  configplane:defaults:
    value:
      platform:
        part_of: shop
      services:
        api:
          # the api team's service
          app_schema: http-api
          x-future-field:   # not in today's model: moved as it is
            nested: [1, 2]
          config:
            LOG_LEVEL: info   # verbose in dev
        web: {app_schema: web-frontend}
  configplane:parity:
    value: {expected_differences: []}
"""
LEGACY_STACK = """\
config:
  aws:region: eu-west-1
  configplane:platform:
    environment: dev
  configplane:services:
    api:
      config:
        LOG_LEVEL: debug
    web: null
  configplane:other: 1
"""


def write_legacy(root: Path) -> Path:
    root.mkdir()
    (root / "Pulumi.yaml").write_text(LEGACY_PROJECT)
    (root / "Pulumi.dev.yaml").write_text(LEGACY_STACK)
    return root


def test_subtrees_move_verbatim_whatever_fields_they_hold(tmp_path):
    project = write_legacy(tmp_path / "p")
    assert migrate(project, "--write")[0] == 0
    assert (project / "services/api/service.yaml").read_text() == (
        "# the api team's service\napp_schema: http-api\nx-future-field:   # not in today's "
        "model: moved as it is\n  nested: [1, 2]\nconfig:\n  LOG_LEVEL: info   # verbose in dev\n")
    assert (project / "services/web/service.yaml").read_text() == "app_schema: web-frontend\n"
    assert (project / "services/api/dev.yaml").read_text() == "config:\n  LOG_LEVEL: debug\n"
    assert (project / "services/web/dev.yaml").read_text() == "null\n"  # not in dev, as before
    assert (project / "Pulumi.yaml").read_text() == (
        "name: configplane\nconfig:\n  configplane:defaults:\n    value:\n      platform:\n"
        "        part_of: shop\n  configplane:parity:\n    value: {expected_differences: []}\n")
    assert (project / "Pulumi.dev.yaml").read_text() == (
        "config:\n  aws:region: eu-west-1\n  configplane:platform:\n    environment: dev\n"
        "  configplane:other: 1\n")


def test_output_is_deterministic(tmp_path):
    first, second = write_legacy(tmp_path / "a"), write_legacy(tmp_path / "b")
    assert migrate(first, "--write") == migrate(second, "--write")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)


def test_existing_catalog_files_are_not_overwritten_without_asking(tmp_path):
    project = write_legacy(tmp_path / "p")
    (project / "services/api").mkdir(parents=True)
    (project / "services/api/service.yaml").write_text("app_schema: worker\n")
    code, output = migrate(project, "--write")
    assert (code, output) == (1, (
        "error: these catalog files exist already and differ from what the config holds: "
        "services/api/service.yaml. Fix: merge them by hand, or pass --overwrite to replace "
        "them with the config's definitions.\n"))
    assert "configplane:services" in (project / "Pulumi.dev.yaml").read_text()  # untouched
    assert migrate(project, "--write", "--overwrite")[0] == 0
    assert "http-api" in (project / "services/api/service.yaml").read_text()


def test_stack_level_defaults_with_services_are_refused(tmp_path):
    project = write_legacy(tmp_path / "p")
    path = project / "Pulumi.dev.yaml"
    path.write_text(path.read_text() + "  configplane:defaults:\n    services: {}\n")
    code, output = migrate(project, "--write")
    assert code == 1
    assert output.startswith("error: Pulumi.dev.yaml: sets `configplane:defaults` with services")
    assert json.dumps(output).count("Traceback") == 0
    shutil.rmtree(project)


LEGACY_SHAPES = ("- a\n", "42\n", "config: [1]\n", "config: 7\n",
                 "config:\n  configplane:services: {1: {a: 1}, api: {}}\n",
                 "config:\n  configplane:services: {Bad_Name: {}}\n",
                 "config:\n  configplane:defaults: {value: {services: {2: {}, api: {}}}}\n")


@pytest.mark.parametrize("text", LEGACY_SHAPES)
@pytest.mark.parametrize("file", ["Pulumi.yaml", "Pulumi.dev.yaml"])
def test_a_project_file_of_any_shape_is_a_clean_error(tmp_path, file, text):
    """Whatever shape the Pulumi files have, migrate migrates or refuses with one message
    naming the file, and writes nothing when it refuses."""
    project = write_legacy(tmp_path / "p")
    (project / file).write_text(text)
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    code, output = migrate(project, "--write")
    assert code in (0, 1) and "internal error" not in output and "Traceback" not in output, output
    if code == 1:
        assert output.startswith("error: Pulumi.") and file in output, output
        assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == before
