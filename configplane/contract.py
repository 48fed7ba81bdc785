"""The facts the program, the pack and the rotation Lambda must agree on, each written once.

Stdlib only and free of imports from configplane: the policy pack reads this file through the
symlink `policies/contract.py` (pinned by tests/test_architecture.py). The rotation Lambda is
deployed as a standalone archive, so it keeps its own copy of the rotation tags and strategies;
tests/test_contract.py pins that copy to the values here.

Patterns are strings, not compiled regexes: they are used by `re.fullmatch` in Python and as
JSON Schema `pattern`s (ECMA 262, where `$` is the end of the input), so they must mean the same
in both; `fullmatch` keeps Python from accepting a trailing newline before `$`.
"""

from __future__ import annotations

import re

# --- Kubernetes names and limits ---------------------------------------------------------

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"  # RFC 1123 label: service names, namespaces
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CONFIGMAP_DATA_KEY = r"^[-._a-zA-Z0-9]+$"
MAX_CONFIGMAP_BYTES = 1024 * 1024  # the API server's limit on a ConfigMap's data
MAX_NAME_LENGTH = 253  # an object name (RFC 1123 subdomain): Secrets, ConfigMaps

# --- labels and annotations on what the program creates ----------------------------------

MANAGED_BY = "configplane"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
SERVICE_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"
ENVIRONMENT_LABEL = "configplane.io/environment"
GENERATION_OF_LABEL = "configplane.io/generation-of"  # a ConfigMap generation's base name
HASH_LABEL = "configplane.io/config-hash"
HASH_ANNOTATION = "configplane.io/config-hash"
SCHEMA_ANNOTATION = "configplane.io/schema"  # "services/<name>" or FLAGS_SCHEMA
CHECKSUM_ANNOTATION = "checksum/config"  # on the pod template (the Helm pattern)
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"  # shown by `kubectl rollout history`
# Stakater Reloader: `match` on a ConfigMap or Secret, `search` on the workload that uses it.
RELOADER_MATCH_ANNOTATION = "reloader.stakater.com/match"
RELOADER_AUTO_ANNOTATION = "reloader.stakater.com/auto"
RELOADER_SEARCH_ANNOTATION = "reloader.stakater.com/search"
IRSA_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
# The labels every ConfigMap the program creates carries (configmap-hygiene's default).
REQUIRED_LABELS = (SERVICE_LABEL, PART_OF_LABEL, MANAGED_BY_LABEL, ENVIRONMENT_LABEL)
RELOADER_ANNOTATIONS = (RELOADER_MATCH_ANNOTATION, RELOADER_AUTO_ANNOTATION)  # restart on change

# --- feature flags ----------------------------------------------------------------------

FLAGS_SCHEMA = "flags"  # the SCHEMA_ANNOTATION value of a flags ConfigMap
FLAGS_DATA_KEY = "flags.flagd.json"  # the key flagd's file provider reads


def schema_annotation_value(service: str) -> str:
    """The SCHEMA_ANNOTATION of a service's config ConfigMap."""
    return f"services/{service}"


SCHEMA_ANNOTATION_VALUE = r"^(services/[a-z0-9]([-a-z0-9]*[a-z0-9])?|flags)$"

# --- keywords of an app's JSON Schema ----------------------------------------------------

SCHEMA_SECRET_KEYS = "x-configplane-secret-keys"  # keys the pod gets from secrets, never config
SCHEMA_TENANT_KEYS = "x-configplane-tenant-overridable"

# --- rotation: the tags the program writes and the Lambda reads --------------------------

ROTATION_TAG_PREFIX = "configplane:rotation-"
ROTATION_STRATEGY_TAG = ROTATION_TAG_PREFIX + "strategy"
ROTATION_FIELD_TAG = ROTATION_TAG_PREFIX + "field"
ROTATION_STRATEGIES = ("random", "postgres-single-user", "postgres-alternating-users")
DATABASE_ROTATION_STRATEGIES = ("postgres-single-user", "postgres-alternating-users")

# --- what a secret value is shown as ----------------------------------------------------

REDACTED = "[secret]"

# --- names the program gives and the pack recognises --------------------------------------
# Derived names (policies, roles, paths, secret names) live in configplane/ownership.py, with
# their owner.


# --- dynamic database logins: what a generated role may never be granted ------------------

FORBIDDEN_ROLE_ATTRIBUTES = ("SUPERUSER", "CREATEROLE", "CREATEDB", "REPLICATION", "BYPASSRLS")


def forbidden_attributes(statement: str) -> list[str]:
    """The forbidden role attributes a statement grants (`NOSUPERUSER` is not `SUPERUSER`)."""
    upper = statement.upper()
    return [a for a in FORBIDDEN_ROLE_ATTRIBUTES if re.search(rf"(?<![A-Z0-9_]){a}\b", upper)]


# --- AWS --------------------------------------------------------------------------------

AWS_ACCOUNT_ID = r"^[0-9]{12}$"

# A GitHub user (`@user`), team (`@org/team`) or e-mail address, as CODEOWNERS takes them.
OWNER = r"^(@[A-Za-z0-9][A-Za-z0-9-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?|[^@\s]+@[^@\s]+\.[^@\s]+)$"


def generation_labels(base_name: str, config_hash: str) -> dict[str, str]:
    """The labels that make a ConfigMap findable as a generation (`kubectl get cm -l ...`)."""
    return {GENERATION_OF_LABEL: base_name, HASH_LABEL: config_hash}
