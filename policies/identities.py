"""no-identity-spans-services: builds "identity -> readable secrets" from the plan (Vault
roles -> token policies -> KV paths; IAM roles -> their policy statements -> Secrets Manager
ARNs) and fails any identity that reaches two services' secrets, or one other than its own
service's. (The plan index and owners: isolation_lib.py.)
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

import ownership
from isolation_lib import (
    DEFAULT_VAULT_POLICIES,
    ENVIRONMENT,
    EVERY,
    SECRET_READ_ACTIONS,
    Stack,
    label_of,
    service_of,
    trusted_subjects,
)
from packlib import (
    PolicyParseError,
    as_list,
    as_mapping,
    environment,
    iam_statements,
    parse_vault_policy,
    whole_stack,
)
from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)
from resource_types import (
    IAM_ATTACHMENTS,
    IAM_POLICY,
    IAM_ROLE,
    IAM_ROLE_POLICY,
    SM_SECRET,
    VAULT_K8S_ROLE,
    VAULT_POLICY,
)

# --- no-identity-spans-services ----------------------------------------------------------------


@dataclass
class Identity:
    label: str  # as messages name it
    name: str  # what platformIdentities lists
    urn: str
    # the services whose accounts may use it (EVERY: accounts of any namespace); an account
    # this stack does not declare stands for itself, as `account <namespace>/<name>`
    admits: set[str]
    reads: set[str] = field(default_factory=set)  # services whose secrets it may read

    @property
    def own(self) -> str | None:
        """The one service whose accounts alone may use it, where the plan says so."""
        if len(self.admits) == 1:
            (only,) = self.admits
            return None if only == EVERY or only.startswith("account ") else only
        return None


def identities(stack: Stack) -> list[Identity]:
    """Every identity of the stack with the services whose secrets it can read."""
    return _vault_identities(stack) + _iam_identities(stack)


def _admitted(stack: Stack, namespaces: Any, names: Any) -> set[str]:
    """The services whose accounts (any of `names` in any of `namespaces`) are admitted."""
    if not (isinstance(namespaces, list) and isinstance(names, list)):
        return set()  # not known yet (preview)
    out = set()
    for namespace in namespaces:
        for name in names:
            if not isinstance(namespace, str) or not isinstance(name, str):
                continue
            if _has_glob(namespace) or _has_glob(name) or "?" in namespace + name:
                out.add(EVERY)
                continue
            account = stack.service_account(namespace, name)
            owner = service_of(stack.props[account.urn]) if account else None
            out.add(owner or f"account {namespace}/{name}")
    return out


def _vault_identities(stack: Stack) -> list[Identity]:
    policies: dict[str, list[str]] = {}
    for p in stack.of_type(VAULT_POLICY):
        props = stack.props[p.urn]
        text = props.get("policy")
        if not isinstance(props.get("name"), str) or not isinstance(text, str):
            continue
        try:
            rules = parse_vault_policy(text)
        except PolicyParseError:
            rules = [("*", ["read"])]  # unreadable: assume the worst
        policies[props["name"]] = [path for path, caps in rules
                                   if set(caps) & {"read", "list", "sudo"} and "deny" not in caps]
    out = []
    for role in stack.of_type(VAULT_K8S_ROLE):
        props = stack.props[role.urn]
        identity = Identity(
            label=label_of(role), name=str(props.get("roleName") or role.name), urn=role.urn,
            admits=_admitted(stack, props.get("boundServiceAccountNamespaces"),
                             props.get("boundServiceAccountNames")))
        token_policies = props.get("tokenPolicies")
        for policy in token_policies if isinstance(token_policies, list) else []:
            if not isinstance(policy, str) or policy in DEFAULT_VAULT_POLICIES:
                continue
            for path in policies.get(policy, []):
                owner = ownership.vault_path_owner(path)
                if owner is not None:
                    identity.reads.add(owner)
        out.append(identity)
    return out


def _has_glob(text: str) -> bool:
    return "*" in text or "+" in text


def _iam_identities(stack: Stack) -> list[Identity]:
    documents: dict[str, list[Any]] = {}  # role urn -> policy documents
    # A shard's deploy role, written by the platform stack, reaches its shard's services by
    # design (docs/fleet.md, Per-shard deploy rights; judged by tests/program/
    # test_deploy_rights.py): not an identity this policy judges, and the costliest to judge
    # (each of its secret patterns against every service).
    roles = [r for r in stack.of_type(IAM_ROLE)
             if not ownership.deploy_shard(stack.props[r.urn].get("name"), stack.env)]
    by_key = {}
    for role in roles:
        props = stack.props[role.urn]
        for key in (props.get("name"), props.get("arn"), props.get("id")):
            if isinstance(key, str) and key:
                by_key[key] = role
        inline = props.get("inlinePolicies")
        documents[role.urn] = [i.get("policy") for i in (inline if isinstance(inline, list) else [])
                               if isinstance(i, dict)]
    managed = {stack.props[p.urn].get("arn"): stack.props[p.urn].get("policy")
               for p in stack.of_type(IAM_POLICY) if isinstance(stack.props[p.urn].get("arn"), str)}

    roles_by_urn = {r.urn: r for r in roles}

    def role_of(resource: Any) -> Any | None:
        for dep in resource.property_dependencies.get("role", []):
            if dep.urn in roles_by_urn:
                return roles_by_urn[dep.urn]
        value = stack.props[resource.urn].get("role")
        return by_key.get(value) if isinstance(value, str) else None

    for rp in stack.of_type(IAM_ROLE_POLICY):
        role = role_of(rp)
        if role is not None:
            documents[role.urn].append(stack.props[rp.urn].get("policy"))
    for attachment in stack.of_type(*IAM_ATTACHMENTS):
        role = role_of(attachment)
        arn = stack.props[attachment.urn].get("policyArn")
        if role is not None and isinstance(arn, str) and arn in managed:
            documents[role.urn].append(managed[arn])

    secret_owners = {}
    for s in stack.of_type(SM_SECRET):
        props = stack.props[s.urn]
        tags = as_mapping(props.get("tags"))
        owner = tags.get("name") if isinstance(tags.get("name"), str) else None
        owner = owner or ownership.owner_of_secret_name(str(props.get("name") or ""), stack.env)
        if owner and isinstance(props.get("arn"), str):
            secret_owners[props["arn"]] = owner

    # the stack's services: whose secrets a pattern may reach (by what it matches)
    services = {o for o in (service_of(p) for p in stack.props.values()) if o}
    services |= set(secret_owners.values())
    pattern_owners = ownership.SecretPatternOwners(stack.env, services)
    out = []
    for role in roles:
        props = stack.props[role.urn]
        identity = Identity(label=label_of(role), name=role.name, urn=role.urn,
                            admits=_irsa_admits(stack, props.get("assumeRolePolicy")))
        for document in documents[role.urn]:
            identity.reads |= _readable_services(document, secret_owners, pattern_owners)
        out.append(identity)
    return out


def _irsa_admits(stack: Stack, trust: Any) -> set[str]:
    """The services whose accounts a role's trust policy admits through web identity (a role
    trusted only by an AWS service, as the rotation function's, admits no account)."""
    try:
        statements = iam_statements(trust) or []
    except PolicyParseError:
        return {EVERY}
    if not any(s.get("Effect") == "Allow" and isinstance(s.get("Principal"), dict)
               and "Service" not in s["Principal"] for s in statements):
        return set()
    out = set()
    for subject in trusted_subjects(trust) or set():
        m = re.fullmatch(r"system:serviceaccount:([^:]+):([^:]+)", subject)
        out |= _admitted(stack, [m.group(1)], [m.group(2)]) if m else {EVERY}
    return out


def _reads_secrets(actions: list[str]) -> bool:
    for action in (a.lower() for a in actions):
        if action in SECRET_READ_ACTIONS or action == "*":
            return True
        if action.startswith("secretsmanager:") and _has_glob(action) and any(
                fnmatch.fnmatchcase(r, action) for r in SECRET_READ_ACTIONS):
            return True
    return False


def _readable_services(document: Any, secret_owners: dict[str, str],
                       pattern_owners: ownership.SecretPatternOwners) -> set[str]:
    try:
        statements = iam_statements(document)
    except PolicyParseError:
        return {EVERY}
    found: set[str] = set()
    for s in statements or []:
        if s.get("Effect") != "Allow":
            continue
        if "NotAction" in s or "NotResource" in s:
            found.add(EVERY)
            continue
        if not _reads_secrets([str(a) for a in as_list(s.get("Action"))]):
            continue
        for resource in as_list(s.get("Resource")):
            found |= _secret_arn_owners(str(resource), secret_owners, pattern_owners)
    return found


def _secret_arn_owners(resource: str, secret_owners: dict[str, str],
                       pattern_owners: ownership.SecretPatternOwners) -> set[str]:
    """Whose secrets an IAM resource reaches: a secret of the plan by its ARN, else every
    service whose secrets the pattern can match (ownership.SecretPatternOwners: judged by
    what the glob matches, not by its prefix)."""
    if resource in secret_owners:
        return {secret_owners[resource]}
    return pattern_owners(resource)


def _own_login(props: dict, env: str) -> bool:
    shard = ownership.deploy_login_shard(props.get("roleName"), env)
    return shard is not None and props.get("tokenPolicies") == [
        ownership.deploy_policy_name(ownership.shard_stack_name(env, shard))]


def no_identity_spans_services(args: StackValidationArgs,
                               report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    stack = Stack(environment(cfg), list(args.resources))
    listed = {entry["identity"] for entry in cfg.get("platformIdentities") or []}
    for identity in identities(stack):
        reads = identity.reads
        if identity.name in listed or not reads:
            continue
        if _own_login(stack.props[identity.urn], stack.env):
            # a shard deployer's Vault login granting its own deploy policy (the platform
            # stack's): it reaches its shard's services by design, as its deploy role (left out
            # of identities); vault-least-privilege holds the login to that policy
            continue
        shown = "every service's secrets" if EVERY in reads else \
            f"the secrets of {', '.join(sorted(reads))}"
        admits = identity.admits
        if EVERY in reads or len(reads) > 1:
            report_violation(
                f"{identity.label} can read {shown}. {WHY_FIX_SPANS}", identity.urn)
        elif EVERY in admits or len(admits) > 1:
            users = ("service accounts of any namespace" if EVERY in admits else
                     "the service accounts of " + ", ".join(sorted(admits)))
            report_violation(
                f"{identity.label} may be used by {users} and can read {shown}. "
                f"{WHY_FIX_SHARED}", identity.urn)
        elif identity.own is not None and reads != {identity.own}:
            report_violation(
                f"{identity.label} belongs to service {identity.own} (its service account) but "
                f"can read {shown}. {WHY_FIX_NOT_OWN}", identity.urn)


WHY_FIX_SPANS = ("Why: one identity that reaches several services' secrets lets whoever holds "
                 "it read them all, so one service could read another's. Fix: give each "
                 "service its own role, bound to its own service account, with its own secrets "
                 "only.")
WHY_FIX_SHARED = ("Why: every account it admits reads those secrets, so one service could read "
                  "another's. Fix: bind (or trust) only the account of the service whose "
                  "secrets it reads.")
WHY_FIX_NOT_OWN = ("Why: a service's identity must read its own secrets only. Fix: grant the "
                   "service's own paths or ARNs.")

IDENTITY_SCHEMA = {
    "type": "array",
    "default": [],
    "description": "Reviewed platform identities allowed to reach several services' secrets "
                   "(none by default): the role's resource name (IAM) or role name (Vault).",
    "items": {"type": "object", "additionalProperties": False,
              "required": ["identity", "reason"],
              "properties": {"identity": {"type": "string", "minLength": 1},
                             "reason": {"type": "string", "minLength": 10}}},
}

POLICIES = [
    StackValidationPolicy(
        name="no-identity-spans-services",
        description="No Vault role or IAM role can read more than one service's secrets, or "
                    "another service's than its own.",
        validate=whole_stack(no_identity_spans_services),
        config_schema=PolicyConfigSchema(
            properties={"environment": ENVIRONMENT, "platformIdentities": IDENTITY_SCHEMA},
            required=["platformIdentities"]),
    ),
]
