"""Bad configuration: every class of error gives exit 1 and a message with path, file and fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configplane.cli.commands.plan import command as plan_command
from configplane.cli.commands.validate import command as validate
from tests.catalog_compat import edit_stack
from tests.conftest import REPO, STACKS
from tests.projects import copy_project

CANARY = "canary-Zq8vX3pL9wR2tY6u"


def run_validate(project: Path, stack: str = "dev") -> tuple[int, dict]:
    result = CliRunner().invoke(
        validate, ["--stack", stack, "--project-dir", str(project), "--format", "json"]
    )
    return result.exit_code, json.loads(result.output)


@pytest.mark.parametrize("stack", STACKS)
def test_sample_stacks_are_valid(stack):
    assert run_validate(REPO, stack) == (0, {"stack": stack, "valid": True, "errors": []})


def services(config: dict) -> dict:
    return config["configplane:services"]


CASES = {
    "schema-type": (
        lambda c: services(c)["api"]["config"].update(PORT="eighty"),
        "services.api.config.PORT", "services/api/dev.yaml", "wrong type",
    ),
    "unknown-app-key": (
        lambda c: services(c)["web"]["config"].update(COLOUR="blue"),
        "services.web.config.COLOUR", "services/web/dev.yaml", "unknown key(s) COLOUR",
    ),
    "unknown-stack-key": (
        lambda c: services(c)["api"].update(replicas=3),
        "services.api.replicas", "services/api/dev.yaml", "unknown key(s) replicas",
    ),
    "bad-kubernetes-name": (
        lambda c: services(c).update(Billing_API={"app_schema": "worker"}),
        "services.Billing_API", "services/Billing_API/dev.yaml", "RFC 1123",
    ),
    "bad-namespace": (
        lambda c: services(c)["api"].update(namespace="x" * 64),
        "services.api.namespace", "services/api/dev.yaml", "RFC 1123",
    ),
    "configmap-too-large": (
        lambda c: services(c)["api"]["config"].update(CORS_ALLOWED_ORIGINS="https://" + "h" * (1024 * 1024)),
        "services.api.config.CORS_ALLOWED_ORIGINS", "services/api/dev.yaml", "Kubernetes allows 1048576",
    ),
    "config-and-secret-collide": (
        lambda c: services(c)["api"]["config"].update(DATABASE_HOST="db.internal"),
        "services.api.config.DATABASE_HOST", "services/api/dev.yaml",
        "delivered by secret `DATABASE_PASSWORD` from its `database` (DATABASE_USER, "
        "DATABASE_PASSWORD, DATABASE_HOST, DATABASE_PORT, DATABASE_NAME, DATABASE_URL)",
    ),
    "config-and-plain-secret-collide": (
        lambda c: services(c)["worker"]["tenants"]["acme"]["config"].update(PAYMENTS_API_KEY="x"),
        "services.worker.tenants.acme.config.PAYMENTS_API_KEY", "services/worker/dev.yaml",
        "delivered by secret `PAYMENTS_API_KEY` as itself",
    ),
    "secret-only-key-in-config": (
        lambda c: (services(c)["api"]["secrets"].pop("DATABASE_PASSWORD"),
                   services(c)["api"]["config"].update(DATABASE_USER="api")),
        "services.api.config.DATABASE_USER", "services/api/dev.yaml",
        "takes `DATABASE_USER` from a secret, never from config",
    ),
    "database-secret-misnamed": (
        lambda c: services(c)["web"].setdefault("secrets", {}).update(ANALYTICS_DB={
            "source": "generated", "store": "aws",
            "database": {"host": "db.internal", "dbname": "web", "username": "web"}}),
        "services.web.secrets.ANALYTICS_DB", "services/web/dev.yaml", "its name must be <P>_PASSWORD",
    ),
    "database-secret-in-vault": (
        lambda c: services(c)["web"].setdefault("secrets", {}).update(ANALYTICS_PASSWORD={
            "source": "generated", "store": "vault",
            "database": {"host": "db.internal", "dbname": "web", "username": "web"}}),
        "services.web.secrets.ANALYTICS_PASSWORD.database", "services/web/dev.yaml", "set store: aws",
    ),
    "database-keys-delivered-twice": (
        lambda c: services(c)["api"]["secrets"].update(DATABASE_URL={
            "source": "generated", "store": "vault"}),
        "services.api.secrets.DATABASE_URL", "services/api/dev.yaml",
        "delivers `DATABASE_URL`, which `DATABASE_PASSWORD` delivers already",
    ),
    "tenant-forbidden-key": (
        lambda c: services(c)["worker"]["tenants"]["acme"]["config"].update(LOG_LEVEL="debug"),
        "services.worker.tenants.acme.config.LOG_LEVEL", "services/worker/dev.yaml",
        "tenants may not override `LOG_LEVEL`",
    ),
    "tenant-breaks-schema": (
        lambda c: services(c)["worker"]["tenants"]["acme"]["config"].update(RATE_LIMIT_RPS=0),
        "services.worker.tenants.acme.config.RATE_LIMIT_RPS", "services/worker/dev.yaml", "out of range",
    ),
    "unknown-app-schema": (
        lambda c: services(c)["api"].update(app_schema="grpc-api"),
        "services.api.app_schema", "services/api/dev.yaml", "unknown app schema `grpc-api`",
    ),
    "bad-flag": (
        lambda c: services(c)["web"].update(flags={"beta": {"state": "ON", "variants": {"a": 1},
                                                            "defaultVariant": "a"}}),
        "services.web.flags.beta.state", "services/web/dev.yaml", "flagd",
    ),
    "flag-default-not-a-variant": (
        lambda c: services(c)["web"].update(flags={"beta": {"state": "ENABLED",
                                                            "variants": {"a": 1},
                                                            "defaultVariant": "b"}}),
        "services.web.flags.beta.defaultVariant", "services/web/dev.yaml", "one of the flag's variants",
    ),
    # (the services' secure values live in their shards' stack files: docs/fleet.md)
    "plaintext-declared-secret": (
        lambda c: c.update({"configplane:shopVaultDbPassword": CANARY}),
        "config.configplane:shopVaultDbPassword", "Pulumi.dev.yaml",
        "pulumi config set --secret configplane:shopVaultDbPassword",
    ),
    "missing-secure-value": (
        lambda c: c.pop("configplane:vaultTokenReviewerJwt"),
        "platform.vault.token_reviewer_jwt_config_key", "Pulumi.dev.yaml",
        "pulumi config set --secret configplane:vaultTokenReviewerJwt --stack dev",
    ),
    "undeclared-secure-key": (
        lambda c: services(c)["web"].setdefault("secrets", {}).update(
            CDN_TOKEN={"source": "secure", "store": "vault", "config_key": "cdnToken"}),
        "services.web.secrets.CDN_TOKEN.config_key", "Pulumi.yaml", "secret: true",
    ),
    "vault-ref-outside-own-path": (
        lambda c: services(c)["web"].setdefault("secrets", {}).update(
            STOLEN={"source": "reference", "store": "vault", "ref": "api/db#password"}),
        "services.web.secrets.STOLEN.ref", "services/web/dev.yaml", "reads only `web` and `web/...`",
    ),
    "rotation-without-database": (
        lambda c: services(c)["api"]["secrets"]["DATABASE_PASSWORD"].pop("database"),
        "services.api.secrets.DATABASE_PASSWORD.database", "services/api/dev.yaml", "needs `database`",
    ),
    "app-needs-its-database-secret": (
        lambda c: services(c)["api"]["secrets"]["DATABASE_PASSWORD"].pop("database"),
        "services.api.secrets", "services/api/service.yaml",
        "app schema http-api needs DATABASE_HOST, DATABASE_NAME, DATABASE_PORT, DATABASE_URL, "
        "DATABASE_USER from a secret",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_error_class_is_reported_with_path_file_and_fix(project, case):
    change, path, file, text = CASES[case]
    edit_stack(project, "dev", change)
    code, report = run_validate(project)
    assert code == 1
    assert report["valid"] is False
    matching = [e for e in report["errors"] if e["path"] == path]
    assert matching, report["errors"]
    assert matching[0]["file"] == file
    assert text in matching[0]["message"]
    assert "Fix:" in matching[0]["message"]
    assert CANARY not in json.dumps(report)


def test_all_errors_are_reported_at_once(project):
    def change(c):
        services(c)["api"]["config"]["PORT"] = "eighty"
        services(c)["web"]["config"]["COLOUR"] = "blue"
        services(c)["worker"]["tenants"]["acme"]["config"]["LOG_LEVEL"] = "debug"
    edit_stack(project, "dev", change)
    code, report = run_validate(project)
    assert code == 1
    assert {e["path"] for e in report["errors"]} >= {
        "services.api.config.PORT", "services.web.config.COLOUR",
        "services.worker.tenants.acme.config.LOG_LEVEL"}


def test_duplicate_yaml_key_is_an_error(project):
    path = project / "services" / "api" / "dev.yaml"
    path.write_text(path.read_text().replace(
        "  LOG_LEVEL: debug\n", "  LOG_LEVEL: debug\n  LOG_LEVEL: info\n", 1))
    code, report = run_validate(project)
    assert code == 1
    assert [(e["path"], e["file"], e["line"]) for e in report["errors"]] == [
        ("services.api.config.LOG_LEVEL", "services/api/dev.yaml", 3)]
    assert "appears twice" in report["errors"][0]["message"]


def test_error_names_the_service_file_when_the_base_value_is_wrong(project):
    path = project / "services" / "api" / "service.yaml"
    path.write_text(path.read_text().replace("PORT: 8080", "PORT: -1"))
    code, report = run_validate(project)
    assert code == 1
    assert {(e["path"], e["file"], e["line"]) for e in report["errors"]} == {
        ("services.api.config.PORT", "services/api/service.yaml", 5)}


@pytest.mark.parametrize("broken", ["missing", "not-yaml"])
def test_unreadable_stack_file_is_a_clean_error(project, broken):
    path = project / "Pulumi.dev.yaml"
    if broken == "missing":
        path.unlink()
    else:
        path.write_text("config: [unclosed\n")
    result = CliRunner().invoke(validate, ["--stack", "dev", "--project-dir", str(project)])
    assert result.exit_code == 1
    assert "Pulumi.dev.yaml" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("name", "data_key"), [("acme\n", "RATE_LIMIT_RPS"),
                                                ("acme", "RATE_LIMIT_RPS\n")])
def test_a_trailing_newline_is_not_a_name(project, name, data_key):
    """The contract's patterns are matched whole (fullmatch): `$` before a final newline is
    not the end of a tenant name or a ConfigMap key."""
    path = project / "services" / "worker" / "dev.yaml"
    path.write_text(path.read_text().replace(
        "  acme:\n    config:\n      RATE_LIMIT_RPS: 50\n",
        f"  {json.dumps(name)}:\n    config:\n      {json.dumps(data_key)}: 50\n"))
    code, report = run_validate(project)
    assert code == 1
    shown = name.replace("\n", "\\n")
    messages = {(e["path"], e["message"].split(". Fix:")[0]) for e in report["errors"]}
    if name != "acme":
        assert (f"services.worker.tenants.{shown}",
                f"tenant name `{shown}` is not an RFC 1123 label (lowercase letters, digits and "
                "'-', starting and ending alphanumeric, at most 63 characters)") in messages
    else:
        assert ("services.worker.tenants.acme.config.RATE_LIMIT_RPS\\n",
                "ConfigMap keys may contain only letters, digits, '-', '_' and '.'") in messages



# --- the CAs and trust settings given to Vault (configplane.model.trust) ------------------

def _vault(config):
    return config["configplane:platform"]["vault"]


def _shop(config):
    return config["configplane:platform"]["database"]["connections"]["shop"]


TRUST_CASES = {
    "outside the cluster without a CA": (
        lambda c: _vault(c).pop("kubernetes_ca_cert"),
        "platform.vault.kubernetes_ca_cert", "a Vault outside the cluster needs"),
    "outside the cluster without a reviewer token": (
        lambda c: _vault(c).pop("token_reviewer_jwt_config_key"),
        "platform.vault.token_reviewer_jwt_config_key", "a Vault outside the cluster needs"),
    "outside the cluster with the in-cluster host": (
        lambda c: _vault(c).update(kubernetes_host="https://kubernetes.default.svc"),
        "platform.vault.kubernetes_host", "resolves only inside the cluster"),
    "a reviewer token key that is not a secure value": (
        lambda c: _vault(c).update(token_reviewer_jwt_config_key="nope"),
        "platform.vault.token_reviewer_jwt_config_key", "must be declared"),
    "a CA that is not a certificate": (
        lambda c: _vault(c).update(kubernetes_ca_cert="not a pem"),
        "platform.vault.kubernetes_ca_cert", "no PEM certificate"),
    "verify-full without the database CA": (
        lambda c: [_shop(c).pop(k) for k in ("ssl_root_cert", "ssl_root_cert_file")],
        "platform.database.connections.shop.ssl_root_cert", "RDS's CAs are in no public"),
    "a CA file without the CA's content": (
        lambda c: _shop(c).pop("ssl_root_cert"),
        "platform.database.connections.shop.ssl_root_cert", "its content belongs in"),
    "an intermediate that is the root itself": (
        lambda c: c["configplane:platform"]["pki"].update(
            parent="external", intermediate_certificate=_vault(c)["kubernetes_ca_cert"]),
        "platform.pki.intermediate_certificate", "self-signed"),
}


@pytest.mark.parametrize("case", sorted(TRUST_CASES))
def test_trust_settings_are_validated(project, case):
    change, path, text = TRUST_CASES[case]
    edit_stack(project, "dev", change)
    code, report = run_validate(project)
    assert code == 1
    matching = [e for e in report["errors"] if e["path"] == path]
    assert matching and text in matching[0]["message"], report["errors"]
    assert "Fix:" in matching[0]["message"]


def test_in_cluster_needs_neither_ca_nor_reviewer_token(project):
    def in_cluster(config):
        for key in ("kubernetes_ca_cert", "token_reviewer_jwt_config_key", "kubernetes_host"):
            _vault(config).pop(key)
        _vault(config)["runs_in_cluster"] = True
    edit_stack(project, "dev", in_cluster)
    assert run_validate(project)[0] == 0
# --- every error in one run ------------------------------------------------------------------

def _group(case: str) -> str:
    """What a case breaks: the service it edits (a stack-file case breaks the service whose
    secure key it touches). Cases in different groups are independent."""
    path = CASES[case][1]
    return "api" if path.startswith("config.configplane:apiDbPassword") else path.split(".")[1]


GROUPS: dict[str, list[str]] = {}
for _case in sorted(CASES):
    GROUPS.setdefault(_group(_case), []).append(_case)


def _errors(project: Path, cases: list[str], verb=validate) -> list[dict]:
    for case in cases:
        edit_stack(project, "dev", CASES[case][0])
    result = CliRunner().invoke(verb, ["--stack", "dev", "--project-dir", str(project),
                                       "--format", "json"])
    assert result.exit_code == 1, result.output
    return json.loads(result.output)["errors"]


def _key(error: dict) -> str:
    return json.dumps(error, sort_keys=True)


@pytest.fixture(scope="module")
def alone(tmp_path_factory) -> dict[str, set[str]]:
    """What validate reports for each case on its own."""
    found = {}
    for case in sorted(CASES):
        project = copy_project(tmp_path_factory.mktemp(case) / "project")
        found[case] = {_key(e) for e in _errors(project, [case])}
    return found


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choice=st.fixed_dictionaries({group: st.sampled_from(cases) for group, cases in GROUPS.items()}),
       groups=st.sets(st.sampled_from(sorted(GROUPS)), min_size=2))
def test_independent_errors_are_all_reported_in_one_run(tmp_path_factory, alone, choice, groups):
    """Breaking several services at once gives exactly the union of what each break gives
    alone: no error hides another, none is invented by a combination, and plan refuses the
    stack with the same list."""
    cases = [choice[group] for group in sorted(groups)]
    project = copy_project(tmp_path_factory.mktemp("combined") / "project")
    errors = _errors(project, cases)
    assert {_key(e) for e in errors} == set().union(*(alone[case] for case in cases))
    assert len(errors) == len({_key(e) for e in errors})  # each once
    result = CliRunner().invoke(plan_command, ["--stack", "dev", "--project-dir", str(project),
                                               "--format", "json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["errors"] == errors


def test_a_typo_hides_no_other_error(project):
    """The run issue 20 reported: a `tsl:` typo hid a flag's `defualtVariant` typo (and the
    app-schema checks of every service) until the next run."""
    for file, old, new in (("api/service.yaml", "\ntls:", "\ntsl:"),
                           ("web/service.yaml", 'defaultVariant: "on"', 'defualtVariant: "on"'),
                           ("worker/service.yaml", "CONCURRENCY: 4", "CONCURRENCY: many")):
        path = project / "services" / file
        assert old in path.read_text()
        path.write_text(path.read_text().replace(old, new))
    code, report = run_validate(project)
    assert code == 1
    assert [(e["path"], e["file"]) for e in report["errors"]] == [
        ("services.api.tsl", "services/api/service.yaml"),
        ("services.web.flags.dark-mode.defualtVariant", "services/web/service.yaml"),
        ("services.worker.config.CONCURRENCY", "services/worker/service.yaml"),
        # tenant acme's ConfigMap inherits the value (globex sets its own)
        ("services.worker.tenants.acme.config.CONCURRENCY", "services/worker/dev.yaml"),
    ]


def test_what_a_refused_part_implies_is_not_a_second_error(project):
    """A secret whose rotation strategy is misspelt: one error at the strategy; the spec is
    set aside, so its incompleteness (rotation without strategy) is not reported again."""
    path = project / "services" / "api" / "dev.yaml"
    path.write_text(path.read_text().replace("strategy: postgres-single-user",
                                             "strategy: postgres-single"))
    code, report = run_validate(project)
    assert code == 1
    assert [e["path"] for e in report["errors"]] == [
        "services.api.secrets.DATABASE_PASSWORD.rotation.strategy"]
