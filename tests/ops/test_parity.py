"""`configplane diff`: environment parity, declared differences, secrets without values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from configplane.cli.commands.diff import command as diff
from configplane.inputs import SERVICES_KEY
from configplane.ops import PARITY_KEY
from configplane.ops.parity import _compile, _row
from tests import catalog_compat
from tests.conftest import REPO
from tests.tables import plain_rows

CANARY = "canary-diff-Hs6Jd8Kf2Lg4"
ENDPOINTS = "each environment has its own endpoints"
CAPACITY = "capacity is sized per environment"
FLAGS = "flags roll out environment by environment"


def run(a: str, b: str, project: Path = REPO, *extra: str, fmt: str = "json") -> tuple[int, str]:
    args = ["--stack", a, "--stack", b, "--project-dir", str(project), "--format", fmt, *extra]
    result = CliRunner().invoke(diff, args, env={"COLUMNS": "200"})  # rows on one line
    return result.exit_code, result.output


def differences(document: dict) -> list[tuple]:
    return [(service, r["path"], r["status"], r.get("reason", ""))
            for service, rows in document["services"].items()
            for r in rows if r["status"] != "same"]


def edit_stack(project: Path, stack: str, change) -> None:
    """`change(services)` on the stack's service overlays (services/<name>/<stack>.yaml)."""
    catalog_compat.edit_stack(project, stack, lambda config: change(config[SERVICES_KEY]))


def test_staging_and_prod_hold_parity_with_the_declared_differences():
    code, output = run("staging", "prod")
    document = json.loads(output)
    assert (code, document["parity"], document["summary"]["unexpected"]) == (0, True, 0)
    assert differences(document) == [
        ("api", "config.CORS_ALLOWED_ORIGINS", "expected", ENDPOINTS),
        ("api", "config.DATABASE_POOL_SIZE", "expected", CAPACITY),
        ("api", "config.LOG_LEVEL", "expected", "log verbosity is chosen per environment"),
        ("api", "secrets.DATABASE_PASSWORD.database.host", "expected", ENDPOINTS),
        # both rotate with alternating users (staging rehearses prod), each with its own master
        ("api", "secrets.DATABASE_PASSWORD.rotation.master_secret_arn", "expected",
         "staging and prod rotate with alternating users (no failed logins while rotating); "
         "dev single-user"),
        ("web", "config.API_BASE_URL", "expected", ENDPOINTS),
        ("web", "config.CDN_URL", "expected", ENDPOINTS),
        ("web", "config.LOG_LEVEL", "expected", "log verbosity is chosen per environment"),
        ("web", "flags.dark-mode.defaultVariant", "expected", FLAGS),
        ("web", "flags.new-checkout.rollout.percent", "expected", FLAGS),
        ("worker", "config.CONCURRENCY", "expected", CAPACITY),
        ("worker", "config.LOG_LEVEL", "expected", "log verbosity is chosen per environment"),
        ("worker", "config.PAYMENTS_API_BASE_URL", "expected",
         "the payments provider's sandbox outside prod"),
        ("worker", "config.QUEUE_URL", "expected", ENDPOINTS),
        ("worker", "secrets.PARTNER_WEBHOOK_TOKEN", "expected",
         "the partner integration runs in prod only"),
        ("worker", "tenants.acme.config.CONCURRENCY", "expected", CAPACITY),
        ("worker", "tenants.acme.config.RATE_LIMIT_RPS", "expected", CAPACITY),
        ("worker", "tenants.globex.config.RATE_LIMIT_RPS", "expected", CAPACITY),
    ]
    rows = {(s, r["path"]): r for s, rs in document["services"].items() for r in rs}
    # A secret on one side only: its spec, never a value.
    assert rows["worker", "secrets.PARTNER_WEBHOOK_TOKEN"] == {
        "path": "secrets.PARTNER_WEBHOOK_TOKEN",
        "status": "expected",
        "staging": None,
        "prod": {"source": "reference", "store": "vault", "ref": "worker/partner#webhook_token",
                 "length": 32, "version": 1, "description": "Shared with the partner; written "
                 "to Vault by the partner-onboarding runbook"},
        "only_in": "prod",
        "reason": "the partner integration runs in prod only",
    }
    # Same on both sides: shown side by side.
    assert rows["api", "secrets.DATABASE_PASSWORD.store"] == {
        "path": "secrets.DATABASE_PASSWORD.store", "status": "same", "staging": "aws", "prod": "aws"}
    assert rows["api", "secrets.DATABASE_PASSWORD.rotation.strategy"] == {
        "path": "secrets.DATABASE_PASSWORD.rotation.strategy", "status": "same",
        "staging": "postgres-alternating-users", "prod": "postgres-alternating-users"}
    assert rows["worker", "config.RATE_LIMIT_RPS"] == {
        "path": "config.RATE_LIMIT_RPS", "status": "same", "staging": 20, "prod": 20}


def test_dev_and_staging_hold_parity():
    code, output = run("dev", "staging")
    document = json.loads(output)
    assert (code, document["parity"]) == (0, True)
    assert ("worker", "tenants.globex.config.CONCURRENCY", "expected", CAPACITY) in differences(document)
    rows = {(s, r["path"]): r for s, rs in document["services"].items() for r in rs}
    assert rows["web", "flags.new-checkout.rollout.percent"]["only_in"] == "staging"


def test_an_undeclared_difference_breaks_parity(project):
    edit_stack(project, "staging", lambda s: s["api"]["config"].update(REQUEST_TIMEOUT_MS=3000))
    code, output = run("staging", "prod", project)
    document = json.loads(output)
    assert (code, document["parity"], document["summary"]["unexpected"]) == (1, False, 1)
    row = next(r for r in document["services"]["api"] if r["path"] == "config.REQUEST_TIMEOUT_MS")
    assert row == {"path": "config.REQUEST_TIMEOUT_MS", "status": "unexpected", "staging": 3000,
                   "prod": 5000}

    code, output = run("staging", "prod", project, "--differences-only", fmt="table")
    assert code == 1
    cells = [row for row in plain_rows(output, "key ") if row[0] == "config.REQUEST_TIMEOUT_MS"]
    assert cells == [["config.REQUEST_TIMEOUT_MS", "3000", "5000", "DIFFERS"]]
    assert output.splitlines()[-1] == (
        "parity broken between staging and prod: 1 unexpected difference. Fix: align the "
        "values, or declare the path under `configplane:parity` expected_differences in Pulumi.yaml.")


def test_secrets_compared_by_source_store_and_presence(project):
    def change(services):
        services["worker"].setdefault("secrets", {})["PAYMENTS_API_KEY"] = {"store": "aws"}
        services["web"]["secrets"] = {"CSRF_KEY": {"source": "generated", "store": "vault"}}

    edit_stack(project, "staging", change)
    code, output = run("staging", "prod", project)
    document = json.loads(output)
    assert code == 1
    unexpected = [d for d in differences(document) if d[2] == "unexpected"]
    assert unexpected == [("web", "secrets.CSRF_KEY", "unexpected", ""),
                          ("worker", "secrets.PAYMENTS_API_KEY.store", "unexpected", "")]
    rows = {(s, r["path"]): r for s, rs in document["services"].items() for r in rs}
    assert rows["web", "secrets.CSRF_KEY"]["only_in"] == "staging"
    code, table = run("staging", "prod", project, fmt="table")
    assert next(row for row in plain_rows(table, "key ") if row[0] == "secrets.CSRF_KEY") == [
        "secrets.CSRF_KEY", "secret: generated, vault", "(absent)", "ONLY IN STAGING"]


def test_a_service_in_one_stack_only(project):
    edit_stack(project, "dev", lambda s: s.update(admin={
        "app_schema": "web-frontend",
        "config": {"LOG_LEVEL": "info", "PORT": 3001, "API_BASE_URL": "https://api.dev.shop.example.com"},
    }))
    code, output = run("dev", "staging", project)
    document = json.loads(output)
    assert code == 1
    assert document["services"]["admin"] == [{
        "path": "", "status": "unexpected", "dev": "service (web-frontend)", "staging": None,
        "only_in": "dev"}]


def test_values_differing_only_in_type_differ():
    # "3000" and 3000 render alike in a ConfigMap but are different documents; 1 is not True.
    assert _row("web", "config.PORT", "3000", 3000, []).status == "unexpected"
    assert _row("web", "config.X", 1, True, []).status == "unexpected"
    assert _row("web", "config.X", 1, 1, []).status == "same"


def without_parity_block(project: Path) -> dict:
    document = yaml.safe_load((project / "Pulumi.yaml").read_text())
    del document["config"][PARITY_KEY]
    return document


def test_without_declarations_every_difference_is_unexpected(project):
    (project / "Pulumi.yaml").write_text(yaml.safe_dump(without_parity_block(project)))
    code, output = run("staging", "prod", project)
    document = json.loads(output)
    assert (code, document["summary"]["expected"], document["summary"]["unexpected"]) == (1, 0, 18)
    assert document["notes"] == [
        "Pulumi.yaml declares no `configplane:parity`: every difference is unexpected."]


def test_malformed_declarations(project):
    document = without_parity_block(project)
    document["config"][PARITY_KEY] = {"value": {"expected_differences": ["config.LOG_LEVEL"]}}
    (project / "Pulumi.yaml").write_text(yaml.safe_dump(document))
    code, output = run("staging", "prod", project)
    assert (code, output.strip()) == (1, (
        "error: Pulumi.yaml: configplane:parity.expected_differences[0]: not a path pattern. "
        "Fix: use a dotted path inside a service such as `services.*.config.LOG_LEVEL`, or "
        "`{reason: ..., paths: [...]}`."))


def test_patterns_match_one_key_per_star_and_cover_what_is_below():
    pattern = _compile("services.*.config.LOG_LEVEL")
    assert pattern.match("services.api.config.LOG_LEVEL")
    assert not pattern.match("services.api.config.LOG_LEVEL_X")
    assert not pattern.match("services.api.tenants.acme.config.LOG_LEVEL")
    below = _compile("services.*.flags.*.targeting")
    assert below.match("services.web.flags.new-checkout.targeting.fractional")
    assert not below.match("services.web.flags.new-checkout")


def test_invalid_stack_is_refused_without_echoing_it(project):
    path = project / "Pulumi.staging.yaml"
    text = path.read_text()
    start = text.index("  configplane:shopVaultDbPassword:\n")
    end = text.index("  configplane:vaultTokenReviewerJwt:")
    path.write_text(text[:start] + f"  configplane:shopVaultDbPassword: {CANARY}\n" + text[end:])
    for fmt in ("json", "table"):
        code, output = run("staging", "prod", project, fmt=fmt)
        assert (code, output.strip()) == (1, (
            "error: stack staging is not valid (1 error in Pulumi.staging.yaml); diff compares "
            "valid stacks. Fix: run `configplane validate --stack staging` and fix them."))
        assert CANARY not in output


@pytest.mark.parametrize("args, message", [
    (["--stack", "dev"], "error: give two different stacks: --stack A --stack B (e.g. --stack "
     "staging --stack prod)."),
    (["--stack", "dev", "--stack", "dev"], "error: give two different stacks: --stack A --stack B "
     "(e.g. --stack staging --stack prod)."),
    (["--stack", "dev", "--stack", "qa"],
     f"error: Pulumi.qa.yaml: file not found in {REPO}: there is no stack 'qa'. Fix: use one of "
     "the stacks that exist: dev, prod, staging."),
])
def test_bad_input_is_a_clean_error(args, message):
    result = CliRunner().invoke(diff, [*args, "--project-dir", str(REPO)])
    assert (result.exit_code, result.output.strip()) == (1, message)
