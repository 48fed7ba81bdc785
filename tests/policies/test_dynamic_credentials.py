"""Dynamic database logins through the real pack process: Vault database roles and mounts,
VaultDynamicSecret generators, the ExternalSecrets that use them, creds policies."""

from __future__ import annotations

import copy
from typing import Any

from configplane.model import Grant, creation_statements, revocation_statements
from tests.policies.builders import pack_module, resource, stack_root

CREDS = pack_module("dynamic_credentials")

DB_ROLE = "vault:database/secretBackendRole:SecretBackendRole"
GENERATOR = "kubernetes:generators.external-secrets.io/v1alpha1:VaultDynamicSecret"
EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1:ExternalSecret"
POLICIES = ("dynamic-credential-ttl", "dynamic-credential-statements",
            "dynamic-credential-refresh", "database-creds-least-privilege")
GRANTS = [Grant.model_validate({"schema": "app", "tables": ["orders"],
                                "privileges": ["SELECT"]})]
CREATE = creation_statements("shop", GRANTS)
REVOKE = revocation_statements("shop", GRANTS)


def mine(violations) -> list:
    return [v for v in violations if v[0] in POLICIES]


def db_role(name: str, role: str = "api-orders", **changes: Any):
    props = {"backend": "prod-database", "name": role, "dbName": "shop",
             "creationStatements": CREATE, "revocationStatements": REVOKE,
             "defaultTtl": 3600, "maxTtl": 43200, **changes}
    return resource(DB_ROLE, name, {k: v for k, v in props.items() if v is not None})


def db_mount(name: str, **changes: Any):
    props = {"path": "prod-database", "type": "database", "defaultLeaseTtlSeconds": 3600,
             "maxLeaseTtlSeconds": 43200, **changes}
    return resource("vault:index/mount:Mount", name,
                    {k: v for k, v in props.items() if v is not None})


GOOD_GENERATOR_SPEC = {
    "path": "prod-database/creds/api-orders", "method": "GET", "resultType": "Data",
    "provider": {"server": "https://vault", "auth": {"kubernetes": {
        "mountPath": "kubernetes-prod", "role": "api-database",
        "serviceAccountRef": {"name": "api", "audiences": ["vault"]}}}}}


def generator(name: str, gen_name: str = "api-orders", **spec_changes: Any):
    spec = {**copy.deepcopy(GOOD_GENERATOR_SPEC), **spec_changes}
    return resource(GENERATOR, name, {
        "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "VaultDynamicSecret",
        "metadata": {"name": gen_name, "namespace": "api-prod"}, "spec": spec})


def external_secret(name: str, gen_name: str = "api-orders", **spec_changes: Any):
    spec = {"refreshInterval": "20m", "target": {"name": name},
            "dataFrom": [{"sourceRef": {"generatorRef": {
                "apiVersion": "generators.external-secrets.io/v1alpha1",
                "kind": "VaultDynamicSecret", "name": gen_name}}}], **spec_changes}
    return resource(EXTERNAL_SECRET, name, {
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": "api-prod"},
        "spec": {k: v for k, v in spec.items() if v is not None}})


def creds_policy(name: str, policy_name: str, text: str):
    return resource("vault:index/policy:Policy", name, {"name": policy_name, "policy": text})


GOOD = [db_mount("mount"), db_role("role"), generator("generator"), external_secret("secret"),
        creds_policy("policy", "prod-api-database",
                     'path "prod-database/creds/api-orders" {\n  capabilities = ["read"]\n}\n')]


def test_compliant_dynamic_credentials_pass(prod):
    audit = resource("vault:index/audit:Audit", "audit", {
        "type": "file", "path": "file-prod", "options": {"file_path": "/vault/logs/audit.log"}})
    assert prod.violations([*GOOD, audit, stack_root({})]) == []


def test_ttl_caps(prod, dev):
    resources = [
        db_role("long-default", defaultTtl=7200),
        db_role("long-max", maxTtl=172800),
        db_role("unset", defaultTtl=None, maxTtl=None),
        db_role("inverted", defaultTtl=1800, maxTtl=900),
        db_mount("open-mount", maxLeaseTtlSeconds=None),
    ]
    assert mine(prod.violations(resources)) == [
        ("dynamic-credential-ttl", "long-default", "mandatory",
         'SecretBackendRole "long-default": default_ttl is 2h; at most 1h here. '
         f"{CREDS.WHY_FIX_DEFAULT_TTL.format(limit='1h')}"),
        ("dynamic-credential-ttl", "long-max", "mandatory",
         'SecretBackendRole "long-max": max_ttl is 48h; at most 24h here. '
         f"{CREDS.WHY_FIX_MAX_TTL.format(limit='24h')}"),
        ("dynamic-credential-ttl", "unset", "mandatory",
         'SecretBackendRole "unset": default_ttl is not set (the mount\'s default applies); at '
         f"most 1h here. {CREDS.WHY_FIX_DEFAULT_TTL.format(limit='1h')}"),
        ("dynamic-credential-ttl", "unset", "mandatory",
         'SecretBackendRole "unset": max_ttl is not set (the mount\'s maximum applies); at most '
         f"24h here. {CREDS.WHY_FIX_MAX_TTL.format(limit='24h')}"),
        ("dynamic-credential-ttl", "inverted", "mandatory",
         'SecretBackendRole "inverted": default_ttl 30m exceeds max_ttl 15m. '
         f"{CREDS.FIX_INVERTED_TTL}"),
        ("dynamic-credential-ttl", "open-mount", "mandatory",
         'Mount "open-mount": max_lease_ttl_seconds is not set (Vault\'s system maximum, 32 '
         f"days); at most 24h here. {CREDS.WHY_FIX_MOUNT_MAX_TTL.format(limit='24h')}"),
    ]
    # dev's caps are 8h/7d and advisory: a 2h login passes there
    assert mine(dev.violations([db_role("long-default", defaultTtl=7200)])) == []


def test_creation_and_revocation_statements(prod):
    superuser = ['CREATE ROLE "{{name}}" WITH LOGIN SUPERUSER PASSWORD \'{{password}}\' '
                 "VALID UNTIL '{{expiration}}';"]
    resources = [
        db_role("superuser", creationStatements=superuser),
        db_role("admin-ish", creationStatements=[
            CREATE[0].replace("NOCREATEROLE", "CREATEROLE").replace("NOCREATEDB", "CREATEDB"),
            'ALTER ROLE "{{name}}" REPLICATION BYPASSRLS;']),
        db_role("passes-on", creationStatements=[
            *CREATE, 'GRANT SELECT ON app.orders TO "{{name}}" WITH GRANT OPTION;']),
        db_role("member", creationStatements=[
            *CREATE, 'GRANT pg_read_all_data, "reporting" TO "{{name}}";']),
        db_role("all", creationStatements=[*CREATE, 'GRANT ALL PRIVILEGES ON ALL TABLES IN '
                                                    'SCHEMA app TO "{{name}}";']),
        db_role("no-expiry", creationStatements=[
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';", *CREATE[1:]]),
        db_role("no-drop", revocationStatements=REVOKE[:-1]),
        db_role("no-revocation", revocationStatements=None),
    ]
    no_table_rights = CREDS.WHY_FIX_FORBIDDEN
    no_drop = f"the revocation statements do not drop the login. {CREDS.WHY_FIX_NO_DROP}"
    assert mine(prod.violations(resources)) == [
        ("dynamic-credential-statements", "superuser", "mandatory",
         f'SecretBackendRole "superuser": creation_statements[0] grants SUPERUSER. '
         f"{no_table_rights}"),
        ("dynamic-credential-statements", "admin-ish", "mandatory",
         f'SecretBackendRole "admin-ish": creation_statements[0] grants CREATEROLE, CREATEDB. '
         f"{no_table_rights}"),
        ("dynamic-credential-statements", "admin-ish", "mandatory",
         f'SecretBackendRole "admin-ish": creation_statements[1] grants REPLICATION, '
         f"BYPASSRLS. {no_table_rights}"),
        ("dynamic-credential-statements", "passes-on", "mandatory",
         'SecretBackendRole "passes-on": creation_statements[4] passes on its rights (WITH '
         f"GRANT/ADMIN OPTION). {CREDS.WHY_FIX_GRANT_OPTION}"),
        ("dynamic-credential-statements", "member", "mandatory",
         'SecretBackendRole "member": creation_statements[4] makes the login a member of '
         f"pg_read_all_data. {CREDS.WHY_FIX_PRIVILEGED_ROLE}"),
        ("dynamic-credential-statements", "all", "mandatory",
         'SecretBackendRole "all": creation_statements[4] grants ALL privileges. '
         f"{CREDS.WHY_FIX_ALL_PRIVILEGES}"),
        ("dynamic-credential-statements", "no-expiry", "mandatory",
         'SecretBackendRole "no-expiry": the creation statements set no VALID UNTIL '
         f"'{{{{expiration}}}}'. {CREDS.WHY_FIX_NO_EXPIRY}"),
        ("dynamic-credential-statements", "no-drop", "mandatory",
         f'SecretBackendRole "no-drop": {no_drop}'),
        ("dynamic-credential-statements", "no-revocation", "mandatory",
         f'SecretBackendRole "no-revocation": {no_drop}'),
    ]


def test_refresh_interval_against_the_ttl(prod):
    resources = [
        db_mount("mount"), db_role("role"), generator("generator"),
        db_role("short-role", role="api-short", defaultTtl=1800),
        generator("short-generator", gen_name="api-short",
                  path="prod-database/creds/api-short"),
        external_secret("slow", gen_name="api-short", refreshInterval="15m"),  # = TTL/2
        external_secret("default-interval", refreshInterval=None),  # ESO's 1h >= 30m
        external_secret("once", refreshPolicy="CreatedOnce"),
        external_secret("never", refreshInterval="0"),
        external_secret("ok", refreshInterval="29m"),
        external_secret("orphan", gen_name="api-missing"),
        stack_root({}),
    ]
    never = CREDS.WHY_FIX_NEVER_REFRESHES.format(ttl="1h", half="30m")
    assert mine(prod.violations(resources)) == [
        ("dynamic-credential-refresh", "slow", "mandatory",
         f'ExternalSecret "slow": refreshInterval 15m is not under half of the login\'s TTL '
         f"(30m). {CREDS.WHY_FIX_SLOW_REFRESH.format(half='15m')}"),
        ("dynamic-credential-refresh", "default-interval", "mandatory",
         f'ExternalSecret "default-interval": refreshInterval unset (ESO\'s 1h) is not under '
         f"half of the login's TTL (1h). {CREDS.WHY_FIX_SLOW_REFRESH.format(half='30m')}"),
        ("dynamic-credential-refresh", "once", "mandatory",
         'ExternalSecret "once" never fetches a new login (refreshPolicy CreatedOnce, '
         f"refreshInterval 20m). {never}"),
        ("dynamic-credential-refresh", "never", "mandatory",
         'ExternalSecret "never" never fetches a new login (refreshPolicy Periodic, '
         f"refreshInterval 0). {never}"),
        ("dynamic-credential-refresh", "orphan", "mandatory",
         'ExternalSecret "orphan": the TTL of generator `api-missing` cannot be found (its '
         f"VaultDynamicSecret or Vault role is not declared in this stack). "
         f"{CREDS.WHY_FIX_NO_GENERATOR}"),
    ]


def test_creds_least_privilege(prod):
    text = ('path "prod-database/creds/api-orders" {\n  capabilities = ["read", "update"]\n}\n'
            'path "prod-database/creds/web-orders" {\n  capabilities = ["read"]\n}\n'
            'path "prod-database/config/shop" {\n  capabilities = ["read"]\n}\n'
            'path "prod-database/creds/*" {\n  capabilities = ["read"]\n}\n'
            'path "staging-database/creds/api-orders" {\n  capabilities = ["read"]\n}\n')
    resources = [
        creds_policy("greedy", "prod-api-database", text),
        generator("token-generator", provider={"server": "https://vault", "auth": {
            "tokenSecretRef": {"name": "vault-token", "key": "token"}}}),
        generator("foreign-account", provider={"server": "https://vault", "auth": {
            "kubernetes": {"mountPath": "kubernetes-prod", "role": "api-database",
                           "serviceAccountRef": {"name": "admin", "namespace": "kube-system"}}}}),
    ]
    not_own = ("is not one of the service's own creds endpoints. "
               f"{CREDS.WHY_FIX_NOT_OWN_CREDS.format(env='prod', service='api')}")
    assert mine(prod.violations(resources)) == [
        ("database-creds-least-privilege", "greedy", "mandatory",
         'Policy "greedy": path "prod-database/creds/api-orders" grants update. '
         f"{CREDS.WHY_FIX_READ_ONLY}"),
        ("database-creds-least-privilege", "greedy", "mandatory",
         f'Policy "greedy": path "prod-database/creds/web-orders" {not_own}'),
        ("database-creds-least-privilege", "greedy", "mandatory",
         f'Policy "greedy": path "prod-database/config/shop" {not_own}'),
        ("database-creds-least-privilege", "greedy", "mandatory",
         f'Policy "greedy": path "prod-database/creds/*" {not_own}'),
        ("database-creds-least-privilege", "greedy", "mandatory",
         f'Policy "greedy": path "staging-database/creds/api-orders" {not_own}'),
        ("database-creds-least-privilege", "token-generator", "mandatory",
         'VaultDynamicSecret "token-generator": Vault auth is tokenSecretRef, not Kubernetes '
         f"auth with a serviceAccountRef. {CREDS.WHY_FIX_GENERATOR_AUTH}"),
        ("database-creds-least-privilege", "foreign-account", "mandatory",
         'VaultDynamicSecret "foreign-account": serviceAccountRef names a namespace. '
         f"{CREDS.WHY_FIX_GENERATOR_NAMESPACE}"),
    ]


def test_unknown_values_are_left_for_the_next_run(prod):
    from configplane.offline import UNKNOWN

    resources = [
        db_mount("mount", maxLeaseTtlSeconds=UNKNOWN),
        db_role("role", defaultTtl=UNKNOWN, creationStatements=UNKNOWN,
                revocationStatements=UNKNOWN),
        generator("generator", path=UNKNOWN, provider=UNKNOWN),
        external_secret("secret", refreshInterval=UNKNOWN),
        db_role("known-role", role="api-known"),
        generator("known-generator", gen_name="api-known", path="prod-database/creds/api-known"),
        external_secret("unknown-interval", gen_name="api-known", refreshInterval=UNKNOWN),
        creds_policy("policy", "prod-api-database", UNKNOWN),
        stack_root({}),
    ]
    assert mine(prod.violations(resources)) == []


def test_reviewed_exceptions(pack_for):
    """A current exception waives a TTL finding; privilege findings are never waived."""
    config = {
        "dynamic-credential-ttl": {"exceptions": [
            {"resource": "batch-role", "ticket": "DATA-4", "expires": "2999-01-01",
             "reason": "nightly batch needs a 4h login"}]},
        "dynamic-credential-statements": {"exceptions": [
            {"resource": "admin-role", "ticket": "DATA-5", "expires": "2999-01-01",
             "reason": "tries to waive a superuser grant"}]},
    }
    pack = pack_for("prod", config)
    resources = [
        db_role("batch-role", defaultTtl=14400),
        db_role("admin-role", creationStatements=[CREATE[0].replace("NOSUPERUSER", "SUPERUSER"),
                                                  *CREATE[1:]]),
    ]
    assert [v[:2] for v in mine(pack.violations(resources))] == [
        ("dynamic-credential-statements", "admin-role")]
