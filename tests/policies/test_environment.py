"""Environment isolation (per-service isolation: test_identities.py)."""

from __future__ import annotations

from tests.policies.builders import only, pack_module, resource

ENVIRONMENT = pack_module("environment")


def isolation(label: str, path: str, other: str, env: str = "prod") -> str:
    return (f"{label}: {path} names environment {other} (its namespace, Vault mount, account or "
            f"ARN); this stack is {env}. {ENVIRONMENT.WHY_FIX_OTHER_ENVIRONMENT}")


CROSS_STORE = resource("kubernetes:external-secrets.io/v1:ClusterSecretStore", "cross-env-store", {
    "metadata": {"name": "vault-prod"},
    "spec": {"conditions": [{"namespaces": ["api-prod", "api-staging"]}],
             "provider": {"vault": {"path": "staging-kv", "version": "v2",
                                    "server": "https://vault.dev.shop.internal:8200"}}}})
CROSS_ACCOUNT = resource("kubernetes:external-secrets.io/v1:ExternalSecret", "cross-account", {
    "metadata": {"name": "api", "namespace": "api-prod"},
    "spec": {"data": [{"secretKey": "TOKEN", "remoteRef": {
        "key": "arn:aws:secretsmanager:eu-west-1:222222222222:secret:shared"}}]}})


def test_environment_isolation(prod):
    resources = [
        # compliant: own names, prose, a .dev domain, a device path, own account
        resource("vault:index/audit:Audit", "ok-audit", {
            "type": "file", "path": "file-prod", "description": "copied from the staging setup",
            "options": {"file_path": "/dev/stdout"}}),
        resource("kubernetes:core/v1:Namespace", "ok-namespace", {"metadata": {
            "name": "api-prod", "labels": {"configplane.io/environment": "prod"},
            "annotations": {"flags": "https://flagd.dev/schema/v0/flags.json",
                            "vault": "https://vault.prod.shop.internal:8200",
                            "arn": "arn:aws:secretsmanager:eu-west-1:333333333333:secret:x"}}}),
        # write-only inputs hold secret values, not names
        resource("aws:secretsmanager/secretVersion:SecretVersion", "ok-version", {
            "secretId": "arn:aws:secretsmanager:eu-west-1:333333333333:secret:x",
            "secretStringWo": '{"host": "db.staging.internal"}'}),
        CROSS_STORE,
        CROSS_ACCOUNT,
        resource("kubernetes:core/v1:Namespace", "dev-labelled", {"metadata": {
            "name": "api-prod", "labels": {"configplane.io/environment": "dev"}}}),
        resource("kubernetes:core/v1:Namespace", "bare-namespace", {}),  # property missing
    ]
    store = 'ClusterSecretStore "cross-env-store"'
    assert only("environment-isolation", prod.violations(resources)) == [
        ("environment-isolation", name, "mandatory", text) for name, text in [
            ("cross-env-store", isolation(store, "spec.conditions[0].namespaces[1]", "staging")),
            ("cross-env-store", isolation(store, "spec.provider.vault.path", "staging")),
            ("cross-env-store", isolation(store, "spec.provider.vault.server", "dev")),
            ("cross-account", isolation('ExternalSecret "cross-account"',
                                        "spec.data[0].remoteRef.key", "staging")),
            ("dev-labelled", isolation('Namespace "dev-labelled"',
                                       "metadata.labels.configplane.io/environment", "dev")),
        ]]


def test_environment_isolation_is_mandatory_in_dev(dev):
    mount = resource("vault:index/mount:Mount", "vault-dev-kv", {"path": "prod-kv", "type": "kv"},
                     stack="dev")
    assert only("environment-isolation", dev.violations([mount])) == [(
        "environment-isolation", "vault-dev-kv", "mandatory",
        isolation('Mount "vault-dev-kv"', "path", "prod", env="dev"))]


def test_environment_isolation_defaults_and_exceptions(custom):
    # no accountIds configured: account numbers are not recognised; the store is waived
    pack = custom
    assert only("environment-isolation", pack.violations([CROSS_STORE, CROSS_ACCOUNT])) == []
