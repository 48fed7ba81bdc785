"""secret-stores-per-service: no ClusterSecretStore; every SecretStore signs in as the
service account of its own namespace's service (Vault Kubernetes auth with a role bound to
exactly that account; Secrets Manager through IRSA with a role trusted for exactly that
account); every ExternalSecret uses its own service's stores. (The plan index: isolation_lib.py.)
"""

from __future__ import annotations

from typing import Any

import ownership
from contract import IRSA_ROLE_ANNOTATION as ROLE_ARN_ANNOTATION
from contract import SERVICE_LABEL as NAME_LABEL
from isolation_lib import (
    CLUSTER_SECRET_STORE,
    ENVIRONMENT,
    EXTERNAL_SECRET,
    SECRET_STORE,
    Stack,
    label_of,
    lookup_key,
    service_of,
    trusted_subjects,
)
from packlib import (
    UNKNOWN,
    as_mapping,
    environment,
    get,
    whole_stack,
)
from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

WHY_FIX_CLUSTER_STORE = (
    "Why: an ExternalSecret in any namespace it admits can read every secret its one identity "
    "reaches, so one service could read another's. Fix: declare a namespaced SecretStore in "
    "each service's namespace that signs in as that service's own service account.")
WHY_FIX_FOREIGN_NAMESPACE = ("Why: a store must sign in as an account of its own namespace. "
                             "Fix: drop the namespace.")
WHY_FIX_SHARED_ROLE = ("Why: a role several accounts may use is one identity for all of them. "
                       "Fix: use the service's own role (bound to its account and namespace "
                       "only).")
WHY_FIX_NO_IRSA = ("Why: without it the operator uses its own credentials or static keys, one "
                   "identity for every namespace. Fix: use auth.jwt.serviceAccountRef with the "
                   "service's own account (IRSA).")
WHY_FIX_TRUST = ("Why: any other subject it admits can read the same secrets. Fix: trust only "
                 "the service's own account (StringEquals on <issuer>:sub).")
WHY_FIX_CLUSTER_REF = ("Why: only a namespaced SecretStore signs in as the namespace's own "
                       "service. Fix: use kind SecretStore (the service's own store).")
WHY_FIX_OTHER_STORE = ("Why: it would read the other service's secrets. Fix: use the service's "
                       "own store.")

# --- secret-stores-per-service -----------------------------------------------------------------


def secret_stores_per_service(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    stack = Stack(environment(args.get_config()), list(args.resources))
    for r in stack.of_kind(CLUSTER_SECRET_STORE):
        report_violation(
            f"{label_of(r)} is cluster-wide. {WHY_FIX_CLUSTER_STORE}", r.urn)
    stores: dict[tuple[str, ...], Any] = {}
    for r in stack.of_kind(SECRET_STORE):
        meta = as_mapping(stack.props[r.urn].get("metadata"))
        key = lookup_key(meta.get("namespace"), meta.get("name"))
        if key is not None:
            stores[key] = r
        for problem in _store_problems(stack, r):
            report_violation(f"{label_of(r)} {problem}", r.urn)
    for r in stack.of_kind(EXTERNAL_SECRET):
        for problem in _external_secret_problems(stack, r, stores):
            report_violation(f"{label_of(r)} {problem}", r.urn)


def _store_problems(stack: Stack, store: Any) -> list[str]:
    props = stack.props[store.urn]
    namespace = get(props, "metadata", "namespace")
    service = service_of(props)
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
        problem = f"{where} names an account in another namespace. {WHY_FIX_FOREIGN_NAMESPACE}"
        return [problem], None
    account = stack.service_account(namespace, ref.get("name"))
    if account is None:
        return [f"{where} names account {ref.get('name')}, which this stack does not declare "
                f"in namespace {namespace}. Fix: use the service's own account."], None
    owner = service_of(stack.props[account.urn])
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
    if not isinstance(auth, dict) or not isinstance(kubernetes, dict) or set(auth) != {"kubernetes"}:
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
                        f"account {account_name} in {namespace}. {WHY_FIX_SHARED_ROLE}")
    return problems


def _aws_store_problems(stack: Stack, namespace: Any, service: str, config: dict) -> list[str]:
    auth = config.get("auth")
    if auth is UNKNOWN:
        return []
    jwt = auth.get("jwt") if isinstance(auth, dict) else None
    if not isinstance(auth, dict) or not isinstance(jwt, dict) or set(auth) != {"jwt"}:
        return ["does not authenticate to AWS as a service account (spec.provider.aws.auth.jwt)."
                f" {WHY_FIX_NO_IRSA}"]
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
    subjects = trusted_subjects(stack.props[role.urn].get("assumeRolePolicy"))
    # (the account was found by its namespace and name, so the name is a string)
    expected = ownership.service_account_subject(namespace, str(meta.get("name")))
    if subjects is not None and subjects != {expected}:
        problems.append(f"reads through {label_of(role)}, whose trust policy does not admit "
                        f"exactly {expected}. {WHY_FIX_TRUST}")
    return problems


def _external_secret_problems(stack: Stack, external: Any, stores: dict) -> list[str]:
    props = stack.props[external.urn]
    namespace = get(props, "metadata", "namespace")
    service = service_of(props)
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
            problems.append(f"{where} uses a {ref.get('kind')}. {WHY_FIX_CLUSTER_REF}")
            continue
        name = ref.get("name")
        if name is UNKNOWN:
            continue
        store = stores.get(lookup_key(namespace, name))
        if store is None:
            problems.append(f"{where} names store {name}, which this stack does not declare in "
                            f"namespace {namespace}. Fix: use the service's own store.")
        elif service_of(stack.props[store.urn]) != service:
            problems.append(f"{where} uses store {name} of service "
                            f"{service_of(stack.props[store.urn])}, not its own ({service}). "
                            f"{WHY_FIX_OTHER_STORE}")
    return problems


POLICIES = [
    StackValidationPolicy(
        name="secret-stores-per-service",
        description="No ClusterSecretStore; each SecretStore signs in as its own namespace's "
                    "service account with that service's own Vault role or IAM role, and each "
                    "ExternalSecret uses its own service's stores.",
        validate=whole_stack(secret_stores_per_service),
        config_schema=PolicyConfigSchema(properties={"environment": ENVIRONMENT}),
    ),
]
