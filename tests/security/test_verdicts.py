"""Every error class `validate` decides, and the same verdict from `plan` and from the program
itself (its RunError path, as `pulumi preview` would run it), each naming the file and key path
that hold the problem, and no value."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pulumi
import pytest

from configplane.inputs import Selection, read_stack_files
from configplane.offline import plan_config, run_program
from tests.catalog_compat import catalog_file, edit_project, edit_stack
from tests.projects import copy_project
from tests.security.conftest import assert_clean, cli

SECRET = "Zx9-canary-4f1e2d3c-value"


def _services(doc):
    return doc["config"]["configplane:services"]


def _platform(doc):
    return doc["config"]["configplane:platform"]


def _defaults(doc):
    return doc["config"]["configplane:defaults"]["value"]


def _rotated_twin(doc):
    _services(doc)["api-database"] = {"app_schema": "worker", "secrets": {"PASSWORD": {
        "source": "generated", "store": "aws", "rotation": {"strategy": "random"}}}}
    _services(doc)["api"]["secrets"]["DATABASE_PASSWORD"]["rotation"] = {"strategy": "random"}
    del _services(doc)["api"]["secrets"]["DATABASE_PASSWORD"]["database"]


# name -> (edit of Pulumi.dev.yaml, edit of Pulumi.yaml, expected (file, path), program sees it).
# The edits are written against the layout before the catalog (services under
# `configplane:services` / `configplane:defaults.value.services`); tests.catalog_compat applies
# them to services/<svc>/, and `_expected` maps the file to the catalog file holding the value.
CASES = {
    "secure-plaintext": (lambda d: d["config"].update(
        {"configplane:apiDbPassword": {"secure": SECRET}}), None,
        ("Pulumi.dev.yaml", "config.configplane:apiDbPassword"), False),
    "secure-number": (lambda d: d["config"].update(
        {"configplane:apiDbPassword": {"secure": 123456}}), None,
        ("Pulumi.dev.yaml", "config.configplane:apiDbPassword"), False),
    "secure-empty": (lambda d: d["config"].update(
        {"configplane:apiDbPassword": {"secure": None}}), None,
        ("Pulumi.dev.yaml", "config.configplane:apiDbPassword"), False),
    "declared-secret-with-default": (None, lambda d: d["config"][
        "configplane:apiDbPassword"].update({"default": SECRET}),
        ("Pulumi.yaml", "config.configplane:apiDbPassword"), False),
    "provider-credential": (lambda d: d["config"].update({"vault:token": SECRET}), None,
                            ("Pulumi.dev.yaml", "config.vault:token"), True),
    "aws-secret-key": (lambda d: d["config"].update({"aws:secretKey": SECRET}), None,
                       ("Pulumi.dev.yaml", "config.aws:secretKey"), True),
    "unknown-configplane-key": (lambda d: d["config"].update(
        {"configplane:service": {"api": {}}}), None,
        ("Pulumi.dev.yaml", "config.configplane:service"), True),
    "credential-in-config": (lambda d: _services(d)["api"]["config"].update(
        {"DATABASE_URL": f"postgres://api:{SECRET}@db.internal/shop"}), None,
        ("Pulumi.dev.yaml", "services.api.config.DATABASE_URL"), True),
    "token-in-description": (lambda d: _services(d)["api"]["secrets"].update(
        {"SESSION_SIGNING_KEY": {"description": "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2}}), None,
        ("Pulumi.dev.yaml", "services.api.secrets.SESSION_SIGNING_KEY.description"), True),
    "vault-address-userinfo": (lambda d: _platform(d)["vault"].update(
        {"address": f"https://admin:{SECRET}@vault.dev.shop.internal:8200"}), None,
        ("Pulumi.dev.yaml", "platform.vault.address"), True),
    # the layout before the catalog, still read: a service (not in services/, which would be
    # "defined in both places") in project defaults that the stack file sets
    "credential-in-project-defaults-set-by-stack": (lambda d: d["config"].update(
        {"configplane:defaults": {"services": {"billing": {"config": {
            "DATABASE_URL": f"postgres://u:{SECRET}@h/db"}}}}}), None,
        ("Pulumi.dev.yaml", "services.billing.config.DATABASE_URL"), False),
    "secret-names-collide-once-normalised": (lambda d: _services(d)["api"]["secrets"].update(
        {"session-signing-key": {"source": "generated", "store": "vault"}}), None,
        ("Pulumi.dev.yaml", "services.api.secrets.session-signing-key"), True),
    "shared-namespace": (lambda d: _services(d)["web"].update({"namespace": "api-dev"}), None,
                         ("Pulumi.dev.yaml", "services.web.namespace"), True),
    "trailing-newline-in-a-name": (lambda d: _services(d).update(
        {"web\n": _services(d).pop("web")}), None,
        ("Pulumi.dev.yaml", "services.web\\n"), True),
    "trailing-newline-in-a-pattern": (lambda d: _platform(d)["external_secrets"].update(
        {"refresh_interval": "15m\n"}), None,
        ("Pulumi.dev.yaml", "platform.external_secrets.refresh_interval"), True),
    "flags-configmap-too-large": (lambda d: _services(d)["web"].update({"flags": {"big": {
        "state": "ENABLED", "variants": {"on": "x" * (1024 * 1024), "off": "y"},
        "defaultVariant": "off"}}}), None, ("Pulumi.dev.yaml", "services.web.flags.big"), True),
    "rotation-names-collide": (_rotated_twin, None,
                               ("Pulumi.dev.yaml",
                                "services.api-database.secrets.PASSWORD.rotation"),
                               True),
    "rotation-schedule-syntax": (lambda d: _platform(d)["rotation"].update(
        {"schedule_expression": "every 30 days"}), None,
        ("Pulumi.dev.yaml", "platform.rotation.schedule_expression"), True),
    "subnets-without-security-groups": (lambda d: _platform(d)["rotation"].update(
        {"security_group_ids": []}), None,
        ("Pulumi.dev.yaml", "platform.rotation.security_group_ids"), True),
    "stack-says-another-environment": (lambda d: _platform(d).update({"environment": "prod"}),
                                       None, ("Pulumi.dev.yaml", "platform.environment"), True),
    "yaml-1.1-boolean-key": (lambda d: _services(d)["worker"]["tenants"].update(
        {False: {"config": {"RATE_LIMIT_RPS": 3}}}), None,
        ("Pulumi.dev.yaml", "services.worker.tenants"), False),
    "secret-name-is-a-config-key": (lambda d: _services(d)["worker"].setdefault(
        "secrets", {}).update({"CONCURRENCY": {"source": "generated", "store": "vault"}}), None,
        # reported where the fix goes: the config key the secret would shadow
        ("Pulumi.yaml", "services.worker.config.CONCURRENCY"), True),
}


def _mutated(tmp_path: Path, case: str) -> Path:
    stack_edit, project_edit, _, _ = CASES[case]
    project = copy_project(tmp_path / "project")
    if stack_edit:
        edit_stack(project, "dev", lambda config: stack_edit({"config": config}))
    if project_edit:
        edit_project(project, lambda config: project_edit({"config": config}))
    return project


# Cases whose value stays in Pulumi config (the legacy layout).
IN_PULUMI_CONFIG = {"credential-in-project-defaults-set-by-stack"}


def _expected(case: str) -> tuple[str, str]:
    file, path = CASES[case][2]
    return (file, path) if case in IN_PULUMI_CONFIG else (catalog_file(file, path, "dev"), path)


def _program_verdict(project: Path) -> set[tuple[str, str]]:
    """Run the program as the engine would (its config from the files, secure values as
    placeholders) and read the problems from its RunError."""
    inputs = read_stack_files(project, "dev")
    config, secret_keys = plan_config(inputs)
    config.update(Selection.of(None, one_stack=True).as_config())  # the whole environment

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            return f"{args.name}-id", dict(args.inputs)

        def call(self, args):
            return {}

    with pytest.raises(pulumi.RunError) as e:
        run_program(project, inputs.project, "dev", None, config, secret_keys, Mocks())
    lines = str(e.value).splitlines()[1:]
    found = set()
    for line in lines:
        file, rest = line.split(": ", 1)  # `file:line: path: message` (line when known)
        found.add((re.sub(r":\d+$", "", file), rest.split(": ", 1)[0]))
    return found


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_plan_and_the_program_agree(tmp_path, case):
    project = _mutated(tmp_path, case)
    expected, program_sees = _expected(case), CASES[case][3]
    validate = cli("validate", "--stack", "dev", "--project-dir", str(project), "--format", "json")
    plan = cli("plan", "--stack", "dev", "--project-dir", str(project), "--format", "json",
               "--no-policy")
    for run in (validate, plan):
        assert_clean(run, [SECRET])
        assert run.code == 1, run.text[-1500:]
    verdict = {(e["file"], e["path"]) for e in json.loads(validate.stdout)["errors"]}
    assert expected in verdict, verdict
    assert json.loads(plan.stdout)["errors"] == json.loads(validate.stdout)["errors"]
    for error in json.loads(validate.stdout)["errors"]:
        assert "Fix:" in error["message"] and error["file"].endswith((".yaml", ".json"))
    if program_sees:
        program = _program_verdict(project)
        assert expected in program, program
        assert program <= verdict | {(f, p) for f, p in program if f == "Pulumi.yaml"}


def test_the_sample_stacks_pass_every_check():
    for stack in ("dev", "staging", "prod"):
        run = cli("validate", "--stack", stack, "--format", "json")
        assert run.code == 0 and json.loads(run.stdout)["errors"] == [], run.text


def test_plan_fails_on_a_urn_registered_twice(tmp_path):
    # validate refuses what would register a URN twice (secret names colliding once normalised,
    # above); the plan's own check is the second line, for a program that registers one twice.
    from configplane.offline import run_plan

    project = copy_project(tmp_path / "project")
    with (project / "__main__.py").open("a") as program:
        program.write("\nimport pulumi_random\n"
                      "for _ in range(2):\n"
                      "    pulumi_random.RandomPassword('registered-twice', length=16)\n")
    plan = run_plan(project, "dev", one_stack=True)
    dupes = [v for v in plan.violations if v["policy"] == "configplane-unique-urns"]
    assert dupes and all(v["level"] == "mandatory" for v in dupes)
    assert {v["urn"].rsplit("::", 1)[-1] for v in dupes} == {"registered-twice"}
