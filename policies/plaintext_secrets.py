"""Plaintext secrets: in configuration (ConfigMaps, container env, Lambda environment), in
stack outputs, and as literal data of Kubernetes Secrets.

A policy sees secrets as plaintext and cannot tell whether a value was marked secret
(pulumi_policy drops the marker), so plaintext secrets are caught by content (the detector,
secret_detector.py), by structure (ExternalSecret, rotation, KMS) and by the program's tests.
(Not `secrets.py`: the pack directory is on sys.path, where that name would hide the standard
library's.)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from functools import lru_cache
from typing import Any

from packlib import (
    UNKNOWN,
    config_schema,
    container_env,
    for_types,
    get,
    plain,
    resource_label,
    strings,
    whole_stack,
)
from pulumi_policy import (
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from resource_types import CONFIGMAP, K8S_SECRETS, LAMBDA_FUNCTION, STACK, WORKLOADS
from secret_detector import scan

# What each finding of no-plaintext-secret-in-config says, by where the value was found.
WHY_CONFIGMAP = ("ConfigMap data is readable by anyone who may read the namespace's ConfigMaps "
                 "and is kept in plain text in Pulumi state")
FIX_CONFIGMAP = ("move the value to the service's `secrets:` in the stack file (source secure, "
                 "generated or reference) so it reaches the pod through its ExternalSecret")
WHY_ENV = "env literals are part of the pod spec: readable by every reader of the workload"
FIX_ENV = ("reference a Secret key instead (`valueFrom.secretKeyRef`) filled by the "
           "service's ExternalSecret")
WHY_LAMBDA = ("Lambda environment variables are shown to anyone with lambda:GetFunction and "
              "kept in plain text in Pulumi state")
FIX_LAMBDA = "pass the secret's ARN and read the value from Secrets Manager at run time"
ROTATE_OR_PLACEHOLDER = ("then rotate the exposed value. If the value is not a secret, write "
                         "it so it is plainly a reference or placeholder (e.g. ${VAR}).")
WHY_FIX_OUTPUTS = ("Why: stack outputs are read by other stacks, CI logs and anyone with stack "
                   "access. Fix: export the secret's name, path or ARN instead of its value, "
                   "then rotate the exposed value.")
WHY_FIX_LITERAL_SECRET = (
    "Why: in this environment secrets must arrive through an ExternalSecret; literal Secret "
    "data is stored in Pulumi state and in the program's inputs. Fix: keep the value in Vault "
    "or Secrets Manager (the service's `secrets:` in the stack file) and let the service's "
    "ExternalSecret create this Secret.")


@lru_cache(maxsize=4096)
def _secret_rules(key: str, value: str) -> tuple[str, ...]:
    found = scan(key, value)
    return tuple(found.rules) if found.secret else ()


def config_value_findings(where: str, key: str, value: Any) -> list[tuple[str, tuple[str, ...]]]:
    """Secret-looking parts of one configuration value: the value itself, and the leaves of a
    JSON document or the `key=value` / `key: value` lines of a config file held in it."""
    if not isinstance(value, str):
        return []
    found = []
    text = value.strip()
    nested: list[tuple[str, str, str]] = []
    if text[:1] in "{[":
        with contextlib.suppress(json.JSONDecodeError):
            nested = [(f"{where}: {path}", k or key, v) for path, k, v in strings(json.loads(text))]
    elif "\n" in text:
        for number, line in enumerate(text.splitlines(), 1):
            m = re.match(r"^\s*(?:export\s+)?([A-Za-z0-9_.-]+)\s*[=:]\s*(.+?)\s*$", line)
            if m:
                nested.append((f"{where} line {number}", m.group(1), m.group(2).strip("\"'")))
    for nested_where, k, v in nested:
        rules = _secret_rules(k, v)
        if rules:
            found.append((nested_where, rules))
    if not found:  # the parts name the place more precisely; else judge the value whole
        rules = _secret_rules(key, value)
        if rules:
            found.append((where, rules))
    return found


def decoded(value: Any) -> str | None:
    """A base64 value (ConfigMap binaryData) as UTF-8 text; None if it is not that."""
    try:
        return base64.b64decode(str(value), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


# --- no-plaintext-secret-in-config -------------------------------------------------------------


@for_types(CONFIGMAP, WORKLOADS, LAMBDA_FUNCTION)
def no_plaintext_secret_in_config(args: ResourceValidationArgs,
                                  report_violation: ReportViolation) -> None:
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    findings: list[tuple[str, tuple[str, ...]]] = []
    if args.resource_type == CONFIGMAP:
        for key, value in sorted((props.get("data") or {}).items()):
            findings += config_value_findings(f"data.{key}", key, value)
        for key, value in sorted((props.get("binaryData") or {}).items()):
            findings += config_value_findings(f"binaryData.{key}", key, decoded(value))
        why, fix = WHY_CONFIGMAP, FIX_CONFIGMAP
    elif args.resource_type in WORKLOADS:
        for container, var, value in container_env(args.resource_type, props):
            findings += config_value_findings(f"container {container} env {var}", var, value)
        why, fix = WHY_ENV, FIX_ENV
    else:  # LAMBDA_FUNCTION
        variables = get(props, "environment", "variables", default={}) or {}
        for var, value in sorted(variables.items()) if isinstance(variables, dict) else ():
            findings += config_value_findings(f"environment variable {var}", var, value)
        why, fix = WHY_LAMBDA, FIX_LAMBDA
    for where, rules in findings:
        report_violation(
            f"{label}: {where} holds what looks like a credential ({', '.join(rules)}). "
            f"Why: {why}. Fix: {fix}, {ROTATE_OR_PLACEHOLDER}", None)  # (the resource's urn)


# --- no-secret-in-stack-outputs -----------------------------------------------------------------


def no_secret_in_stack_outputs(args: StackValidationArgs,
                               report_violation: ReportViolation) -> None:
    for resource in args.resources:
        if resource.resource_type != STACK:
            continue
        for path, key, value in strings(plain(resource.props)):
            rules = _secret_rules(key, value)
            if rules:
                report_violation(
                    f"stack output {path} holds what looks like a credential "
                    f"({', '.join(rules)}). {WHY_FIX_OUTPUTS}", resource.urn)


# --- kubernetes-secret-from-external-store -------------------------------------------------------


@for_types(K8S_SECRETS)
def kubernetes_secret_from_external_store(args: ResourceValidationArgs,
                                          report_violation: ReportViolation) -> None:
    if not args.get_config()["requireExternalSecrets"]:
        return
    props = plain(args.props)
    literal = []
    for field in ("data", "stringData"):
        value = props.get(field)
        if value is UNKNOWN:
            literal.append(f"{field} (computed)")
        elif isinstance(value, dict) and value:
            literal.append(f"{field} keys {', '.join(sorted(value))}")
    if literal:
        report_violation(
            f"{resource_label(args.resource_type, args.name)} carries literal "
            f"{' and '.join(literal)}. {WHY_FIX_LITERAL_SECRET}", None)


POLICIES = [
    ResourceValidationPolicy(
        name="no-plaintext-secret-in-config",
        description="No secret-looking value in ConfigMap data, container env literals, "
                    "Lambda environment variables or flag definitions.",
        validate=no_plaintext_secret_in_config,
        config_schema=config_schema(),
    ),
    StackValidationPolicy(
        name="no-secret-in-stack-outputs",
        description="Stack outputs carry names, paths and ARNs, never secret values.",
        validate=whole_stack(no_secret_in_stack_outputs),
        config_schema=config_schema(),
    ),
    ResourceValidationPolicy(
        name="kubernetes-secret-from-external-store",
        description="Kubernetes Secrets come from an ExternalSecret, not literal data.",
        validate=kubernetes_secret_from_external_store,
        config_schema=config_schema({"requireExternalSecrets": {"type": "boolean",
                                                                "default": True}}),
    ),
]
