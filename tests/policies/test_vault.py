"""Vault: least privilege for policies and Kubernetes auth roles, audit."""

from __future__ import annotations

import json

from tests.policies.builders import (
    only,
    pack_module,
    read_rules,
    resource,
    vault_policy,
    vault_role,
)

VAULT = pack_module("vault")


def rule(path: str, *caps: str) -> str:
    return f'path "{path}" {{\n  capabilities = {json.dumps(list(caps))}\n}}\n'


NOT_OWN = f"is not the service's own KV path. {VAULT.WHY_FIX_NOT_OWN_KV.format(service='api')}"
MISNAMED = VAULT.WHY_FIX_POLICY_NAME.format(env="prod")


def test_vault_least_privilege_policies(prod):
    resources = [
        vault_policy("api-vault-policy", "prod-api-read", read_rules("prod-kv", "api")),
        vault_policy("commented", "prod-web-read", "# web reads its own secrets\n"
                     + rule("prod-kv/data/web/*", "read", "list") + "/* metadata */\n"
                     + 'path "prod-kv/metadata/web" { policy = "read" }\n'),
        vault_policy("json-policy", "prod-worker-read", json.dumps(
            {"path": {"prod-kv/data/worker": {"capabilities": ["read"]}}})),
        vault_policy("greedy", "prod-api-read",
                     rule("prod-kv/data/worker", "read")
                     + rule("prod-kv/data/api", "read", "update", "delete")
                     + rule("prod-kv/data/*", "read")
                     + rule("staging-kv/data/api", "read")
                     + rule("sys/policies/acl/*", "read", "sudo")),
        vault_policy("misnamed", "api-admin", rule("prod-kv/data/api", "read")),
        vault_policy("platform", "prod-rotation-admin", rule("prod-kv/data/api", "create")),
        vault_policy("unreadable", "prod-api-read", 'path "prod-kv/data/api" { capabilities = '),
        vault_policy("bare", None, None),  # property missing: no name, no rules
    ]
    greedy = 'Policy "greedy": path'
    expected = [
        ("greedy", f'{greedy} "prod-kv/data/worker" {NOT_OWN}'),
        ("greedy", f'{greedy} "prod-kv/data/api" grants delete, update. {VAULT.WHY_FIX_WRITES}'),
        ("greedy", f'{greedy} "prod-kv/data/*" puts a wildcard at the mount\'s root. '
                   f"{VAULT.WHY_FIX_ROOT_WILDCARD}"),
        ("greedy", f'{greedy} "prod-kv/data/*" {NOT_OWN}'),
        ("greedy", f'{greedy} "staging-kv/data/api" is a KV path outside this environment\'s '
                   f"mounts (`prod-...`). {VAULT.WHY_FIX_OTHER_MOUNT.format(env='prod')}"),
        ("greedy", f'{greedy} "staging-kv/data/api" {NOT_OWN}'),
        ("greedy", f'{greedy} "sys/policies/acl/*" grants sudo. {VAULT.WHY_FIX_SUDO}'),
        ("greedy", f'{greedy} "sys/policies/acl/*" {NOT_OWN}'),
        ("misnamed", 'Policy "misnamed": the policy name does not follow `prod-<service>-read`. '
                     f"{MISNAMED}"),
        ("platform", 'Policy "platform": the policy name does not follow `prod-<service>-read`. '
                     f"{MISNAMED}"),
        ("unreadable", 'Policy "unreadable": the policy text cannot be checked: unclosed block '
                       f'for path "prod-kv/data/api". {VAULT.WHY_FIX_UNREADABLE}'),
        ("bare", 'Policy "bare": the policy name does not follow `prod-<service>-read`. '
                 f"{MISNAMED}"),
    ]
    assert only("vault-least-privilege", prod.violations(resources)) == [
        ("vault-least-privilege", name, "mandatory", text) for name, text in expected]


def test_vault_least_privilege_platform_policies_and_exceptions(custom):
    pack = custom  # platformPolicies: prod-rotation-admin; exception for "writer"
    resources = [
        # a reviewed platform policy may write, but never sudo or a root wildcard
        vault_policy("platform", "prod-rotation-admin",
                     rule("prod-kv/data/api", "create", "update")
                     + rule("prod-kv/+/api", "read")),
        # a waived write; sudo stays reported whatever the exception says
        vault_policy("writer", "prod-api-read",
                     rule("prod-kv/data/api/oauth", "read", "update")
                     + rule("prod-kv/data/api/admin", "sudo")),
    ]
    assert [(n, text.split(". Why")[0]) for p, n, _, text in pack.violations(resources)
            if p == "vault-least-privilege"] == [
        ("platform", 'Policy "platform": path "prod-kv/+/api" puts a wildcard at the mount\'s '
                     "root"),
        ("writer", 'Policy "writer": path "prod-kv/data/api/admin" grants sudo'),
    ]


def test_vault_least_privilege_roles(prod):
    resources = [
        vault_role("api-vault-role"),
        vault_role("any-account", boundServiceAccountNames=["*"],
                   boundServiceAccountNamespaces=[], tokenPolicies=["prod-api-read", "root"]),
        vault_role("long-lived", tokenTtl=86400),
        vault_role("no-ttl", tokenTtl=None),  # property missing: Vault's default applies
    ]
    anyone = VAULT.WHY_FIX_UNBOUND_ROLE
    assert only("vault-least-privilege", prod.violations(resources)) == [
        ("vault-least-privilege", name, "mandatory", text) for name, text in [
            ("any-account", 'AuthBackendRole "any-account": boundServiceAccountNames is empty or '
                            f"`*`. {anyone}"),
            ("any-account", 'AuthBackendRole "any-account": boundServiceAccountNamespaces is '
                            f"empty or `*`. {anyone}"),
            ("any-account", 'AuthBackendRole "any-account": tokenPolicies includes root. '
                            f"{VAULT.WHY_FIX_ROOT_POLICY}"),
            ("long-lived", 'AuthBackendRole "long-lived": tokenTtl is 86400 s; at most 3600 s '
                           f"allowed. {VAULT.WHY_FIX_TOKEN_TTL.format(limit='3600')}"),
            ("no-ttl", 'AuthBackendRole "no-ttl": tokenTtl is not set (Vault\'s default: 32 '
                       f"days); at most 3600 s allowed. {VAULT.WHY_FIX_TOKEN_TTL.format(limit='3600')}"),
        ]]


def test_vault_audit_enabled(prod, dev):
    mount = resource("vault:index/mount:Mount", "vault-prod-kv",
                     {"path": "prod-kv", "type": "kv", "options": {"version": "2"}})
    audit = resource("vault:index/audit:Audit", "vault-prod-audit",
                     {"type": "file", "path": "file-prod", "options": {"file_path": "/vault/a.log"}})
    text = ('Mount "vault-prod-kv" holds secrets but the stack declares no vault.Audit device. '
            f"{VAULT.WHY_FIX_NO_AUDIT}")
    assert only("vault-audit-enabled", prod.violations([mount])) == [
        ("vault-audit-enabled", "vault-prod-kv", "mandatory", text)]
    assert only("vault-audit-enabled", prod.violations([mount, audit])) == []
    assert only("vault-audit-enabled", prod.violations([audit])) == []
    # dev Vault may be a throwaway dev-mode server: reported, not blocking
    assert [v[2] for v in only("vault-audit-enabled", dev.violations([mount]))] == ["advisory"]


def test_a_shard_deployers_policy_is_the_platforms_but_still_checked(prod):
    """`configplane-deploy-<env>-<shard>` (ownership.deploy_policy_name) writes its services'
    names: no naming or own-path violation, but sudo, root wildcards and other environments'
    mounts are still refused; another environment's deployer name is no deployer here."""
    writes = rule("sys/policies/acl/prod-api-read", "create", "update") + rule(
        "prod-kv/data/api", "create", "update")
    resources = [
        vault_policy("deployer", "configplane-deploy-prod-api-team", writes),
        vault_policy("greedy-deployer", "configplane-deploy-prod-web-team",
                     rule("prod-kv/data/*", "update") + rule("staging-kv/data/web", "update")
                     + rule("sys/policies/acl/*", "update", "sudo")),
        vault_policy("staging-deployer", "configplane-deploy-staging-api-team", writes),
    ]
    found = only("vault-least-privilege", prod.violations(resources))
    assert not [v for v in found if v[1] == "deployer"]
    greedy = {text.split(". ")[0] for _, name, _, text in found if name == "greedy-deployer"}
    assert greedy == {
        'Policy "greedy-deployer": path "prod-kv/data/*" puts a wildcard at the mount\'s root',
        'Policy "greedy-deployer": path "staging-kv/data/web" is a KV path outside this '
        "environment's mounts (`prod-...`)",
        'Policy "greedy-deployer": path "sys/policies/acl/*" grants sudo'}
    assert [name for _, name, _, _ in found if name == "staging-deployer"][:1] == [
        "staging-deployer"]


def jwt_role(name: str, **props) -> object:
    base = {"backend": "jwt", "roleName": "configplane_deploy_prod-api-team",
            "roleType": "jwt", "boundAudiences": ["https://github.com/shop"],
            "boundClaims": {"repository": "shop/config", "environment": "prod-api-team"},
            "boundClaimsType": "string", "userClaim": "sub",
            "tokenPolicies": ["configplane-deploy-prod-api-team"], "tokenTtl": 1800}
    base.update(props)
    return resource("vault:jwt/authBackendRole:AuthBackendRole", name,
                    {k: v for k, v in base.items() if v is not None})


def test_a_deployers_login_grants_its_own_deploy_policy_to_its_own_jobs_only(prod):
    """A shard's login role (`configplane_deploy_<stack>`) grants exactly its deploy policy,
    bound to its GitHub environment or its operator account; no other role (a service's, or
    another shard's login) may grant a deploy policy; a JWT role binds audiences and exact
    repository and environment claims."""
    own = "configplane-deploy-prod-api-team"
    operator = {"roleName": "configplane_deploy_prod-api-team", "tokenPolicies": [own],
                "boundServiceAccountNames": ["pulumi-prod-api-team"],
                "boundServiceAccountNamespaces": ["pulumi-operator"]}
    resources = [
        jwt_role("github-login"),
        vault_role("operator-login", **operator),
        jwt_role("more", tokenPolicies=[own, "prod-api-read"]),
        jwt_role("other-shard", boundClaims={"repository": "shop/config",
                                             "environment": "prod-web-team"}),
        jwt_role("glob-claims", roleName="ci", tokenPolicies=["ci"], boundClaimsType="glob"),
        jwt_role("no-audience", roleName="ci-2", tokenPolicies=["ci"], boundAudiences=[]),
        vault_role("service-with-deployer", tokenPolicies=["prod-api-read", own]),
        vault_role("stolen-login", **{**operator, "roleName": "configplane_deploy_prod-web-team"}),
        vault_role("wrong-account", **{**operator, "boundServiceAccountNames": ["api"]}),
    ]
    found = only("vault-least-privilege", prod.violations(resources))
    assert {v[2] for v in found} == {"mandatory"}
    flagged = {name for _, name, _, _ in found}
    assert flagged == {"more", "other-shard", "glob-claims", "no-audience",
                       "service-with-deployer", "stolen-login", "wrong-account"}
    texts = {name: " | ".join(t for _, n, _, t in found if n == name) for name in flagged}
    assert VAULT.WHY_FIX_LOGIN_POLICIES.format(policy=own) in texts["more"]
    assert "bound to 'prod-web-team', not 'prod-api-team'" in texts["other-shard"]
    assert VAULT.WHY_FIX_UNBOUND_JWT in texts["glob-claims"]
    assert VAULT.WHY_FIX_UNBOUND_JWT in texts["no-audience"]
    assert f"`{own}`, the deploy policy of shard api-team" in texts["service-with-deployer"]
    assert "the deploy policy of shard api-team" in texts["stolen-login"]
    assert "operator workspace account" in texts["wrong-account"]
