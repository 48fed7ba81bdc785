"""Short-lived database logins: Vault database roles, ESO VaultDynamicSecret generators and
the ExternalSecrets that use them.

- dynamic-credential-ttl: default and maximum lease TTLs within the environment's caps.
- dynamic-credential-statements: creation statements that grant no superuser, role, database
  or replication rights, expire with the lease, and revocation that drops the login.
- dynamic-credential-refresh: an ExternalSecret fed by a VaultDynamicSecret fetches a new
  login well within the login's TTL (refreshInterval < TTL/2).
- database-creds-least-privilege: a service's database policy reads only its own creds
  endpoints; generators sign in as the service's own account.
"""

from __future__ import annotations

import re
from typing import Any

from contract import DNS_LABEL, forbidden_attributes
from credentials_lib import go_seconds, human, owned_policy_rules, ttl_seconds
from ownership import DATABASE_POLICY_SUFFIX
from packlib import (
    UNKNOWN,
    Reporter,
    as_mapping,
    config_schema,
    environment,
    for_types,
    get,
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
from resource_types import DB_ROLE, EXTERNAL_SECRETS, VAULT_MOUNT, VAULT_POLICY
from resource_types import VAULT_DYNAMIC_SECRET as GENERATOR

# Predefined roles whose membership reaches beyond granted tables (PostgreSQL, RDS, Cloud SQL,
# Azure): read/write all data, server files and programs, signals, admin roles.
PRIVILEGED_ROLES = re.compile(r"^(pg_\w+|rds_superuser|rds_replication|rdsadmin|"
                              r"cloudsqlsuperuser|azure_pg_admin|postgres)$", re.IGNORECASE)
ESO_DEFAULT_REFRESH = 3600.0  # ESO's refreshInterval when unset
WHY_FIX_MOUNT_MAX_TTL = ("Why: the mount caps every login it issues. Fix: set "
                         "platform.database.max_ttl to {limit} or less.")
WHY_FIX_DEFAULT_TTL = ("Why: a leaked login works until its lease ends. Fix: set "
                       "platform.database.default_ttl to {limit} or less.")
WHY_FIX_MAX_TTL = ("Why: renewals could keep a login alive that long. Fix: set "
                   "platform.database.max_ttl to {limit} or less.")
FIX_INVERTED_TTL = "Fix: make default_ttl the shorter one."
WHY_FIX_NEVER_REFRESHES = ("Why: the login expires after {ttl} and the pods would be left "
                           "without one. Fix: use a periodic refreshInterval under {half}.")
WHY_FIX_SLOW_REFRESH = ("Why: pods must get the next login while the current one still has "
                        "time to run. Fix: set platform.database.refresh_interval below {half} "
                        "(default: a third of the TTL).")
WHY_FIX_NOT_OWN_CREDS = ("Why: a `{env}-{service}-database` policy may only read "
                         "`<{env} database mount>/creds/{service}-<secret>`; other paths would "
                         "hand it other services' logins or the engine's configuration. Fix: "
                         "remove the rule.")
WHY_FIX_FORBIDDEN = ("Why: a generated login must not administer the server, create roles or "
                     "databases, replicate or bypass row security; one leaked login would own "
                     "the database. Fix: grant only table privileges (dynamic.grants).")
WHY_FIX_GRANT_OPTION = "Why: the login could hand them to anyone. Fix: remove the option."
WHY_FIX_ALL_PRIVILEGES = ("Why: that includes TRUNCATE, REFERENCES and TRIGGER. Fix: list the "
                          "privileges (SELECT, INSERT, UPDATE, DELETE).")
WHY_FIX_PRIVILEGED_ROLE = ("Why: predefined and admin roles reach beyond the granted tables "
                           "(all data, server files, other sessions). Fix: grant table "
                           "privileges instead.")
WHY_FIX_NO_EXPIRY = ("Why: if revocation fails, the login would still work after its lease "
                     "ended. Fix: create the role WITH ... VALID UNTIL '{{expiration}}'.")
WHY_FIX_NO_DROP = ("Why: a revoked lease must leave no role that can log in. Fix: end with "
                   'DROP ROLE IF EXISTS "{{name}}".')
WHY_FIX_NO_GENERATOR = ("Why: the refresh interval must be checked against the TTL. Fix: "
                        "declare the generator and its role in this stack.")
WHY_FIX_GENERATOR_AUTH = (
    "Why: a token or secret in the namespace can be copied; the service's own bound account "
    "token cannot be used elsewhere. Fix: use provider.auth.kubernetes.serviceAccountRef (the "
    "service's account).")
WHY_FIX_GENERATOR_NAMESPACE = ("Why: the generator must sign in as an account of its own "
                               "namespace. Fix: remove serviceAccountRef.namespace.")
WHY_FIX_READ_ONLY = 'Why: getting a login needs only read. Fix: use capabilities = ["read"].'


# --- dynamic-credential-ttl -------------------------------------------------------------------


@for_types(VAULT_MOUNT, DB_ROLE)
def dynamic_credential_ttl(args: ResourceValidationArgs,
                           report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("dynamic-credential-ttl", cfg, report_violation)
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    cap_default, cap_max = int(cfg["maxDefaultTtlSeconds"]), int(cfg["maxMaxTtlSeconds"])
    if args.resource_type == VAULT_MOUNT:
        if props.get("type") != "database" or props.get("maxLeaseTtlSeconds") is UNKNOWN:
            return
        ceiling = ttl_seconds(props.get("maxLeaseTtlSeconds"))
        if not ceiling or ceiling > cap_max:
            shown = human(ceiling) if ceiling else "not set (Vault's system maximum, 32 days)"
            report(args.name, f"{label}: max_lease_ttl_seconds is {shown}; at most "
                   f"{human(cap_max)} here. {WHY_FIX_MOUNT_MAX_TTL.format(limit=human(cap_max))}")
        return
    default, maximum = props.get("defaultTtl"), props.get("maxTtl")
    if default is UNKNOWN or maximum is UNKNOWN:
        return
    default_s, max_s = ttl_seconds(default), ttl_seconds(maximum)
    if not default_s or default_s > cap_default:
        shown = human(default_s) if default_s else "not set (the mount's default applies)"
        report(args.name, f"{label}: default_ttl is {shown}; at most {human(cap_default)} "
               f"here. {WHY_FIX_DEFAULT_TTL.format(limit=human(cap_default))}")
    if not max_s or max_s > cap_max:
        shown = human(max_s) if max_s else "not set (the mount's maximum applies)"
        report(args.name, f"{label}: max_ttl is {shown}; at most {human(cap_max)} here. "
               f"{WHY_FIX_MAX_TTL.format(limit=human(cap_max))}")
    if default_s and max_s and default_s > max_s:
        report(args.name, f"{label}: default_ttl {human(default_s)} exceeds max_ttl "
               f"{human(max_s)}. {FIX_INVERTED_TTL}")


# --- dynamic-credential-statements ------------------------------------------------------------


@for_types(DB_ROLE)
def dynamic_credential_statements(args: ResourceValidationArgs,
                                  report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("dynamic-credential-statements", cfg, report_violation)
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    creation = props.get("creationStatements")
    if creation is UNKNOWN or not isinstance(creation, list):
        return
    text = "\n".join(s for s in creation if isinstance(s, str))
    for i, statement in enumerate(creation):
        if not isinstance(statement, str):
            continue
        where = f"{label}: creation_statements[{i}]"
        bad = forbidden_attributes(statement)
        if bad:
            report(args.name, f"{where} grants {', '.join(bad)}. {WHY_FIX_FORBIDDEN}",
                   waivable=False)
        upper = " ".join(statement.upper().split())
        if "WITH GRANT OPTION" in upper or "WITH ADMIN OPTION" in upper:
            report(args.name, f"{where} passes on its rights (WITH GRANT/ADMIN OPTION). "
                   f"{WHY_FIX_GRANT_OPTION}", waivable=False)
        if re.search(r"\bALL\s+PRIVILEGES\b|\bGRANT\s+ALL\b", upper) and upper.startswith(
                "GRANT"):
            report(args.name, f"{where} grants ALL privileges. {WHY_FIX_ALL_PRIVILEGES}",
                   waivable=False)
        m = re.match(r"^GRANT\s+(?!.*\bON\b)(?P<roles>.+?)\s+TO\s", upper)
        if m:
            roles = [r.strip().strip('"') for r in m.group("roles").split(",")]
            privileged = [r.lower() for r in roles if PRIVILEGED_ROLES.match(r)]
            if privileged:
                report(args.name, f"{where} makes the login a member of "
                       f"{', '.join(privileged)}. {WHY_FIX_PRIVILEGED_ROLE}", waivable=False)
    if "{{expiration}}" not in text or "VALID UNTIL" not in text.upper():
        report(args.name, f"{label}: the creation statements set no VALID UNTIL "
               f"'{{{{expiration}}}}'. {WHY_FIX_NO_EXPIRY}")
    revocation = props.get("revocationStatements")
    if revocation is UNKNOWN:
        return
    revoke_text = " ".join(s for s in (revocation or []) if isinstance(s, str)).upper()
    if not re.search(r"\bDROP\s+(ROLE|USER)\b", revoke_text):
        report(args.name, f"{label}: the revocation statements do not drop the login. "
               f"{WHY_FIX_NO_DROP}")


# --- dynamic-credential-refresh ---------------------------------------------------------------


def dynamic_credential_refresh(args: StackValidationArgs,
                               report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("dynamic-credential-refresh", cfg, report_violation)
    generators, roles, mounts = {}, {}, {}
    for r in args.resources:
        props = plain(r.props)
        if r.resource_type == GENERATOR:
            key = (get(props, "metadata", "namespace"), get(props, "metadata", "name"))
            generators[key] = props
        elif r.resource_type == DB_ROLE:
            roles[(props.get("backend"), props.get("name"))] = props
        elif r.resource_type == VAULT_MOUNT and props.get("type") == "database":
            mounts[props.get("path")] = props
    for r in args.resources:
        if r.resource_type not in EXTERNAL_SECRETS:
            continue
        props = plain(r.props)
        label = resource_label(r.resource_type, r.name)
        spec = as_mapping(props.get("spec"))
        for ref in _generator_refs(spec):
            if ref.get("kind") != "VaultDynamicSecret":
                continue
            namespace = get(props, "metadata", "namespace")
            generator = generators.get((namespace, ref.get("name")))
            ttl = _ttl_of(generator, roles, mounts)
            if ttl is UNKNOWN:
                continue
            if ttl is None:
                report(r.name, f"{label}: the TTL of generator `{ref.get('name')}` cannot be "
                       "found (its VaultDynamicSecret or Vault role is not declared in this "
                       f"stack). {WHY_FIX_NO_GENERATOR}", r.urn)
                continue
            policy = spec.get("refreshPolicy") or "Periodic"
            raw = spec.get("refreshInterval")
            if raw is UNKNOWN or policy is UNKNOWN:
                continue
            interval = go_seconds(raw) if raw is not None else ESO_DEFAULT_REFRESH
            if policy != "Periodic" or not interval:
                report(r.name, f"{label} never fetches a new login (refreshPolicy {policy}, "
                       f"refreshInterval {raw}). "
                       f"{WHY_FIX_NEVER_REFRESHES.format(ttl=human(ttl), half=human(ttl / 2))}",
                       r.urn)
            elif interval * 2 >= ttl:
                shown = raw if raw is not None else "unset (ESO's 1h)"
                report(r.name, f"{label}: refreshInterval {shown} is not under half of the "
                       f"login's TTL ({human(ttl)}). "
                       f"{WHY_FIX_SLOW_REFRESH.format(half=human(ttl / 2))}", r.urn)


def _generator_refs(spec: dict) -> list[dict]:
    refs = []
    for entry in spec.get("dataFrom") or []:
        ref = get(entry, "sourceRef", "generatorRef")
        if isinstance(ref, dict):
            refs.append(ref)
    for entry in spec.get("data") or []:
        ref = get(entry, "sourceRef", "generatorRef")
        if isinstance(ref, dict):
            refs.append(ref)
    return refs


def _ttl_of(generator: dict | None, roles: dict, mounts: dict) -> Any:
    """The default TTL (seconds) of the Vault role a generator reads, UNKNOWN or None."""
    if generator is None:
        return None
    path = get(generator, "spec", "path")
    if path is UNKNOWN:
        return UNKNOWN
    m = re.match(r"^/?(?:v1/)?(?P<mount>.+)/creds/(?P<role>[^/]+)$", str(path or ""))
    if not m:
        return None
    role = roles.get((m.group("mount"), m.group("role")))
    if role is None:
        return None
    if role.get("defaultTtl") is UNKNOWN:
        return UNKNOWN
    ttl = ttl_seconds(role.get("defaultTtl"))
    if not ttl:
        ttl = ttl_seconds((mounts.get(m.group("mount")) or {}).get("defaultLeaseTtlSeconds"))
    return ttl or None


# --- database-creds-least-privilege -----------------------------------------------------------


@for_types(GENERATOR, VAULT_POLICY)
def database_creds_least_privilege(args: ResourceValidationArgs,
                                   report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("database-creds-least-privilege", cfg, report_violation)
    env = environment(cfg)
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    if args.resource_type == GENERATOR:
        if UNKNOWN in (props.get("spec"), get(props, "spec", "provider"),
                       get(props, "spec", "provider", "auth")):
            return
        auth = get(props, "spec", "provider", "auth")
        kubernetes = get(auth, "kubernetes") if isinstance(auth, dict) else None
        if not isinstance(kubernetes, dict) or not isinstance(
                kubernetes.get("serviceAccountRef"), dict):
            used = ", ".join(sorted(auth)) if isinstance(auth, dict) else "none"
            report(args.name, f"{label}: Vault auth is {used}, not Kubernetes auth with a "
                   f"serviceAccountRef. {WHY_FIX_GENERATOR_AUTH}")
        elif kubernetes["serviceAccountRef"].get("namespace"):
            report(args.name, f"{label}: serviceAccountRef names a namespace. "
                   f"{WHY_FIX_GENERATOR_NAMESPACE}")
        return
    owned = owned_policy_rules(args.name, label, props, env, DATABASE_POLICY_SUFFIX, report)
    if owned is None:
        return
    service, rules = owned
    own = re.compile(rf"^{re.escape(env)}-[a-z0-9-]+/creds/{re.escape(service)}(-[a-z0-9-]+)?$")
    for path, caps in rules:
        where = f'{label}: path "{path}"'
        if not own.match(path):
            report(args.name, f"{where} is not one of the service's own creds endpoints. "
                   f"{WHY_FIX_NOT_OWN_CREDS.format(env=env, service=service)}", waivable=False)
            continue
        extra = sorted(set(caps) - {"read"})
        if extra:
            report(args.name, f"{where} grants {', '.join(extra)}. {WHY_FIX_READ_ONLY}",
                   waivable=False)


POLICIES = [
    ResourceValidationPolicy(
        name="dynamic-credential-ttl",
        description="Dynamic database logins expire within the environment's TTL caps.",
        validate=dynamic_credential_ttl,
        config_schema=config_schema({
            "maxDefaultTtlSeconds": {"type": "integer", "minimum": 60, "default": 3600},
            "maxMaxTtlSeconds": {"type": "integer", "minimum": 60, "default": 86400},
        }, waivable=True),
    ),
    ResourceValidationPolicy(
        name="dynamic-credential-statements",
        description="Dynamic database logins get table privileges only, expire with their "
                    "lease and are dropped on revocation.",
        validate=dynamic_credential_statements,
        config_schema=config_schema(waivable=True),
    ),
    StackValidationPolicy(
        name="dynamic-credential-refresh",
        description="ExternalSecrets fed by a VaultDynamicSecret refresh in under half the "
                    "login's TTL.",
        validate=whole_stack(dynamic_credential_refresh),
        config_schema=config_schema(waivable=True),
    ),
    ResourceValidationPolicy(
        name="database-creds-least-privilege",
        description="A service's database policy reads only its own creds endpoints; "
                    "generators sign in as the service's own account.",
        validate=database_creds_least_privilege,
        config_schema=config_schema({
            "environment": {"type": "string", "pattern": DNS_LABEL,
                            "description": "The stack's environment; default: the stack name."},
        }, waivable=True),
    ),
]
