"""The service catalog: layers from files, one reader for `pulumi up` and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pulumi
import pytest
import yaml
from click.testing import CliRunner

from configplane.cli.commands.plan import command as plan_command
from configplane.cli.commands.validate import command as validate
from configplane.inputs import (
    SELECTION_KEY,
    Selection,
    read_inputs,
    read_stack_files,
    resolve_inputs,
    runtime_values,
)
from configplane.offline import PlanMocks, plan_config, run_plan, run_program
from configplane.validation import load_or_issues, load_stack
from tests.catalog_compat import edit_stack
from tests.conftest import REPO, STACKS


def write(project: Path, rel: str, document) -> None:
    path = project / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))


def errors(project: Path, stack: str, *extra: str) -> tuple[int, list[dict]]:
    result = CliRunner().invoke(validate, ["--stack", stack, "--project-dir", str(project),
                                           "--format", "json", *extra])
    return result.exit_code, json.loads(result.output)["errors"]


def test_sample_services_come_from_the_catalog_not_from_config():
    for stack in STACKS:
        config = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert not {"configplane:services", "configplane:defaults"} & set(config)
    defaults = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"]["configplane:defaults"]
    assert set(defaults["value"]) == {"platform"}
    inputs = read_stack_files(REPO, "prod")
    assert sorted(inputs.service_layers) == ["api", "web", "worker"]
    assert [(layer.name, layer.file) for layer in inputs.service_layers["api"]] == [
        ("service", "services/api/service.yaml"), ("environment", "services/api/prod.yaml")]
    assert inputs.notes == ()


def test_fleet_defaults_then_service_then_stack(project):
    write(project, "services/defaults.yaml", "owners: ['@shop/platform']\nservice:\n"
          "  secrets_version: 3\n  config:\n    LOG_LEVEL: error\n")
    (project / "services/web/dev.yaml").write_text(
        "config:\n  LOG_LEVEL: null\n  API_BASE_URL: https://api.dev.shop.example.com\n"
        "  CDN_URL: https://cdn.dev.shop.example.com\n")
    resolved = resolve_inputs(read_stack_files(project, "dev"))
    api, web = resolved.value["services"]["api"], resolved.value["services"]["web"]
    assert (api["secrets_version"], api["config"]["LOG_LEVEL"]) == (3, "debug")  # dev overlay
    assert "LOG_LEVEL" not in web["config"]  # null deletes what the layers below set
    origin = resolved.origins[("services", "api", "secrets_version")]
    assert (origin.layer, origin.where) == ("fleet", "services/defaults.yaml:3")
    origin = resolved.origins[("services", "api", "config", "LOG_LEVEL")]
    assert (origin.layer, origin.where) == ("environment", "services/api/dev.yaml:2")


def test_a_null_overlay_takes_the_service_out_of_that_stack(project):
    (project / "services/web/staging.yaml").write_text("# web is not in staging\nnull\n")
    model, issues = load_or_issues(project, "staging")
    assert issues == [] and sorted(model.services) == ["api", "worker"]
    assert sorted(load_or_issues(project, "prod")[0].services) == ["api", "web", "worker"]


def test_a_service_with_only_an_overlay_is_in_that_stack_only(project):
    write(project, "services/billing/dev.yaml", {"app_schema": "worker", "config": {
        "LOG_LEVEL": "info", "CONCURRENCY": 2, "RATE_LIMIT_RPS": 5,
        "PAYMENTS_API_BASE_URL": "https://x.example.com", "VISIBILITY_TIMEOUT_SECONDS": 30,
        "QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/111111111111/billing"}})
    assert "billing" in load_or_issues(project, "dev")[0].services
    assert "billing" not in load_or_issues(project, "prod")[0].services


@pytest.mark.parametrize(("rel", "path", "message"), [
    ("services/api/prd.yaml", "services.api", "overlay for stack `prd`, which has no "
                                              "Pulumi.prd.yaml. Did you mean prod.yaml?"),
    ("services/api.yaml", "", "a service is a directory"),
])
def test_misplaced_catalog_files_are_errors(project, rel, path, message):
    write(project, rel, {"config": {}})
    code, found = errors(project, "dev")
    assert code == 1
    assert [(e["path"], e["file"]) for e in found] == [(path, rel)]
    assert message in found[0]["message"]


def test_a_service_in_both_config_and_catalog_is_refused(project):
    path = project / "Pulumi.dev.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["configplane:services"] = {"api": {"config": {"LOG_LEVEL": "info"}}}
    path.write_text(yaml.safe_dump(document))
    code, found = errors(project, "dev")
    assert code == 1
    assert [(e["path"], e["file"]) for e in found] == [("services.api", "services/api/")]
    assert "defined both in services/ and in Pulumi config" in found[0]["message"]


def test_the_program_reads_the_same_inputs_as_the_cli():
    """Under `pulumi up` the config comes from the engine: the same layers, values and
    problems as the CLI reading the stack file."""
    for stack in STACKS:
        files = read_stack_files(REPO, stack)
        config, secret_keys = plan_config(files)
        pulumi.runtime.set_all_config(config, secret_keys)
        engine = read_inputs(REPO, stack, runtime_values())
        assert engine.service_layers == files.service_layers
        assert engine.platform_layers == files.platform_layers
        assert engine.read_problems == files.read_problems
        assert {k for k, v in engine.values.items() if v.secure} == set(secret_keys)
        assert {k: v.value for k, v in engine.values.items() if not v.secure} == {
            k: v.value for k, v in files.values.items() if not v.secure} | {
            k: v for k, v in files.project_values.items() if k not in files.values}
        assert load_stack(engine).services.keys() == load_stack(files).services.keys()


def test_duplicate_keys_stop_the_program_as_they_fail_validate(project):
    model = load_stack(read_stack_files(project, "dev"))
    config, secret_keys = plan_config(read_stack_files(project, "dev"))
    path = project / "services/api/dev.yaml"
    line = len(path.read_text().splitlines()) + 1  # the second `config:`, appended
    path.write_text(path.read_text() + "config:\n  PORT: 1\n")
    code, found = errors(project, "dev")
    assert (code, [(e["path"], e["file"], e["line"]) for e in found]) == (
        1, [("services.api.config", "services/api/dev.yaml", line)])
    # The real __main__.py, as `pulumi up` runs it: it stops before declaring anything.
    with pytest.raises(pulumi.RunError, match=rf"services/api/dev.yaml:{line}: services.api."
                                              r"config: key `services.api.config` appears twice"):
        run_program(project, "configplane", "dev", model, config, secret_keys, PlanMocks(model))


def _restricted(found: list[dict], service: str) -> list[dict]:
    return [e for e in found if not e["path"].startswith("services.")
            or e["path"] == f"services.{service}" or e["path"].startswith(f"services.{service}.")]


SERVICE_CASES = {
    "schema-type": ("api", lambda c: c["configplane:services"]["api"]["config"].update(PORT="x")),
    "tenant-forbidden-key": ("worker", lambda c: c["configplane:services"]["worker"]["tenants"]
                             ["acme"]["config"].update(LOG_LEVEL="debug")),
    "bad-flag": ("web", lambda c: c["configplane:services"]["web"].update(
        flags={"beta": {"state": "ON", "variants": {"a": 1}, "defaultVariant": "a"}})),
    # (a service's secure value lives in its shard's stack file: docs/fleet.md)
    "missing-secure-value": ("worker", lambda c: c["configplane:services"]["worker"].setdefault(
        "secrets", {}).update(PAYMENTS_API_KEY={"config_key": "workerUnsetKey"})),
    "bad-name": ("Billing_API", lambda c: c["configplane:services"].update(
        Billing_API={"app_schema": "worker"})),
    "plaintext-declared-secret": ("api", lambda c: c.update(
        {"configplane:shopVaultDbPassword": "canary-Svc-Jq3Lx8"})),
}


@pytest.mark.parametrize("case", sorted(SERVICE_CASES))
def test_validate_service_gives_the_whole_stack_verdict_for_that_service(project, case):
    broken, change = SERVICE_CASES[case]
    edit_stack(project, "dev", change)
    whole_code, whole = errors(project, "dev")
    assert whole_code == 1
    for service in sorted({*(d.name for d in (project / "services").iterdir() if d.is_dir())}):
        code, found = errors(project, "dev", "--service", service)
        assert found == _restricted(whole, service), service
        assert code == (1 if found else 0)
    assert _restricted(whole, broken)  # the broken service's own verdict is not empty


def test_plan_service_gives_the_same_verdict_and_the_same_resources(project):
    whole = run_plan(REPO, "prod", one_stack=True, policy=False)
    one = run_plan(REPO, "prod", one_stack=True, policy=False, services=["worker"])
    mine = {r.urn: r.inputs for r in whole.resources if r.name.startswith("worker-")}
    assert {r.urn: r.inputs for r in one.resources if r.name.startswith("worker-")} == mine
    assert not [r for r in one.resources if r.name.startswith(("api-", "web-"))]
    edit_stack(project, "dev", SERVICE_CASES["schema-type"][1])
    for service, expected in (("api", 1), ("web", 0)):
        result = CliRunner().invoke(plan_command, ["--stack", "dev", "--service", service,
                                                   "--no-policy", "--project-dir", str(project),
                                                   "--format", "json"])
        assert result.exit_code == expected, result.output


def test_the_program_gets_its_selection_through_config_and_nothing_leaks():
    """No global carries the selection: the plan hands it to the program in its config, a
    run without that key declares every service, and runs in one process do not interfere."""
    one = run_plan(REPO, "dev", one_stack=True, policy=False, services=["api"])
    whole = run_plan(REPO, "dev", one_stack=True, policy=False)
    services = {r.name.split("-")[0] for r in whole.resources if r.type == "kubernetes:core/v1:Namespace"}
    assert services == {"api", "web", "worker"}
    assert {r.name.split("-")[0] for r in one.resources
            if r.type == "kubernetes:core/v1:Namespace"} == {"api"}
    assert sorted(read_stack_files(REPO, "dev").service_layers) == ["api", "web", "worker"]

    inputs = read_stack_files(REPO, "dev")
    model = load_stack(inputs)
    for chosen in (["web"], ["api", "worker"]):
        config, secret_keys = plan_config(inputs)
        config.update(Selection.of(chosen, one_stack=True).as_config())
        plan = run_program(REPO, inputs.project, "dev", model, config, secret_keys)
        declared = {r.name.split("-")[0] for r in plan.resources
                    if r.type == "kubernetes:core/v1:Namespace"}
        assert declared == set(chosen)


@pytest.mark.parametrize("file", ["Pulumi.yaml", "Pulumi.dev.yaml"])
def test_a_file_may_not_set_the_runs_own_selection(project, file):
    """`pulumi up` reads the whole catalog: a file setting the plan's key would drop services."""
    path = project / file
    document = yaml.safe_load(path.read_text())
    document.setdefault("config", {})[SELECTION_KEY] = json.dumps({"services": ["api"]})
    path.write_text(yaml.safe_dump(document))
    inputs = read_stack_files(project, "dev")
    assert SELECTION_KEY not in inputs.values
    assert [p[:2] for p in inputs.read_problems] == [(f"config.{SELECTION_KEY}", file)]
    code, found = errors(project, "dev")
    assert code == 1 and [e["path"] for e in found] == [f"config.{SELECTION_KEY}"]


def test_the_catalog_is_copied_with_the_project(tmp_path):
    target = tmp_path / "p"
    shutil.copytree(REPO / "services", target / "services")
    assert sorted(p.name for p in (target / "services").iterdir()) == [
        "api", "defaults.yaml", "web", "worker"]


def test_platform_defaults_set_in_a_stack_file_are_attributed_to_it(project):
    path = project / "Pulumi.dev.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["configplane:defaults"] = {"platform": {"part_of": "Shop!"}}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    code, found = errors(project, "dev")
    assert code == 1
    assert [(e["path"], e["file"]) for e in found] == [("platform.part_of", "Pulumi.dev.yaml")]


# --- hostile and careless catalog trees: every file read stays where it belongs ----------

@pytest.mark.parametrize(("link", "target", "path", "file", "message"), [
    ("services/evil", "api", "services.evil", "services/evil", "a symlink"),
    ("services/evil", "../..", "services.evil", "services/evil", "a symlink"),
    ("services/evil", "/etc", "services.evil", "services/evil", "a symlink"),
    ("services/web/dev.yaml", "../api/dev.yaml", "services.web", "services/web/dev.yaml",
     "a symlink to outside its service's directory (services/web/)"),
    ("services/web/dev.yaml", "../../../outside.yaml", "services.web", "services/web/dev.yaml",
     "a symlink to outside the project"),
    ("services/web/dev.yaml", "/nonexistent/x.yaml", "services.web", "services/web/dev.yaml",
     "a symlink to outside the project"),
    ("services/defaults.yaml", "api/service.yaml", "", "services/defaults.yaml",
     "a symlink to outside the platform's files"),
])
def test_a_symlink_out_of_its_owners_directory_is_refused_naming_it(project, link, target, path,
                                                                    file, message):
    (project.parent / "outside.yaml").write_text("config: {STOLEN: 1}\n")
    (project / link).unlink(missing_ok=True)
    (project / link).symlink_to(target)
    code, found = errors(project, "dev")
    assert code == 1
    mine = [e for e in found if e["file"] == file]
    assert [e["path"] for e in mine] == [path] and message in mine[0]["message"], found
    # the program reads the same catalog: nothing is declared from a linked directory
    _, issues = load_or_issues(project, "dev")
    assert any(i.file == file for i in issues)


def test_a_symlink_inside_its_own_directory_is_read(project):
    (project / "services/web/staging.yaml").unlink()
    (project / "services/web/staging.yaml").symlink_to("dev.yaml")
    inputs = read_stack_files(project, "staging")
    assert inputs.read_problems == ()
    overlay = inputs.service_layers["web"][-1]
    assert overlay.file == "services/web/staging.yaml"
    assert overlay.document == {"web": yaml.safe_load((project / "services/web/dev.yaml").read_text())}


@pytest.mark.parametrize(("rel", "message"), [
    ("services/api/dev.yml", "did you mean services/api/dev.yaml?"),
    ("services/api/service.yml", "did you mean services/api/service.yaml?"),
    ("services/api/Service.yaml", "did you mean services/api/service.yaml?"),
    ("services/api/dev.yaml.orig", "did you mean services/api/dev.yaml?"),
    ("services/api/prod.YAML", "did you mean services/api/prod.yaml?"),
    ("services/api/servce.yaml", "Did you mean service.yaml?"),
    ("services/defaults.yml", "did you mean services/defaults.yaml?"),
])
def test_near_misses_get_a_did_you_mean(project, rel, message):
    write(project, rel, {"config": {"LOG_LEVEL": "error"}})
    code, found = errors(project, "dev")
    assert code == 1
    assert [e["file"] for e in found] == [rel] and message in found[0]["message"], found


def test_files_configplane_does_not_read_are_left_alone(project):
    write(project, "services/api/README.md", "# the api service\n")
    write(project, "services/api/notes/dev.yaml", "anything: here\n")
    assert errors(project, "dev") == (0, [])


@pytest.mark.parametrize("name", ["web\n", "a\x1b[31m", "x\u202ey"])
def test_a_directory_named_with_a_control_character_is_refused_on_one_line(project, name):
    (project / "services" / name).mkdir()
    write(project, f"services/{name}/service.yaml", {"app_schema": "worker"})
    code, found = errors(project, "dev")
    assert code == 1
    assert [e["message"].startswith("service name `") for e in found] == [True]
    assert all(c.isprintable() for e in found for c in e["file"] + e["message"])


def test_the_size_of_a_catalog_file_is_checked_before_it_is_read(project):
    """A 3 GiB sparse service.yaml: refused from its size, in well under a second of CPU."""
    import os
    import time

    os.truncate(project / "services/api/service.yaml", 3 * 1024**3)
    started = time.process_time()
    code, found = errors(project, "dev")
    assert time.process_time() - started < 5
    assert code == 1
    assert [(e["file"], "3221225472 bytes" in e["message"]) for e in found] == [
        ("services/api/service.yaml", True)]


def test_a_fifo_in_the_catalog_is_refused_without_blocking(project):
    import os

    (project / "services/api/dev.yaml").unlink()
    os.mkfifo(project / "services/api/dev.yaml")
    code, found = errors(project, "dev")
    assert code == 1 and "not a regular file" in found[0]["message"]


def test_services_as_a_file_is_not_an_empty_fleet(project):
    shutil.rmtree(project / "services")
    (project / "services").write_text("")
    code, found = errors(project, "dev")
    assert code == 1 and found[0]["file"] == "services" and "not a directory" in found[0]["message"]


def test_reading_once_reads_each_stacks_catalog_once_within_a_read_only_command(tmp_path):
    """`plan` and `validate` read the catalog once per stack and selection (reading_once):
    a file changed under the command is not seen again; outside it every read is fresh. The
    problems found while reading are reported again on each read, in the same order."""
    from configplane.inputs import reading_once

    project = tmp_path / "project"
    shutil.copytree(REPO, project, ignore=shutil.ignore_patterns("venv", ".git", "tests"))
    write(project, "services/web/staging.yml", "config: {}\n")  # a near miss: one problem
    base = project / "services" / "web" / "service.yaml"

    def log_level() -> str:
        inputs = read_inputs(project, "dev")
        return [layer.document["web"]["config"]["LOG_LEVEL"] for layer in inputs.service_layers["web"]
                if layer.file == "services/web/service.yaml"][0]

    with reading_once():
        first = read_inputs(project, "dev")
        base.write_text(base.read_text().replace("LOG_LEVEL: info", "LOG_LEVEL: debug"))
        again = read_inputs(project, "dev")
        assert log_level() == "info"
        assert again.read_problems == first.read_problems and first.read_problems
        # each read gets its own lists: one reader's change is not another's
        assert again.service_layers["web"] is not first.service_layers["web"]
        assert read_inputs(project, "dev", services=["web"]).service_layers.keys() == {"web"}
    assert log_level() == "debug"


def test_plan_and_validate_of_a_shard_judge_the_same_services(tmp_path):
    """`plan --shard` validates what `validate --shard` validates: its shard's services (and
    the platform), not the environment's other shards; both agree on every shard."""
    project = tmp_path / "project"
    shutil.copytree(REPO, project, ignore=shutil.ignore_patterns("venv", ".git", "tests"))
    base = project / "services" / "web" / "service.yaml"  # the web team's shard
    base.write_text(base.read_text().replace("PORT: 3000", "PORT: not-a-port"))
    runner = CliRunner()
    for shard, code in (("payments-team", 0), ("web-team", 1)):
        args = ["--stack", "prod", "--shard", shard, "--project-dir", str(project),
                "--format", "json"]
        checked = runner.invoke(validate, args)
        planned = runner.invoke(plan_command, [*args, "--no-policy", "--quiet"])
        assert (checked.exit_code, planned.exit_code) == (code, code), planned.output[-2000:]
        if code:
            assert json.loads(planned.output)["errors"] == json.loads(checked.output)["errors"]
            assert "services/web/service.yaml" in {e["file"] for e in
                                                   json.loads(checked.output)["errors"]}
