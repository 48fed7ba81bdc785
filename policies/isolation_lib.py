"""Per-service isolation of secrets: what secret-stores-per-service (secret_stores.py) and
no-identity-spans-services (identities.py) share: the plan indexed once (`Stack`) and who a
resource belongs to.

Owners come from configplane/ownership.py, the file the program derives the names with: a KV
path `<mount>/data/<service>/...`, the services an IAM resource pattern can match (judged by
what the glob matches, not by a name prefix). A glob that could match several services
counts as every service.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from contract import SERVICE_LABEL as NAME_LABEL
from ownership import EVERY
from packlib import (
    ENVIRONMENT_PROPERTY,
    PolicyParseError,
    as_list,
    as_mapping,
    get,
    iam_statements,
    plain,
    resource_label,
)
from resource_types import ESO_PREFIX as ESO
from resource_types import (
    IAM_ROLE,
    SERVICE_ACCOUNT,
    VAULT_K8S_ROLE,
)

SECRET_STORE = "SecretStore"
CLUSTER_SECRET_STORE = "ClusterSecretStore"
EXTERNAL_SECRET = "ExternalSecret"
SECRET_READ_ACTIONS = {"secretsmanager:getsecretvalue", "secretsmanager:batchgetsecretvalue"}
DEFAULT_VAULT_POLICIES = {"default"}


def eso_kind(resource_type: str) -> str | None:
    """`SecretStore`, `ClusterSecretStore` or `ExternalSecret` for ESO types (any version)."""
    if not resource_type.startswith(ESO):
        return None
    return resource_type.rsplit(":", 1)[-1]


def label_of(r: Any) -> str:
    return resource_label(r.resource_type, r.name)


def service_of(props: dict) -> str | None:
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
        self._accounts: dict[tuple[str, ...], Any] = {}
        self._vault_roles: dict[tuple[str, ...], Any] = {}
        self._iam_roles: dict[Any, Any] = {}
        for r in self.resources:
            props = self.props[r.urn] = plain(r.props)
            self.by_type.setdefault(r.resource_type, []).append(r)
            if r.resource_type == SERVICE_ACCOUNT:
                meta = as_mapping(props.get("metadata"))
                key = lookup_key(meta.get("namespace"), meta.get("name"))
                if key is not None:
                    self._accounts.setdefault(key, r)
            elif r.resource_type == VAULT_K8S_ROLE:
                key = lookup_key(props.get("roleName"))
                if key is not None:
                    self._vault_roles.setdefault(key, r)
            elif r.resource_type == IAM_ROLE:
                for key in (props.get("arn"), props.get("name")):
                    if isinstance(key, str) and key:
                        self._iam_roles.setdefault(key, r)

    def of_type(self, *types: str) -> Iterable[Any]:
        return (r for t in types for r in self.by_type.get(t, []))

    def of_kind(self, kind: str) -> Iterable[Any]:
        return (r for t, rs in self.by_type.items() if eso_kind(t) == kind for r in rs)

    def service_account(self, namespace: Any, name: Any) -> Any | None:
        key = lookup_key(namespace, name)
        return None if key is None else self._accounts.get(key)

    def vault_role(self, role_name: Any) -> Any | None:
        key = lookup_key(role_name)
        return None if key is None else self._vault_roles.get(key)

    def iam_role(self, arn: Any) -> Any | None:
        """By ARN, or (in preview, before the ARN is known) by the name the ARN ends with."""
        if not isinstance(arn, str):
            return None
        if arn in self._iam_roles:
            return self._iam_roles[arn]
        kind, _, path = arn.rpartition(":")[2].partition("/")
        return self._iam_roles.get(path.rsplit("/", 1)[-1]) if kind == "role" else None


def lookup_key(*parts: Any) -> tuple[str, ...] | None:
    """A lookup key of plain strings (unknowns and missing values match nothing)."""
    return tuple(parts) if all(isinstance(p, str) for p in parts) else None


def trusted_subjects(document: Any) -> set[str] | None:
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


ENVIRONMENT = ENVIRONMENT_PROPERTY
