"""Per-service isolation of secrets: who can read what, over the whole stack.

Two stack policies:

- `secret-stores-per-service`: no ClusterSecretStore; every SecretStore signs in as the
  service account of its own namespace's service (Vault Kubernetes auth with a role bound to
  exactly that account; Secrets Manager through IRSA with a role trusted for exactly that
  account); every ExternalSecret uses its own service's stores.
- `no-identity-spans-services`: builds "identity -> readable secrets" from the plan (Vault
  roles -> token policies -> KV paths; IAM roles -> their policy statements -> Secrets
  Manager ARNs) and fails any identity that reaches two services' secrets, or one other than
  its own service's.

Owners are read from the names configplane gives secrets (the parsing is configplane/refs.py,
the same file the program validates refs with): a KV path `<mount>/data/<service>/...`, a
Secrets Manager name `configplane/<env>/<service>/...`. A glob that could match several
services counts as every service.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import refs
from contract import IRSA_ROLE_ANNOTATION as ROLE_ARN_ANNOTATION
from contract import SERVICE_LABEL as NAME_LABEL
from packlib import (
    ENVIRONMENT_PROPERTY,
    UNKNOWN,
    PolicyParseError,
    as_list,
    environment,
    get,
    iam_statements,
    parse_vault_policy,
    plain,
    resource_label,
)
from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)
from resource_types import ESO_PREFIX as ESO
from resource_types import (
    IAM_ATTACHMENTS,
    IAM_POLICY,
    IAM_ROLE,
    IAM_ROLE_POLICY,
    SERVICE_ACCOUNT,
    SM_SECRET,
    VAULT_K8S_ROLE,
    VAULT_POLICY,
)

SECRET_STORE = "SecretStore"
CLUSTER_SECRET_STORE = "ClusterSecretStore"
EXTERNAL_SECRET = "ExternalSecret"
EVERY = "*"  # "every service": a glob that is not limited to one service
KV_KINDS = {"data", "metadata", "subkeys", "delete", "undelete", "destroy"}
SECRET_READ_ACTIONS = {"secretsmanager:getsecretvalue", "secretsmanager:batchgetsecretvalue"}
DEFAULT_VAULT_POLICIES = {"default"}


def _kind(resource_type: str) -> str | None:
    """`SecretStore`, `ClusterSecretStore` or `ExternalSecret` for ESO types (any version)."""
    if not resource_type.startswith(ESO):
        return None
    return resource_type.rsplit(":", 1)[-1]


def _label(r: Any) -> str:
    return resource_label(r.resource_type, r.name)


def _service_of(props: dict) -> str | None:
    value = get(props, "metadata", "labels", NAME_LABEL)
    return value if isinstance(value, str) else None


@dataclass
class Stack:
    """The parts of the plan isolation is decided on, indexed once."""

    env: str
    resources: list[Any]
    props: dict[str, dict] = field(default_factory=dict)  # urn -> plain props

    def __post_init__(self) -> None:
        self.by_type: dict[str, list[Any]] = {}
        self._accounts: dict[tuple[Any, Any], Any] = {}
        self._vault_roles: dict[Any, Any] = {}
        self._iam_roles: dict[Any, Any] = {}
        for r in self.resources:
            props = self.props[r.urn] = plain(r.props)
            self.by_type.setdefault(r.resource_type, []).append(r)
            if r.resource_type == SERVICE_ACCOUNT:
                meta = props.get("metadata") if isinstance(props.get("metadata"), dict) else {}
                key = _key(meta.get("namespace"), meta.get("name"))
                if key is not None:
                    self._accounts.setdefault(key, r)
            elif r.resource_type == VAULT_K8S_ROLE:
                key = _key(props.get("roleName"))
                if key is not None:
                    self._vault_roles.setdefault(key, r)
            elif r.resource_type == IAM_ROLE:
                for key in (props.get("arn"), props.get("name")):
                    if isinstance(key, str) and key:
                        self._iam_roles.setdefault(key, r)

    def of_type(self, *types: str) -> Iterable[Any]:
        return (r for t in types for r in self.by_type.get(t, []))

    def of_kind(self, kind: str) -> Iterable[Any]:
        return (r for t, rs in self.by_type.items() if _kind(t) == kind for r in rs)

    def service_account(self, namespace: Any, name: Any) -> Any | None:
        return self._accounts.get(_key(namespace, name))

    def vault_role(self, role_name: Any) -> Any | None:
        return self._vault_roles.get(_key(role_name))

    def iam_role(self, arn: Any) -> Any | None:
        """By ARN, or (in preview, before the ARN is known) by the name the ARN ends with."""
        if not isinstance(arn, str):
            return None
        if arn in self._iam_roles:
            return self._iam_roles[arn]
        kind, _, path = arn.rpartition(":")[2].partition("/")
        return self._iam_roles.get(path.rsplit("/", 1)[-1]) if kind == "role" else None


def _key(*parts: Any) -> tuple[str, ...] | None:
    """A lookup key of plain strings (unknowns and missing values match nothing)."""
    return tuple(parts) if all(isinstance(p, str) for p in parts) else None


# --- secret-stores-per-service -----------------------------------------------------------------


def secret_stores_per_service(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    stack = Stack(environment(args.get_config()), list(args.resources))
    for r in stack.of_kind(CLUSTER_SECRET_STORE):
        report_violation(
            f"{_label(r)} is cluster-wide. Why: an ExternalSecret in any namespace it admits "
            "can read every secret its one identity reaches, so one service could read "
            "another's. Fix: declare a namespaced SecretStore in each service's namespace that "
            "signs in as that service's own service account.", r.urn)
    stores: dict[tuple[Any, Any], Any] = {}
    for r in stack.of_kind(SECRET_STORE):
        meta = stack.props[r.urn].get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        key = _key(meta.get("namespace"), meta.get("name"))
        if key is not None:
            stores[key] = r
        for problem in _store_problems(stack, r):
            report_violation(f"{_label(r)} {problem}", r.urn)
    for r in stack.of_kind(EXTERNAL_SECRET):
        for problem in _external_secret_problems(stack, r, stores):
            report_violation(f"{_label(r)} {problem}", r.urn)


def _store_problems(stack: Stack, store: Any) -> list[str]:
    props = stack.props[store.urn]
    namespace = get(props, "metadata", "namespace")
    service = _service_of(props)
    provider = get(props, "spec", "provider", default={})
    if UNKNOWN in (namespace, provider) or not isinstance(provider, dict):
        return []
    if not service:
        return [f"carries no {NAME_LABEL} label. Why: without it the store cannot be tied "
                "to the one service whose identity it must use. Fix: label it with its service."]
    problems = []
    for backend, config in provider.items():
        if not isinstance(config, dict):
            continue
        if backend == "vault":
            problems += _vault_store_problems(stack, namespace, service, config)
        elif backend == "aws":
            problems += _aws_store_problems(stack, namespace, service, config)
        else:
            problems.append(f"uses provider {backend}, whose identity this pack cannot check. "
                            "Fix: use the vault or aws provider with the service's own account.")
    return problems


def _own_account_problems(stack: Stack, namespace: Any, service: str, ref: Any,
                          where: str) -> tuple[list[str], Any | None]:
    if not isinstance(ref, dict) or not ref.get("name"):
        return [f"{where} names no service account. Why: the operator would then sign in "
                "with its own identity, shared by every namespace. Fix: set "
                f"{where}.name to the service's own account."], None
    if ref.get("namespace") not in (None, namespace):
        return [f"{where} names an account in another namespace. Why: a store must sign in as "
                "an account of its own namespace. Fix: drop the namespace."], None
    account = stack.service_account(namespace, ref.get("name"))
    if account is None:
        return [f"{where} names account {ref.get('name')}, which this stack does not declare "
                f"in namespace {namespace}. Fix: use the service's own account."], None
    owner = _service_of(stack.props[account.urn])
    if owner != service:
        return [f"{where} signs in as account {ref.get('name')} of service {owner}, not of "
                f"its own service {service}. Why: it would read with the other service's "
                "rights. Fix: use the service's own account."], None
    return [], account


def _vault_store_problems(stack: Stack, namespace: Any, service: str, config: dict) -> list[str]:
    auth = config.get("auth")
    if auth is UNKNOWN:
        return []
    kubernetes = auth.get("kubernetes") if isinstance(auth, dict) else None
    if not isinstance(kubernetes, dict) or set(auth) != {"kubernetes"}:
        return ["does not sign in to Vault with Kubernetes auth alone (spec.provider.vault.auth"
                ".kubernetes). Why: a token, AppRole or other shared credential is one identity "
                "for whoever uses the store. Fix: use Kubernetes auth as the service's account "
                "and role."]
    where = "spec.provider.vault.auth.kubernetes.serviceAccountRef"
    problems, account = _own_account_problems(stack, namespace, service,
                                              kubernetes.get("serviceAccountRef"), where)
    role_name = kubernetes.get("role")
    if role_name is UNKNOWN or account is None:
        return problems
    role = stack.vault_role(role_name)
    if role is None:
        return problems + [f"signs in with Vault role {role_name}, which this stack does not "
                           "declare. Fix: use the service's own role."]
    role_props = stack.props[role.urn]
    names = role_props.get("boundServiceAccountNames")
    namespaces = role_props.get("boundServiceAccountNamespaces")
    if UNKNOWN in (names, namespaces):
        return problems
    account_name = get(stack.props[account.urn], "metadata", "name")
    if names != [account_name] or namespaces != [namespace]:
        problems.append(f"signs in with Vault role {role_name}, which is not bound to exactly "
                        f"account {account_name} in {namespace}. Why: a role several accounts "
                        "may use is one identity for all of them. Fix: use the service's own "
                        "role (bound to its account and namespace only).")
    return problems


def _aws_store_problems(stack: Stack, namespace: Any, service: str, config: dict) -> list[str]:
    auth = config.get("auth")
    if auth is UNKNOWN:
        return []
    jwt = auth.get("jwt") if isinstance(auth, dict) else None
    if not isinstance(jwt, dict) or set(auth) != {"jwt"}:
        return ["does not authenticate to AWS as a service account (spec.provider.aws.auth.jwt)."
                " Why: without it the operator uses its own credentials or static keys, one "
                "identity for every namespace. Fix: use auth.jwt.serviceAccountRef with the "
                "service's own account (IRSA)."]
    problems = []
    if config.get("role"):
        problems.append("assumes an extra role (spec.provider.aws.role). Why: the role named "
                        "there is not tied to the service account. Fix: remove it; the "
                        "account's eks.amazonaws.com/role-arn annotation names the role.")
    where = "spec.provider.aws.auth.jwt.serviceAccountRef"
    more, account = _own_account_problems(stack, namespace, service, jwt.get("serviceAccountRef"),
                                          where)
    problems += more
    if account is None:
        return problems
    meta = stack.props[account.urn].get("metadata") or {}
    role_arn = get(meta, "annotations", ROLE_ARN_ANNOTATION)
    if role_arn is UNKNOWN:
        return problems
    role = stack.iam_role(role_arn)
    if role is None:
        return problems + [f"signs in as account {meta.get('name')}, whose "
                           f"{ROLE_ARN_ANNOTATION} annotation names no IAM role of this stack. "
                           "Fix: annotate the account with its service's own role's ARN."]
    subjects = _trusted_subjects(stack.props[role.urn].get("assumeRolePolicy"))
    expected = refs.service_account_subject(namespace, meta.get("name"))
    if subjects is not None and subjects != {expected}:
        problems.append(f"reads through {_label(role)}, whose trust policy does not admit "
                        f"exactly {expected}. Why: any other subject it admits can read the "
                        "same secrets. Fix: trust only the service's own account "
                        "(StringEquals on <issuer>:sub).")
    return problems


def _trusted_subjects(document: Any) -> set[str] | None:
    """The web-identity subjects a trust policy admits (a glob as written); None if unknown."""
    try:
        statements = iam_statements(document)
    except PolicyParseError:
        return {EVERY}
    if statements is None:
        return None
    subjects: set[str] = set()
    for s in statements:
        if s.get("Effect") != "Allow":
            continue
        actions = {str(a).lower() for a in as_list(s.get("Action"))}
        if not actions & {"sts:assumerolewithwebidentity", "sts:*", "*"}:
            subjects.add(EVERY)  # trusted some other way: not only by account tokens
            continue
        found = False
        condition = s.get("Condition")
        for operator, conditions in (condition.items() if isinstance(condition, dict) else ()):
            for key, value in (conditions.items() if isinstance(conditions, dict) else ()):
                if isinstance(key, str) and key.endswith(":sub"):
                    found = True
                    glob = "Like" in operator
                    for v in as_list(value):
                        subjects.add(EVERY if glob and ("*" in v or "?" in v) else str(v))
        if not found:
            subjects.add(EVERY)
    return subjects


def _external_secret_problems(stack: Stack, external: Any, stores: dict) -> list[str]:
    props = stack.props[external.urn]
    namespace = get(props, "metadata", "namespace")
    service = _service_of(props)
    spec = props.get("spec")
    if UNKNOWN in (namespace, spec) or not isinstance(spec, dict):
        return []
    refs_used = [("spec.secretStoreRef", spec.get("secretStoreRef"))]
    for group in ("data", "dataFrom"):
        entries = spec.get(group)
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            ref = get(entry, "sourceRef", "storeRef")
            if ref is not None:
                refs_used.append((f"spec.{group}[{i}].sourceRef.storeRef", ref))
    problems = []
    for where, ref in refs_used:
        if ref is None or ref is UNKNOWN or not isinstance(ref, dict):
            continue
        if ref.get("kind", SECRET_STORE) != SECRET_STORE:
            problems.append(f"{where} uses a {ref.get('kind')}. Why: only a namespaced "
                            "SecretStore signs in as the namespace's own service. Fix: use "
                            "kind SecretStore (the service's own store).")
            continue
        name = ref.get("name")
        if name is UNKNOWN:
            continue
        store = stores.get(_key(namespace, name))
        if store is None:
            problems.append(f"{where} names store {name}, which this stack does not declare in "
                            f"namespace {namespace}. Fix: use the service's own store.")
        elif _service_of(stack.props[store.urn]) != service:
            problems.append(f"{where} uses store {name} of service "
                            f"{_service_of(stack.props[store.urn])}, not its own ({service}). "
                            "Why: it would read the other service's secrets. Fix: use the "
                            "service's own store.")
    return problems


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
            owner = _service_of(stack.props[account.urn]) if account else None
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
            label=_label(role), name=str(props.get("roleName") or role.name), urn=role.urn,
            admits=_admitted(stack, props.get("boundServiceAccountNamespaces"),
                             props.get("boundServiceAccountNames")))
        token_policies = props.get("tokenPolicies")
        for policy in token_policies if isinstance(token_policies, list) else []:
            if not isinstance(policy, str) or policy in DEFAULT_VAULT_POLICIES:
                continue
            for path in policies.get(policy, []):
                owner = _vault_path_owner(path)
                if owner is not None:
                    identity.reads.add(owner)
        out.append(identity)
    return out


def _has_glob(text: str) -> bool:
    return "*" in text or "+" in text


def _vault_path_owner(path: str) -> str | None:
    """The service a KV v2 path belongs to (`<mount>/<kind>/<service>/...`), EVERY for a glob
    that reaches past one service, None for a path outside any KV secret."""
    segments = path.split("/")
    if _has_glob(segments[0]) or (len(segments) > 1 and _has_glob(segments[1])):
        return EVERY
    if len(segments) < 3 or segments[1] not in KV_KINDS:
        return None
    owner = segments[2]
    if owner in ("", ".", "..") or _has_glob(owner):
        return EVERY
    return owner


def _iam_identities(stack: Stack) -> list[Identity]:
    documents: dict[str, list[Any]] = {}  # role urn -> policy documents
    roles = list(stack.of_type(IAM_ROLE))
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
        tags = props.get("tags") if isinstance(props.get("tags"), dict) else {}
        owner = tags.get("name") if isinstance(tags.get("name"), str) else None
        owner = owner or refs.owner_of_secret_name(str(props.get("name") or ""), stack.env)
        if owner and isinstance(props.get("arn"), str):
            secret_owners[props["arn"]] = owner

    out = []
    for role in roles:
        props = stack.props[role.urn]
        identity = Identity(label=_label(role), name=role.name, urn=role.urn,
                            admits=_irsa_admits(stack, props.get("assumeRolePolicy")))
        for document in documents[role.urn]:
            identity.reads |= _readable_services(document, stack.env, secret_owners)
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
    for subject in _trusted_subjects(trust) or set():
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


def _readable_services(document: Any, env: str, secret_owners: dict[str, str]) -> set[str]:
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
            owner = _secret_arn_owner(str(resource), env, secret_owners)
            if owner is not None:
                found.add(owner)
    return found


def _secret_arn_owner(resource: str, env: str, secret_owners: dict[str, str]) -> str | None:
    if resource == "*":
        return EVERY
    if resource in secret_owners:
        return secret_owners[resource]
    try:
        arn = refs.parse_arn(resource)
    except refs.RefError:
        return None
    if arn.service != "secretsmanager" and not _has_glob(arn.service):
        return None
    kind, _, name = arn.resource.partition(":")
    if _has_glob(kind) or (kind == "secret" and _has_glob(name.split("/")[0])):
        return EVERY
    prefix = f"configplane/{env}/"
    if not name.startswith(prefix):
        return None  # not a service's secret (a database's master secret, say)
    owner = name[len(prefix):].split("/", 1)[0]
    return EVERY if not owner or "*" in owner or "?" in owner else owner


def no_identity_spans_services(args: StackValidationArgs,
                               report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    stack = Stack(environment(cfg), list(args.resources))
    listed = {entry["identity"] for entry in cfg.get("platformIdentities") or []}
    for identity in identities(stack):
        reads = identity.reads
        if identity.name in listed or not reads:
            continue
        shown = "every service's secrets" if EVERY in reads else \
            f"the secrets of {', '.join(sorted(reads))}"
        admits = identity.admits
        if EVERY in reads or len(reads) > 1:
            report_violation(
                f"{identity.label} can read {shown}. Why: one identity that reaches several "
                "services' secrets lets whoever holds it read them all, so one service could "
                "read another's. Fix: give each service its own role, bound to its own "
                "service account, with its own secrets only.", identity.urn)
        elif EVERY in admits or len(admits) > 1:
            users = ("service accounts of any namespace" if EVERY in admits else
                     "the service accounts of " + ", ".join(sorted(admits)))
            report_violation(
                f"{identity.label} may be used by {users} and can read {shown}. Why: every "
                "account it admits reads those secrets, so one service could read another's. "
                "Fix: bind (or trust) only the account of the service whose secrets it reads.",
                identity.urn)
        elif identity.own is not None and reads != {identity.own}:
            report_violation(
                f"{identity.label} belongs to service {identity.own} (its service account) but "
                f"can read {shown}. Why: a service's identity must read its own secrets only. "
                "Fix: grant the service's own paths or ARNs.", identity.urn)


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
ENVIRONMENT = ENVIRONMENT_PROPERTY

POLICIES = [
    StackValidationPolicy(
        name="secret-stores-per-service",
        description="No ClusterSecretStore; each SecretStore signs in as its own namespace's "
                    "service account with that service's own Vault role or IAM role, and each "
                    "ExternalSecret uses its own service's stores.",
        validate=secret_stores_per_service,
        config_schema=PolicyConfigSchema(properties={"environment": ENVIRONMENT}),
    ),
    StackValidationPolicy(
        name="no-identity-spans-services",
        description="No Vault role or IAM role can read more than one service's secrets, or "
                    "another service's than its own.",
        validate=no_identity_spans_services,
        config_schema=PolicyConfigSchema(
            properties={"environment": ENVIRONMENT, "platformIdentities": IDENTITY_SCHEMA},
            required=["platformIdentities"]),
    ),
]
