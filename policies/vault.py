"""Vault: service policies and Kubernetes auth roles grant a service read access to its own
secrets in its own environment, nothing more; a shard deployer's login roles (Kubernetes and
JWT auth, docs/fleet.md) grant its own deploy policy and nothing else, to nobody else; a stack
with Vault mounts declares an audit device.

The `<env>-<service>-pki` and `-database` policies are left to certificates.py and
dynamic_credentials.py (credentials_lib.is_owned_policy)."""

from __future__ import annotations

from typing import Any

from credentials_lib import is_owned_policy
from ownership import (
    READ_POLICY_SUFFIX,
    deploy_login_role,
    deploy_login_shard,
    deploy_policy_name,
    deploy_shard,
    github_deploy_environment,
    policy_service,
    shard_stack_name,
    stack_account,
)
from packlib import (
    ENVIRONMENT_PROPERTY,
    UNKNOWN,
    PolicyParseError,
    Reporter,
    config_schema,
    environment,
    for_types,
    num,
    parse_vault_policy,
    plain,
    resource_label,
    whole_stack,
)
from pulumi_policy import (
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from resource_types import VAULT_AUDIT, VAULT_JWT_ROLE, VAULT_K8S_ROLE, VAULT_MOUNT, VAULT_POLICY

# --- vault-least-privilege ------------------------------------------------------------------------

WHY_FIX_UNREADABLE = ("Why: an unreadable policy cannot be shown to grant least privilege. "
                      "Fix: write it as HCL `path` blocks with `capabilities` lists.")
WHY_FIX_SUDO = ("Why: sudo opens root-protected endpoints (policies, auth, audit) to the token. "
                "Fix: remove sudo; operators use their own short-lived tokens.")
WHY_FIX_ROOT_WILDCARD = ("Why: it reaches every secret of the mount, including other "
                         "services'. Fix: name the service's own path "
                         "(`<mount>/data/<service>/*`).")
WHY_FIX_WRITES = ("Why: service policies only read; values are written by configplane "
                  '(write-only) or runbooks. Fix: use capabilities = ["read"].')
WHY_FIX_UNBOUND_ROLE = ("Why: any service account (in any namespace) could then log in with "
                        "this role and read its secrets. Fix: bind the role to the service's "
                        "own account and namespace.")
WHY_FIX_DEPLOY_POLICY = ("Why: a shard deployer's policy writes that shard's Vault names; only "
                         "its own login role ({login}) may grant it. Fix: remove it from the "
                         "role's token_policies.")
WHY_FIX_LOGIN_POLICIES = ("Why: a deployer's login must give the shard's deployer exactly its "
                          "own rights. Fix: token_policies = [\"{policy}\"].")
WHY_FIX_LOGIN_BINDING = ("Why: anyone else who logs in with it gets the shard's deploy "
                         "rights. Fix: bind it to {binding} only.")
WHY_FIX_UNBOUND_JWT = ("Why: a JWT role without bound audiences and exact bound claims admits "
                       "tokens of other repositories or environments. Fix: set bound_audiences "
                       "and bound_claims (string type) with repository and environment.")
WHY_FIX_ROOT_POLICY = ("Why: root can do anything in Vault. Fix: attach only the service's "
                       "read policy.")
WHY_FIX_NO_AUDIT = ("Why: without an audit log nobody can tell who read a secret. Fix: "
                    "declare vault.Audit (the VaultEnvironment component does) with a file or "
                    "socket device.")
WHY_FIX_POLICY_NAME = ("Why: every Vault policy of this stack is a service's read policy unless "
                       "listed in the policy config's platformPolicies. Fix: name it "
                       "`{env}-<service>-read` or add it to platformPolicies after review.")
WHY_FIX_OTHER_MOUNT = ("Why: each environment keeps its secrets in its own mount. Fix: use this "
                       "environment's mount (`{env}-kv`).")
WHY_FIX_NOT_OWN_KV = ("Why: a service policy may read only `<mount>/data/{service}` and "
                      "`<mount>/metadata/{service}` (and below). Fix: remove the rule, or keep "
                      "the value under `{service}/` in Vault.")
WHY_FIX_TOKEN_TTL = "Why: a stolen token works until it expires. Fix: set token_ttl to {limit} or less."
READ_CAPABILITIES = {"read", "list", "deny"}
KV_SUBPATHS = {"data", "metadata", "delete", "undelete", "destroy", "subkeys", "config"}


def _has_glob(segment: str) -> bool:
    return "*" in segment or "+" in segment


def _root_wildcard(path: str) -> bool:
    segments = path.split("/")
    if _has_glob(segments[0]) or (len(segments) > 1 and _has_glob(segments[1])):
        return True
    return len(segments) > 2 and segments[1] in KV_SUBPATHS and _has_glob(segments[2])


def _own_path(path: str, mount_prefix: str, service: str) -> bool:
    segments = path.split("/")
    return (len(segments) >= 3 and segments[0].startswith(mount_prefix)
            and not _has_glob(segments[0]) and segments[1] in ("data", "metadata")
            and segments[2] == service and not any(_has_glob(s) for s in segments[3:-1]))


@for_types(VAULT_POLICY, VAULT_K8S_ROLE, VAULT_JWT_ROLE)
def vault_least_privilege(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("vault-least-privilege", cfg, report_violation)
    env = environment(cfg)
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    if args.resource_type in (VAULT_K8S_ROLE, VAULT_JWT_ROLE):
        _check_vault_role(args.name, label, props, cfg, report, jwt=args.resource_type == VAULT_JWT_ROLE)
        _check_deployer_login(args.name, label, props, env, report,
                              jwt=args.resource_type == VAULT_JWT_ROLE)
        return
    if props.get("policy") is UNKNOWN:
        return
    name = props.get("name")
    if is_owned_policy(name, env):  # sign/creds policies: pki- and database-creds-least-privilege
        return
    try:
        rules = parse_vault_policy(str(props.get("policy") or ""))
    except PolicyParseError as e:
        report(args.name, f"{label}: the policy text cannot be checked: {e}. "
               f"{WHY_FIX_UNREADABLE}", waivable=False)
        return
    service = None
    # a shard deployer's policy (docs/fleet.md) is the platform's, like platformPolicies
    if name not in (cfg.get("platformPolicies") or []) and deploy_shard(name, env) is None:
        service = policy_service(name, env, READ_POLICY_SUFFIX)
        if service is None:
            report(args.name, f"{label}: the policy name does not follow "
                   f"`{env}-<service>-read`. {WHY_FIX_POLICY_NAME.format(env=env)}")
    mount_prefix = f"{env}-"
    for path, caps in rules:
        where = f'{label}: path "{path}"'
        if "sudo" in caps:
            report(args.name, f"{where} grants sudo. {WHY_FIX_SUDO}", waivable=False)
        if _root_wildcard(path):
            report(args.name, f"{where} puts a wildcard at the mount's root. "
                   f"{WHY_FIX_ROOT_WILDCARD}", waivable=False)
        segments = path.split("/")
        if len(segments) > 1 and segments[1] in KV_SUBPATHS and not path.startswith(mount_prefix):
            report(args.name, f"{where} is a KV path outside this environment's mounts "
                   f"(`{env}-...`). {WHY_FIX_OTHER_MOUNT.format(env=env)}")
        if service is None:
            continue
        if not _own_path(path, mount_prefix, service):
            report(args.name, f"{where} is not the service's own KV path. "
                   f"{WHY_FIX_NOT_OWN_KV.format(service=service)}")
        writes = sorted(set(caps) - READ_CAPABILITIES - {"sudo"})
        if writes:
            report(args.name, f"{where} grants {', '.join(writes)}. {WHY_FIX_WRITES}")


def _check_vault_role(name: str, label: str, props: dict, cfg: Any, report: Reporter,
                      jwt: bool = False) -> None:
    if jwt:
        _check_jwt_binding(name, label, props, report)
    for field in () if jwt else ("boundServiceAccountNames", "boundServiceAccountNamespaces"):
        values = props.get(field)
        if values is UNKNOWN:
            continue
        if not values or "*" in values:
            report(name, f"{label}: {field} is empty or `*`. {WHY_FIX_UNBOUND_ROLE}",
                   waivable=False)
    policies = props.get("tokenPolicies")
    if isinstance(policies, list) and "root" in policies:
        report(name, f"{label}: tokenPolicies includes root. {WHY_FIX_ROOT_POLICY}",
               waivable=False)
    ttl = props.get("tokenTtl")
    limit = cfg["maxTokenTtlSeconds"]
    if ttl is UNKNOWN:
        return
    if not ttl or ttl > limit:
        shown = f"{num(ttl)} s" if ttl else "not set (Vault's default: 32 days)"
        report(name, f"{label}: tokenTtl is {shown}; at most {num(limit)} s allowed. "
               f"{WHY_FIX_TOKEN_TTL.format(limit=num(limit))}")


def _check_jwt_binding(name: str, label: str, props: dict, report: Reporter) -> None:
    audiences, claims = props.get("boundAudiences"), props.get("boundClaims")
    if UNKNOWN in (audiences, claims):
        return
    claims = claims if isinstance(claims, dict) else {}
    exact = props.get("boundClaimsType") in (None, "", "string")
    if (not audiences or not exact or not all(
            isinstance(claims.get(k), str) and claims[k] and "*" not in claims[k]
            for k in ("repository", "environment"))):
        report(name, f"{label}: bound_audiences or an exact bound_claims repository and "
               f"environment is missing. {WHY_FIX_UNBOUND_JWT}", waivable=False)


def _check_deployer_login(name: str, label: str, props: dict, env: str, report: Reporter,
                          jwt: bool) -> None:
    """A deploy policy only in its own shard's login role; a login role grants only it, to
    its own shard's deploy jobs (GitHub environment) or operator workspace account."""
    role, policies = props.get("roleName"), props.get("tokenPolicies")
    if UNKNOWN in (role, policies):
        return
    shard = deploy_login_shard(role, env)
    for policy in policies if isinstance(policies, list) else []:
        owner = deploy_shard(policy, env)
        if owner is not None and owner != shard:
            login = deploy_login_role(shard_stack_name(env, owner))
            report(name, f"{label}: tokenPolicies includes `{policy}`, the deploy policy of "
                   f"shard {owner}. {WHY_FIX_DEPLOY_POLICY.format(login=login)}", waivable=False)
    if shard is None:
        return
    stack = shard_stack_name(env, shard)
    own = deploy_policy_name(stack)
    if policies != [own]:
        report(name, f"{label}: the login role of shard {shard} grants {policies!r}. "
               f"{WHY_FIX_LOGIN_POLICIES.format(policy=own)}", waivable=False)
    expected: object
    if jwt:
        claims = props.get("boundClaims")
        bound = claims.get("environment") if isinstance(claims, dict) else None
        expected, binding = github_deploy_environment(stack), "its GitHub environment"
    else:
        bound = props.get("boundServiceAccountNames")
        expected, binding = [stack_account(stack)], "its operator workspace account"
    if bound is not UNKNOWN and bound != expected:
        report(name, f"{label}: the login role of shard {shard} is bound to {bound!r}, not "
               f"{expected!r}. {WHY_FIX_LOGIN_BINDING.format(binding=binding)}", waivable=False)


# --- vault-audit-enabled --------------------------------------------------------------------------


def vault_audit_enabled(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    audits = [r for r in args.resources if r.resource_type == VAULT_AUDIT]
    for mount in (r for r in args.resources if r.resource_type == VAULT_MOUNT):
        if not audits:
            report_violation(
                f"{resource_label(mount.resource_type, mount.name)} holds secrets but the "
                f"stack declares no vault.Audit device. {WHY_FIX_NO_AUDIT}", mount.urn)


POLICIES = [
    ResourceValidationPolicy(
        name="vault-least-privilege",
        description="Vault policies and roles grant a service read access to its own "
                    "secrets in its own environment, nothing more.",
        validate=vault_least_privilege,
        config_schema=config_schema({
            "environment": ENVIRONMENT_PROPERTY,
            "platformPolicies": {"type": "array", "items": {"type": "string"}, "default": []},
            "maxTokenTtlSeconds": {"type": "integer", "minimum": 60, "default": 3600},
        }, waivable=True),
    ),
    StackValidationPolicy(
        name="vault-audit-enabled",
        description="A stack that keeps secrets in Vault declares an audit device.",
        validate=whole_stack(vault_audit_enabled),
        config_schema=config_schema(),
    ),
]
