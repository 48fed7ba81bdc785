"""Certificates: cert-manager Certificates and Issuers, Vault PKI roles and sign policies.

- certificate-lifetime: short certificates renewed early (duration cap, renewBefore >= a
  fraction of the duration), PKI roles that cannot issue longer ones.
- certificate-private-key: key algorithm and size floors, a new key on every renewal.
- certificate-names: no wildcard names where the environment forbids them; PKI roles that
  allow only the names they list (no any-name, no subdomains, no globs).
- pki-least-privilege: a service's Vault policy may only sign with its own PKI role, and its
  Issuer signs in as the service's own account through Kubernetes auth.
"""

from __future__ import annotations

import re

from contract import DNS_LABEL
from credentials_lib import go_seconds, human, owned_policy_rules, ttl_seconds
from ownership import EVERY, PKI_POLICY_SUFFIX, cluster_name_namespace, issuer_name
from packlib import (
    UNKNOWN,
    Reporter,
    as_mapping,
    config_schema,
    environment,
    for_types,
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
from resource_types import CERTIFICATE, ISSUERS, PKI_ROLE, VAULT_POLICY

CERT_MANAGER_DEFAULT_DURATION = 90 * 24 * 3600  # cert-manager's default when unset
SIGN_CAPABILITIES = {"create", "update"}
WHY_FIX_PKI_MAX_TTL = ("Why: the role could sign certificates longer than this environment "
                       "allows, whatever the Certificate asks for. Fix: set "
                       "platform.pki.leaf_max_ttl to {limit} or less.")
WHY_FIX_DURATION = ("Why: a stolen key is useful until its certificate expires, and short "
                    "certificates keep renewal exercised. Fix: set tls.duration to {limit} or "
                    "less.")
WHY_FIX_RENEW_BEFORE = ("Why: a failed renewal needs time to be noticed and fixed before the "
                        "certificate expires. Fix: set tls.renew_before to {minimum} or more.")
WHY_FIX_WEAK_KEY = "Why: weaker keys can be broken. Fix: raise {field}."
# certificate-names: each PKI role flag that widens the names a role signs, and why
NAME_FLAGS_WHY = {
    "allowAnyName": "it signs any name at all",
    "allowSubdomains": "it signs every name below the allowed ones",
    "allowLocalhost": "it signs localhost",
}
WHY_FIX_NAME_FLAG = ("Why: {why}, so one service's issuer could get another service's names. "
                     "Fix: set it to false; list the service's names in allowed_domains.")
WHY_FIX_NOT_OWN_SIGN = ("Why: a `{env}-{service}-pki` policy may only sign with the service's "
                        "role (`<{env} pki mount>/sign/{service}`); issue, root or other roles' "
                        "paths would let it get certificates for other names or keys it does not "
                        "hold. Fix: remove the rule.")
WHY_FIX_ANY_KEY_TYPE = ("Why: the role would sign CSRs with keys of any type and size. Fix: set "
                        "key_type ec (or rsa) and key_bits.")
WHY_FIX_KEY_KEPT = ("Why: with Never a renewed certificate keeps the old key, so a leaked key "
                    "outlives every renewal. Fix: set privateKey.rotationPolicy: Always.")
WHY_FIX_WILDCARD_NAME = ("Why: its key would impersonate every name below it, and it is "
                         "forbidden in this environment. Fix: list each name in "
                         "tls.extra_dns_names.")
WHY_FIX_WILDCARDS_FORBIDDEN = ("Why: wildcard certificates are forbidden in this environment. "
                               "Fix: set it to false.")
WHY_FIX_SIGN_CAPABILITIES = ('Why: signing needs only create/update. Fix: use capabilities = '
                             '["create", "update"].')
WHY_FIX_CLUSTER_ISSUER = ("Why: any namespace could then get certificates through one shared "
                          "identity. Fix: use a namespaced Issuer per service, signed in as the "
                          "service's own account.")
WHY_FIX_ISSUE_PATH = ("Why: `issue` makes Vault generate (and see) the private key, and other "
                      "endpoints are not per-service roles. Fix: use the service's sign path.")
WHY_FIX_ISSUER_AUTH = ("Why: a static token or AppRole secret in the namespace can be copied; a "
                       "bound, short-lived token of the service's own account cannot be used "
                       "elsewhere. Fix: use auth.kubernetes.serviceAccountRef.")


# --- certificate-lifetime ---------------------------------------------------------------------


@for_types(PKI_ROLE, CERTIFICATE)
def certificate_lifetime(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("certificate-lifetime", cfg, report_violation)
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    limit = int(cfg["maxDurationHours"]) * 3600  # protobuf hands config integers as floats
    divisor = int(cfg["renewBeforeDivisor"])
    if args.resource_type == PKI_ROLE:
        max_ttl = ttl_seconds(props.get("maxTtl"))
        if props.get("maxTtl") is UNKNOWN:
            return
        if not max_ttl or max_ttl > limit:
            shown = human(max_ttl) if max_ttl else "not set (the mount's maximum applies)"
            report(args.name, f"{label}: max_ttl is {shown}; at most "
                   f"{human(limit)} allowed. {WHY_FIX_PKI_MAX_TTL.format(limit=human(limit))}")
        return
    if props.get("spec") is UNKNOWN:  # a CERTIFICATE
        return
    spec = as_mapping(props.get("spec"))
    raw = spec.get("duration")
    if raw is UNKNOWN:
        return
    duration = go_seconds(raw) if raw is not None else CERT_MANAGER_DEFAULT_DURATION
    if duration is None:
        report(args.name, f"{label}: spec.duration is not a Go duration. Why: the lifetime "
               "cannot be checked. Fix: write it in hours, e.g. `720h`.", waivable=False)
        return
    if duration > limit:
        shown = human(duration) + ("" if raw is not None else " (unset: cert-manager's 90 days)")
        report(args.name, f"{label}: spec.duration is {shown}; at most {human(limit)} allowed "
               f"here. {WHY_FIX_DURATION.format(limit=human(limit))}")
    before = spec.get("renewBefore")
    percentage = spec.get("renewBeforePercentage")
    if before is UNKNOWN or percentage is UNKNOWN:
        return
    if before is not None:
        renew = go_seconds(before)
    elif isinstance(percentage, int | float):
        renew = duration * percentage / 100
    else:
        renew = None  # cert-manager then renews at 2/3 of the lifetime: say it explicitly
    if renew is None or renew * divisor < duration:
        shown = f"renewBefore is {before}" if before is not None else (
            f"renewBeforePercentage is {percentage:g}" if isinstance(percentage, int | float)
            else "neither renewBefore nor renewBeforePercentage is set")
        report(args.name, f"{label}: {shown}; renewal must start at least 1/{divisor} of the "
               f"duration ({human(duration / divisor)}) before expiry. "
               f"{WHY_FIX_RENEW_BEFORE.format(minimum=human(-(-duration // divisor)))}")


# --- certificate-private-key -----------------------------------------------------------------


@for_types(PKI_ROLE, CERTIFICATE)
def certificate_private_key(args: ResourceValidationArgs,
                            report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("certificate-private-key", cfg, report_violation)
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    floors = {"RSA": int(cfg["minRsaBits"]), "ECDSA": int(cfg["minEcdsaBits"])}
    if args.resource_type == PKI_ROLE:
        key_type, bits = props.get("keyType", "rsa"), props.get("keyBits")
        if key_type is UNKNOWN or bits is UNKNOWN:
            return
        if key_type == "any":
            report(args.name, f"{label}: key_type is any. {WHY_FIX_ANY_KEY_TYPE}")
            return
        algorithm = {"ec": "ECDSA", "rsa": "RSA"}.get(str(key_type))
        if algorithm and isinstance(bits, int | float) and bits and bits < floors[algorithm]:
            report(args.name, f"{label}: key_bits {int(bits)} for {key_type}; at least "
                   f"{floors[algorithm]} required. {WHY_FIX_WEAK_KEY.format(field='key_bits')}")
        return
    spec = as_mapping(props.get("spec"))
    if props.get("spec") is UNKNOWN or spec.get("privateKey") is UNKNOWN:
        return
    key = as_mapping(spec.get("privateKey"))
    algorithm = key.get("algorithm") or "RSA"  # cert-manager's default
    size = key.get("size") or {"RSA": 2048, "ECDSA": 256}.get(algorithm)
    if algorithm is UNKNOWN or size is UNKNOWN:
        algorithm, size = None, None
    allowed = cfg["allowedAlgorithms"]
    if algorithm is None:
        pass
    elif algorithm not in allowed:
        report(args.name, f"{label}: privateKey.algorithm is {algorithm}; allowed here: "
               f"{', '.join(allowed)}. Fix: set tls.key_algorithm to one of them.")
    elif algorithm in floors and isinstance(size, int | float) and size < floors[algorithm]:
        report(args.name, f"{label}: a {algorithm} key of {int(size)} bits; at least "
               f"{floors[algorithm]} required. "
               f"{WHY_FIX_WEAK_KEY.format(field='tls.key_size')}")
    if key.get("rotationPolicy") not in ("Always", UNKNOWN):
        shown = key.get("rotationPolicy") or "unset"
        report(args.name, f"{label}: privateKey.rotationPolicy is {shown}. {WHY_FIX_KEY_KEPT}")


# --- certificate-names -------------------------------------------------------------------------


@for_types(CERTIFICATE, PKI_ROLE)
def certificate_names(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("certificate-names", cfg, report_violation)
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    wildcards = cfg["allowWildcards"]
    if args.resource_type == CERTIFICATE:
        spec = as_mapping(props.get("spec"))
        dns = spec.get("dnsNames")
        names = [n for n in dns if isinstance(n, str)] if isinstance(dns, list) else []
        if isinstance(spec.get("commonName"), str):
            names.append(spec["commonName"])
        if not wildcards:
            for name in dict.fromkeys(n for n in names if "*" in n):
                report(args.name, f"{label}: `{name}` is a wildcard name. "
                       f"{WHY_FIX_WILDCARD_NAME}")
        return
    for flag, why in NAME_FLAGS_WHY.items():
        if props.get(flag) is True or (flag == "allowLocalhost" and flag not in props):
            report(args.name, f"{label}: {flag} is on{' (the default)' if flag not in props else ''}."
                   f" {WHY_FIX_NAME_FLAG.format(why=why)}")
    if not wildcards:
        for flag in ("allowGlobDomains", "allowWildcardCertificates"):
            if props.get(flag) is True or (flag == "allowWildcardCertificates"
                                           and flag not in props):
                report(args.name, f"{label}: {flag} is on"
                       f"{' (the default)' if flag not in props else ''}. "
                       f"{WHY_FIX_WILDCARDS_FORBIDDEN}")
    domains = props.get("allowedDomains")
    if domains is not UNKNOWN and not domains:
        report(args.name, f"{label}: allowed_domains is empty. Why: a role must name what it "
               "may sign. Fix: list the service's DNS names.")


# --- pki-names-owned -------------------------------------------------------------------------

WHY_FIX_FOREIGN_CLUSTER_NAME = (
    "Why: a cluster name belongs to the services of its namespace; a role that may sign it "
    "lets this service impersonate them. Fix: remove it from the service's `tls` names (its own "
    "namespace's names only).")
WHY_FIX_SHARED_NAME = (
    "Why: two services that may sign one name can each impersonate the other. Fix: keep the "
    "name in one service's `tls` names (a name outside the cluster needs the platform's grant).")


def pki_names_owned(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Judged by what each PKI role may sign: a cluster name (`<x>.<ns>.svc`) only in its own
    service's namespace (the namespace of the service's Certificate), and no name in two
    services' roles. Which names outside the cluster a service is granted is the platform's
    decision in Pulumi.yaml, checked by validate (configplane/ownership.py)."""
    namespaces: dict[str, str] = {}  # service -> the namespace its Certificate lives in
    roles = []
    for r in args.resources:
        props = plain(r.props)
        if r.resource_type == CERTIFICATE:
            spec, meta = as_mapping(props.get("spec")), as_mapping(props.get("metadata"))
            issuer = as_mapping(spec.get("issuerRef")).get("name")
            if isinstance(issuer, str) and isinstance(meta.get("namespace"), str):
                namespaces[issuer] = meta["namespace"]
        elif r.resource_type == PKI_ROLE and isinstance(props.get("name"), str):
            domains = props.get("allowedDomains")
            roles.append((r, props["name"], [d for d in domains if isinstance(d, str)]
                          if isinstance(domains, list) else []))
    signers: dict[str, set[str]] = {}
    for r, service, domains in roles:
        own = namespaces.get(issuer_name(service))
        label = resource_label(r.resource_type, r.name)
        for domain in domains:
            signers.setdefault(domain, set()).add(service)
            where = cluster_name_namespace(domain)
            if where is not None and (where == EVERY or where != own):
                report_violation(
                    f"{label}: may sign `{domain}`, a name of namespace "
                    f"{'(any)' if where == EVERY else where}, not of service {service}'s "
                    f"({own or 'none in this stack'}). {WHY_FIX_FOREIGN_CLUSTER_NAME}", r.urn)
    for r, service, domains in roles:
        for domain in domains:
            others = sorted(signers[domain] - {service})
            if others:
                report_violation(
                    f"{resource_label(r.resource_type, r.name)}: may sign `{domain}`, as "
                    f"{', '.join(others)} may. {WHY_FIX_SHARED_NAME}", r.urn)


# --- pki-least-privilege ----------------------------------------------------------------------


@for_types(ISSUERS, VAULT_POLICY)
def pki_least_privilege(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("pki-least-privilege", cfg, report_violation)
    env = environment(cfg)
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    if args.resource_type in ISSUERS:
        _check_issuer(args.name, label, args.resource_type, props, report)
        return
    owned = owned_policy_rules(args.name, label, props, env, PKI_POLICY_SUFFIX, report)
    if owned is None:
        return
    service, rules = owned
    own = re.compile(rf"^{re.escape(env)}-[a-z0-9-]*pki[a-z0-9-]*/sign/{re.escape(service)}$")
    for path, caps in rules:
        where = f'{label}: path "{path}"'
        if not own.match(path):
            report(args.name, f"{where} is not the service's own sign endpoint. "
                   f"{WHY_FIX_NOT_OWN_SIGN.format(env=env, service=service)}", waivable=False)
            continue
        extra = sorted(set(caps) - SIGN_CAPABILITIES)
        if extra:
            report(args.name, f"{where} grants {', '.join(extra)}. {WHY_FIX_SIGN_CAPABILITIES}",
                   waivable=False)


def _check_issuer(name: str, label: str, resource_type: str, props: dict,
                  report: Reporter) -> None:
    spec = as_mapping(props.get("spec"))
    vault_spec = spec.get("vault")
    if not isinstance(vault_spec, dict):
        return
    if resource_type.endswith(":ClusterIssuer"):
        report(name, f"{label} signs with Vault for every namespace. {WHY_FIX_CLUSTER_ISSUER}")
        return
    path = vault_spec.get("path")
    if isinstance(path, str) and not re.match(r"^[^*]+/sign/[a-z0-9][-a-z0-9]*$", path):
        report(name, f"{label}: vault.path `{path}` is not a `<mount>/sign/<role>` endpoint. "
               f"{WHY_FIX_ISSUE_PATH}")
    if vault_spec.get("auth") is UNKNOWN:
        return
    auth = as_mapping(vault_spec.get("auth"))
    kubernetes = auth.get("kubernetes") if isinstance(auth.get("kubernetes"), dict) else None
    if kubernetes is None or not isinstance(kubernetes.get("serviceAccountRef"), dict):
        used = ", ".join(sorted(auth)) or "none"
        report(name, f"{label}: Vault auth is {used}, not Kubernetes auth with a "
               f"serviceAccountRef. {WHY_FIX_ISSUER_AUTH}")


POLICIES = [
    StackValidationPolicy(
        name="pki-names-owned",
        description="A PKI role signs cluster names of its own service's namespace only, and no "
                    "name two services' roles share.",
        validate=whole_stack(pki_names_owned),
        config_schema=config_schema({}, waivable=False),
    ),
    ResourceValidationPolicy(
        name="certificate-lifetime",
        description="Certificates are short-lived and renewed early; PKI roles cannot issue "
                    "longer ones.",
        validate=certificate_lifetime,
        config_schema=config_schema({
            "maxDurationHours": {"type": "integer", "minimum": 1, "default": 2160},
            "renewBeforeDivisor": {"type": "integer", "minimum": 2, "default": 3},
        }, waivable=True),
    ),
    ResourceValidationPolicy(
        name="certificate-private-key",
        description="Certificate keys meet the algorithm and size floors and are replaced on "
                    "every renewal.",
        validate=certificate_private_key,
        config_schema=config_schema({
            "minRsaBits": {"type": "integer", "minimum": 2048, "default": 2048},
            "minEcdsaBits": {"type": "integer", "minimum": 256, "default": 256},
            "allowedAlgorithms": {"type": "array", "default": ["ECDSA", "RSA", "Ed25519"],
                                  "items": {"enum": ["ECDSA", "RSA", "Ed25519"]}},
        }, waivable=True),
    ),
    ResourceValidationPolicy(
        name="certificate-names",
        description="Certificates and PKI roles name exactly the service's DNS names; no "
                    "wildcards where forbidden.",
        validate=certificate_names,
        config_schema=config_schema({
            "allowWildcards": {"type": "boolean", "default": False},
        }, waivable=True),
    ),
    ResourceValidationPolicy(
        name="pki-least-privilege",
        description="A service's PKI policy signs only with its own role; its Issuer signs in "
                    "as the service's own account.",
        validate=pki_least_privilege,
        config_schema=config_schema({
            "environment": {"type": "string", "pattern": DNS_LABEL,
                            "description": "The stack's environment; default: the stack name."},
        }, waivable=True),
    ),
]
