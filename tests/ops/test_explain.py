"""`configplane explain`: provenance through the layers, tenants, secrets, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from configplane.cli.commands.explain import command as explain
from configplane.inputs import Origin, read_stack_files, resolve_inputs
from configplane.model import render_configmap
from configplane.validation import load_stack
from tests.conftest import REPO
from tests.tables import plain_rows

CANARY = "canary-expl-Vb7Nq2Wx9Lp4"


def run(*args: str, project: Path = REPO, fmt: str = "json") -> tuple[int, str]:
    result = CliRunner().invoke(explain, [*args, "--project-dir", str(project), "--format", fmt])
    return result.exit_code, result.output


def explained(*args: str, project: Path = REPO) -> dict:
    code, output = run(*args, project=project)
    assert code == 0, output
    return json.loads(output)


def step(layer: str, file: str, path: str, value, line: int | None = None) -> dict:
    return {"layer": layer, "file": file, "line": line, "path": path, "value": value}


def test_environment_overrides_project_default():
    model = load_stack(read_stack_files(REPO, "prod"))
    assert explained("--stack", "prod", "api", "config.LOG_LEVEL") == {
        "stack": "prod",
        "service": "api",
        "tenant": None,
        "path": "config.LOG_LEVEL",
        "secret": False,
        "value": "warn",
        "spec": None,
        "secret_value": None,
        "delivered_as": {"configmap": model.services["api"].config.name, "key": "LOG_LEVEL",
                         "data": "warn"},
        "entries": [{
            "path": "config.LOG_LEVEL",
            "value": "warn",
            "set_by": step("environment", "services/api/prod.yaml", "services.api.config.LOG_LEVEL",
                           "warn", 2),
            "overrode": [step("service", "services/api/service.yaml",
                              "services.api.config.LOG_LEVEL", "info", 4)],
        }],
        "notes": [],
    }


def test_bare_name_means_the_config_key():
    assert explained("--stack", "prod", "api", "LOG_LEVEL") == explained(
        "--stack", "prod", "api", "config.LOG_LEVEL")


def test_project_default_untouched_by_the_environment():
    data = explained("--stack", "staging", "api", "REQUEST_TIMEOUT_MS")
    assert (data["value"], data["entries"]) == (5000, [{
        "path": "config.REQUEST_TIMEOUT_MS",
        "value": 5000,
        "set_by": step("service", "services/api/service.yaml",
                       "services.api.config.REQUEST_TIMEOUT_MS", 5000, 7),
        "overrode": [],
    }])


def test_tenant_override_on_top_of_environment_and_project():
    model = load_stack(read_stack_files(REPO, "prod"))
    data = explained("--stack", "prod", "worker", "CONCURRENCY", "--tenant", "acme")
    assert data["tenant"] == "acme"
    assert data["value"] == 32
    assert data["entries"] == [{
        "path": "config.CONCURRENCY",
        "value": 32,
        "set_by": step("tenant:acme", "services/worker/prod.yaml",
                       "services.worker.tenants.acme.config.CONCURRENCY", 32, 15),
        "overrode": [
            step("service", "services/worker/service.yaml", "services.worker.config.CONCURRENCY",
                 4, 5),
            step("environment", "services/worker/prod.yaml", "services.worker.config.CONCURRENCY",
                 16, 3),
        ],
    }]
    tenant_cm = model.services["worker"].tenants["acme"]
    assert data["delivered_as"] == {"configmap": tenant_cm.name, "key": "CONCURRENCY", "data": "32"}
    assert data["notes"] == []


def test_tenant_without_override_gets_the_service_value():
    data = explained("--stack", "dev", "worker", "config.CONCURRENCY", "--tenant", "acme")
    assert data["value"] == 4
    assert data["entries"][0]["set_by"] == step(
        "service", "services/worker/service.yaml", "services.worker.config.CONCURRENCY", 4, 5)
    assert data["notes"] == ["tenant acme does not override config.CONCURRENCY: it gets the "
                             "service's value."]
    globex = explained("--stack", "dev", "worker", "config.CONCURRENCY", "--tenant", "globex")
    assert globex["value"] == 1
    assert globex["entries"][0]["set_by"]["layer"] == "tenant:globex"


def test_tenant_reads_the_provenance_the_resolution_recorded():
    inputs = read_stack_files(REPO, "prod")
    recorded = resolve_inputs(inputs).tenants[("worker", "acme")]
    assert recorded.origins[("services", "worker", "config", "CONCURRENCY")] == Origin(
        "tenant:acme", "services/worker/prod.yaml", 15)
    # the recorded config is the one the checker rendered into the tenant's ConfigMap
    rendered = render_configmap("worker-acme-config", recorded.value["services"]["worker"]["config"])
    assert rendered == load_stack(inputs).services["worker"].tenants["acme"]


def test_a_tenant_override_taken_back_in_a_later_file_gives_the_service_value(project):
    service = project / "services" / "worker" / "service.yaml"
    service.write_text(service.read_text() + "tenants:\n  acme:\n    config:\n"
                       "      RATE_LIMIT_RPS: 7\n")
    prod = project / "services" / "worker" / "prod.yaml"
    prod.write_text(prod.read_text().replace("      RATE_LIMIT_RPS: 200\n",
                                             "      RATE_LIMIT_RPS: null\n"))
    model = load_stack(read_stack_files(project, "prod"))
    assert model.services["worker"].tenants["acme"].data["RATE_LIMIT_RPS"] == "20"
    data = explained("--stack", "prod", "worker", "RATE_LIMIT_RPS", "--tenant", "acme",
                     project=project)
    assert (data["value"], data["entries"]) == (20, [{
        "path": "config.RATE_LIMIT_RPS",
        "value": 20,
        "set_by": step("service", "services/worker/service.yaml",
                       "services.worker.config.RATE_LIMIT_RPS", 20, 6),
        "overrode": [
            step("tenant:acme", "services/worker/service.yaml",
                 "services.worker.tenants.acme.config.RATE_LIMIT_RPS", 7, 18),
            step("tenant:acme", "services/worker/prod.yaml",
                 "services.worker.tenants.acme.config.RATE_LIMIT_RPS", None, 14),
        ],
    }])
    assert data["notes"] == ["tenant acme does not override config.RATE_LIMIT_RPS: it gets the "
                             "service's value."]


def test_secret_shows_its_spec_and_where_the_value_is_never_the_value():
    data = explained("--stack", "prod", "api", "DATABASE_PASSWORD")
    assert data["path"] == "secrets.DATABASE_PASSWORD"
    assert data["secret"] is True
    assert data["value"] == "[secret]"
    assert {k: data["spec"][k] for k in ("source", "store", "config_key")} == {
        "source": "secure", "store": "aws", "config_key": "apiDbPassword"}
    assert data["secret_value"] == {"source": "secure", "config_key": "configplane:apiDbPassword",
                                    "state": "set, encrypted in Pulumi.prod.yaml"}
    assert data["delivered_as"] == {
        "secret_name": "api-secrets", "key": "DATABASE_PASSWORD",
        "stored_in": "aws secretsmanager configplane/prod/api/DATABASE_PASSWORD",
        "keys": ["DATABASE_USER", "DATABASE_PASSWORD", "DATABASE_HOST", "DATABASE_PORT",
                 "DATABASE_NAME", "DATABASE_URL"]}
    by_path = {e["path"]: e for e in data["entries"]}
    assert by_path["secrets.DATABASE_PASSWORD.rotation.strategy"]["set_by"] == step(
        "environment", "services/api/prod.yaml",
        "services.api.secrets.DATABASE_PASSWORD.rotation.strategy", "postgres-alternating-users",
        12)
    # Not set by any layer: the model's built-in default (`version`: a secure value is
    # written by the program; `length` only applies to a generated one, so it is not shown).
    assert by_path["secrets.DATABASE_PASSWORD.version"]["set_by"] == step(
        "default", "configplane/model/document.py", "services.api.secrets.DATABASE_PASSWORD.version", 1)
    assert "secrets.DATABASE_PASSWORD.length" not in by_path


def test_secret_spec_field_and_reference():
    data = explained("--stack", "prod", "worker", "secrets.PARTNER_WEBHOOK_TOKEN.ref")
    assert data["value"] == "worker/partner#webhook_token"
    assert (data["entries"][0]["set_by"]["file"], data["entries"][0]["set_by"]["line"]) == (
        "services/worker/prod.yaml", 9)
    assert data["secret_value"]["source"] == "reference"
    assert data["delivered_as"]["stored_in"] == "vault prod-kv/worker/partner#webhook_token"


def test_a_mapping_lists_each_leaf():
    data = explained("--stack", "prod", "web", "flags.dark-mode")
    assert [(e["path"], e["value"], e["set_by"]["layer"], [s["value"] for s in e["overrode"]])
            for e in data["entries"]] == [
        ("flags.dark-mode.state", "ENABLED", "service", []),
        ("flags.dark-mode.variants.on", True, "service", []),
        ("flags.dark-mode.variants.off", False, "service", []),
        ("flags.dark-mode.defaultVariant", "off", "environment", ["on"]),
    ]


def test_deleted_key_and_dotted_key_on_an_invalid_stack(project):
    path = project / "services" / "api" / "dev.yaml"
    path.write_text(path.read_text().replace(
        "  LOG_LEVEL: debug\n  CORS_ALLOWED_ORIGINS",
        "  LOG_LEVEL: debug\n  REQUEST_TIMEOUT_MS: null\n  CORS_ALLOWED_ORIGINS", 1))
    path = project / "services" / "web" / "dev.yaml"
    path.write_text(path.read_text().replace(
        "  CDN_URL: https://cdn.dev.shop.example.com\n",
        "  CDN_URL: https://cdn.dev.shop.example.com\n  cache.ttl: 30\n"))

    deleted = explained("--stack", "dev", "api", "REQUEST_TIMEOUT_MS", project=project)
    assert deleted["value"] is None
    assert deleted["entries"] == [{
        "path": "config.REQUEST_TIMEOUT_MS", "value": None, "set_by": None,
        "overrode": [
            step("service", "services/api/service.yaml", "services.api.config.REQUEST_TIMEOUT_MS",
                 5000, 7),
            step("environment", "services/api/dev.yaml", "services.api.config.REQUEST_TIMEOUT_MS",
                 None, 3),
        ],
    }]
    code, output = run("--stack", "dev", "api", "REQUEST_TIMEOUT_MS", project=project, fmt="table")
    assert plain_rows(output, "layer ") == [
        ["service", "services/api/service.yaml:7", "5000", "overridden"],
        ["environment", "services/api/dev.yaml:3", "(deleted)", "<- deleted"],
    ]
    # web's schema rejects `cache.ttl`: the stack is invalid, explain still answers.
    dotted = explained("--stack", "dev", "web", "config.cache.ttl", project=project)
    assert (dotted["value"], dotted["entries"][0]["set_by"]["file"]) == (30, "services/web/dev.yaml")
    assert dotted["delivered_as"] is None
    assert dotted["notes"][0].startswith("stack dev is not valid (1 error)")


def test_plaintext_in_a_secret_key_is_reported_not_shown(project):
    path = project / "Pulumi.dev.yaml"  # (the api's secure value is in its shard's file)
    text = path.read_text()
    path.write_text(text.replace("config:\n", f"config:\n  configplane:apiDbPassword: {CANARY}\n", 1))

    for fmt in ("json", "table"):
        code, output = run("--stack", "dev", "api", "DATABASE_PASSWORD", project=project, fmt=fmt)
        assert code == 0
        assert CANARY not in output
    data = explained("--stack", "dev", "api", "DATABASE_PASSWORD", project=project)
    assert data["secret_value"]["state"].startswith("PLAINTEXT in Pulumi.dev.yaml. Fix: remove it")


def test_table_output():
    code, output = run("--stack", "prod", "worker", "CONCURRENCY", "--tenant", "acme", fmt="table")
    assert code == 0
    lines = output.splitlines()
    assert lines[0] == "stack prod, service worker (tenant acme): config.CONCURRENCY = 32"
    rows = plain_rows(output, "layer ")
    assert rows == [
        ["service", "services/worker/service.yaml:5", "4", "overridden"],
        ["environment", "services/worker/prod.yaml:3", "16", "overridden"],
        ["tenant:acme", "services/worker/prod.yaml:15", "32", "<- resolved"],
    ]
    code, output = run("--stack", "prod", "api", "DATABASE_PASSWORD", fmt="table")
    assert output.splitlines()[:3] == [
        "stack prod, service api: secrets.DATABASE_PASSWORD = [secret]",
        "  secret spec: source: secure, store: aws, config_key: apiDbPassword",
        "  value: set, encrypted in Pulumi.prod.yaml",
    ]


FILES = "(services/, Pulumi.dev.yaml)"
WEB = "(services/web/service.yaml, services/web/dev.yaml)"
WORKER = "(services/worker/service.yaml, services/worker/dev.yaml)"


@pytest.mark.parametrize("args, message", [
    (["--stack", "qa", "api", "LOG_LEVEL"],
     f"error: Pulumi.qa.yaml: file not found in {REPO}: there is no stack 'qa'. Fix: use one of "
     "the stacks that exist: dev, prod, staging."),
    (["--stack", "dev", "billing", "LOG_LEVEL"],
     f"error: service `billing` is not in stack dev {FILES}. Fix: use one of: api, web, worker."),
    (["--stack", "dev", "web", "COLOUR"],
     f"error: `config.COLOUR` or `secrets.COLOUR` is not set for service `web` in stack dev {WEB}. "
     "Fix: use one of: API_BASE_URL, CDN_URL, COOKIE_ENCRYPTION_KEY, LOG_LEVEL, PORT, "
     "SESSION_COOKIE_NAME."),
    (["--stack", "dev", "web", "flags.dark-mode.colour"],
     f"error: `flags.dark-mode.colour` is not set for service `web` in stack dev {WEB}. "
     "Fix: use one of: flags.dark-mode.defaultVariant, flags.dark-mode.state, "
     "flags.dark-mode.variants."),
    (["--stack", "dev", "worker", "CONCURRENCY", "--tenant", "initech"],
     f"error: service `worker` has no tenant `initech` in stack dev {WORKER}. Fix: use one of: "
     "acme, globex, or drop --tenant."),
    (["--stack", "dev", "worker", "config", "--tenant", "acme"],
     "error: --tenant applies to config keys (tenants override config only), not `config`. "
     "Fix: ask for config.<KEY>, or drop --tenant."),
    (["--stack", "dev", "worker", "PAYMENTS_API_KEY", "--tenant", "acme"],
     "error: --tenant applies to config keys (tenants override config only), not "
     "`secrets.PAYMENTS_API_KEY`. Fix: ask for config.<KEY>, or drop --tenant."),
])
def test_bad_input_is_a_clean_error(args, message):
    code, output = run(*args)
    assert (code, output.strip()) == (1, message)


@pytest.mark.parametrize(("key", "path", "value"), [
    ("DATABASE_HOST", "secrets.DATABASE_PASSWORD.database.host",
     "shop-prod.cluster-c7qrs8tuv9wx.eu-west-1.rds.amazonaws.com"),
    ("DATABASE_USER", "secrets.DATABASE_PASSWORD.database.username", "api"),
    ("DATABASE_PORT", "secrets.DATABASE_PASSWORD.database.port", 5432),
    ("DATABASE_URL", "secrets.DATABASE_PASSWORD", "[secret]"),
])
def test_a_key_the_database_secret_delivers_is_explained_by_its_source(key, path, value):
    data = explained("--stack", "prod", "api", key)
    assert (data["path"], data["value"]) == (path, value)
    assert data["delivered_as"]["keys"][2] == "DATABASE_HOST"
