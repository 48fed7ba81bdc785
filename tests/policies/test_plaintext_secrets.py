"""Plaintext secrets: in config, in stack outputs, in Kubernetes Secrets."""

from __future__ import annotations

import base64
import json

from tests.policies.builders import (
    BOOL_FLAG,
    CANARY,
    configmap,
    flags_data,
    lambda_function,
    pack_module,
    resource,
    stack_root,
    workload,
)

DB_URL = f"postgres://api:{CANARY}@db.internal:5432/shop"
GITHUB_TOKEN = "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"
AWS_SECRET = f"kQ9/{CANARY}Xb2+Lm4Np7Rt1Vw3Yz5Ac8Eg0"

SECRETS = pack_module("plaintext_secrets")


def why_fix(why: str, fix: str) -> str:
    return f"Why: {why}. Fix: {fix}, {SECRETS.ROTATE_OR_PLACEHOLDER}"


CONFIGMAP_WHY = why_fix(SECRETS.WHY_CONFIGMAP, SECRETS.FIX_CONFIGMAP)
ENV_WHY = why_fix(SECRETS.WHY_ENV, SECRETS.FIX_ENV)
LAMBDA_WHY = why_fix(SECRETS.WHY_LAMBDA, SECRETS.FIX_LAMBDA)


def no_canary(violations) -> None:
    assert all(CANARY not in text and GITHUB_TOKEN not in text for *_, text in violations)


def test_no_plaintext_secret_in_config(prod, detector_rules):
    settings = "\n".join(["# app settings", "LOG_LEVEL=info", f"API_TOKEN={GITHUB_TOKEN}"])
    resources = [
        # compliant: plain settings, references and placeholders, flag definitions
        configmap("ok-config", {"LOG_LEVEL": "info", "DB_PASSWORD": "${DB_PASSWORD}",
                                "secretName": "api-secrets", "existingSecret": "db-creds"},
                  schema=None),
        configmap("ok-flags", flags_data({"dark-mode": BOOL_FLAG}), schema="flags"),
        # violating: a URL with a password, a JSON document and an env file inside values
        configmap("leaky-config", {
            "DATABASE_URL": DB_URL,
            "settings.json": json.dumps({"db": {"password": f"Zq8{CANARY}x"}, "port": 5432}),
        }, schema=None),
        configmap("leaky-binary", {}, schema=None,
                  binaryData={"app.env": base64.b64encode(settings.encode()).decode()}),
        configmap("leaky-flags", flags_data({"api": {
            "state": "ENABLED", "variants": {"live": {"token": GITHUB_TOKEN}},
            "defaultVariant": "live"}}), schema="flags"),
        workload("kubernetes:apps/v1:Deployment", "api-deployment", [
            {"name": "AWS_SECRET_ACCESS_KEY", "value": AWS_SECRET},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "api-secrets",
                                                                   "key": "DB_PASSWORD"}}},
            {"name": "LOG_LEVEL", "value": "info"},
        ]),
        workload("kubernetes:batch/v1:CronJob", "api-cronjob", [
            {"name": "DATABASE_URL", "value": DB_URL}]),
        workload("kubernetes:core/v1:Pod", "api-pod", [{"name": "PORT", "value": "8080"}]),
        lambda_function("rotation", variables={"LOG_LEVEL": "INFO", "GITHUB_TOKEN": GITHUB_TOKEN}),
        # property missing: nothing to scan
        resource("kubernetes:core/v1:ConfigMap", "bare-config", {"metadata": {"name": "x"}}),
        resource("kubernetes:apps/v1:Deployment", "bare-deployment", {"metadata": {"name": "y"}}),
        lambda_function("bare-function", variables=None),
    ]
    everything = prod.violations(resources)
    no_canary(everything)
    violations = [v for v in everything if v[0] == "no-plaintext-secret-in-config"]
    url = detector_rules("DATABASE_URL", DB_URL)
    github = detector_rules("GITHUB_TOKEN", GITHUB_TOKEN)
    assert violations == [
        ("no-plaintext-secret-in-config", "leaky-config", "mandatory",
         f'ConfigMap "leaky-config": data.DATABASE_URL holds what looks like a credential '
         f"({url}). {CONFIGMAP_WHY}"),
        ("no-plaintext-secret-in-config", "leaky-config", "mandatory",
         f'ConfigMap "leaky-config": data.settings.json: db.password holds what looks like a '
         f"credential ({detector_rules('password', f'Zq8{CANARY}x')}). {CONFIGMAP_WHY}"),
        ("no-plaintext-secret-in-config", "leaky-binary", "mandatory",
         f'ConfigMap "leaky-binary": binaryData.app.env line 3 holds what looks like a '
         f"credential ({detector_rules('API_TOKEN', GITHUB_TOKEN)}). {CONFIGMAP_WHY}"),
        ("no-plaintext-secret-in-config", "leaky-flags", "mandatory",
         f'ConfigMap "leaky-flags": data.flags.flagd.json: flags.api.variants.live.token holds '
         f"what looks like a credential ({detector_rules('token', GITHUB_TOKEN)}). "
         f"{CONFIGMAP_WHY}"),
        ("no-plaintext-secret-in-config", "api-deployment", "mandatory",
         f'Deployment "api-deployment": container app env AWS_SECRET_ACCESS_KEY holds what '
         f"looks like a credential ({detector_rules('AWS_SECRET_ACCESS_KEY', AWS_SECRET)}). "
         f"{ENV_WHY}"),
        ("no-plaintext-secret-in-config", "api-cronjob", "mandatory",
         f'CronJob "api-cronjob": container app env DATABASE_URL holds what looks like a '
         f"credential ({url}). {ENV_WHY}"),
        ("no-plaintext-secret-in-config", "rotation", "mandatory",
         f'Function "rotation": environment variable GITHUB_TOKEN holds what looks like a '
         f"credential ({github}). {LAMBDA_WHY}"),
    ]
    no_canary(violations)


def test_no_secret_in_stack_outputs(prod, detector_rules):
    outputs = {"environment": "prod", "vault_mount": "prod-kv",
               "services": {"api": {"secret_name": "api-secrets", "config_hash": "h84kd5kdmd",
                                    "database_url": DB_URL}}}
    violations = [v for v in prod.violations([stack_root(outputs)])
                  if v[0] == "no-secret-in-stack-outputs"]
    assert violations == [(
        "no-secret-in-stack-outputs", "configplane-prod", "mandatory",
        "stack output services.api.database_url holds what looks like a credential "
        f"({detector_rules('database_url', DB_URL)}). {SECRETS.WHY_FIX_OUTPUTS}")]
    no_canary(violations)
    # compliant and property-missing: names only, and no outputs at all
    del outputs["services"]["api"]["database_url"]
    assert prod.violations([stack_root(outputs)]) == []
    assert prod.violations([stack_root({})]) == []


SECRET = "kubernetes:core/v1:Secret"
EXTERNAL = SECRETS.WHY_FIX_LITERAL_SECRET


def k8s_secret(name: str, stack: str = "prod", **fields):
    return resource(SECRET, name, {"metadata": {"name": name, "namespace": f"api-{stack}"},
                                   **fields},
                    stack=stack)


def test_kubernetes_secret_from_external_store(prod, dev):
    resources = [
        k8s_secret("literal", data={"DB_PASSWORD": base64.b64encode(CANARY.encode()).decode(),
                                    "API_KEY": "eA=="}),
        k8s_secret("string-data", stringData={"TOKEN": CANARY}),
        k8s_secret("empty", data={}),  # compliant: filled by the operator
        k8s_secret("no-data", type="kubernetes.io/service-account-token"),  # property missing
    ]
    expected = [
        ('literal', 'Secret "literal" carries literal data keys API_KEY, DB_PASSWORD. '),
        ('string-data', 'Secret "string-data" carries literal stringData keys TOKEN. '),
    ]
    assert prod.violations(resources) == [
        ("kubernetes-secret-from-external-store", name, "mandatory", text + EXTERNAL)
        for name, text in expected]
    # dev lets a team try a hand-made Secret: reported, not blocking
    assert [(p, n, level) for p, n, level, _ in dev.violations(
        [k8s_secret("literal", stack="dev", stringData={"TOKEN": "x"})])] == [
        ("kubernetes-secret-from-external-store", "literal", "advisory")]


def test_kubernetes_secret_allowed_when_config_says_so(custom):
    # requireExternalSecrets: false
    assert custom.violations([k8s_secret("literal", stringData={"TOKEN": CANARY})]) == []
