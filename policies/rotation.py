"""Secrets Manager secrets that ask for rotation rotate in time, through a Lambda Secrets
Manager may invoke; their encryption key and recovery window meet the environment's rules."""

from __future__ import annotations

import re
from typing import Any

from contract import ROTATION_STRATEGY_TAG
from packlib import UNKNOWN, Reporter, as_mapping, config_schema, num, plain, resource_label, whole_stack
from pulumi_policy import ReportViolation, StackValidationArgs, StackValidationPolicy
from resource_types import KMS_ALIAS, KMS_KEY, LAMBDA_PERMISSION, SM_ROTATION, SM_SECRET, STACK_REFERENCE

WHY_FIX_UNROTATED = (
    "Why: a credential that never rotates stays valid for as long as it is leaked. Fix: declare "
    "an aws.secretsmanager.SecretRotation for it (the rotation component does this for every "
    "secret with `rotation:` in the stack file).")
WHY_FIX_UNSCHEDULED = (
    "Why: without automaticallyAfterDays or a rate()/cron() scheduleExpression the secret does "
    "not rotate on a schedule. Fix: set platform.rotation.schedule_days to at most {days} in the "
    "stack file.")
WHY_FIX_SLOW_ROTATION = (
    "Why: the longer a credential lives, the longer a leaked copy works. Fix: set "
    "platform.rotation.schedule_days to {days} or less in the stack file.")
WHY_FIX_RECOVERY_WINDOW = (
    "Why: a deleted secret can be restored only within its recovery window. Fix: set "
    "platform.aws.recovery_window_in_days to {days} or more.")
WHY_FIX_NO_LAMBDA = ("Why: Secrets Manager cannot rotate without one. Fix: point it at the "
                     "environment's rotation function.")
WHY_FIX_NO_PERMISSION = (
    "Why: the first rotation starts as soon as the rotation is created and fails if Secrets "
    "Manager may not invoke the function yet. Fix: add depends_on=[permission].")
WHY_FIX_AWS_MANAGED_KEY = (
    "Why: this environment requires a customer-managed KMS key with rotation, so access is "
    "governed by a key policy and can be revoked. Fix: set "
    "platform.aws.customer_managed_kms_key: true in the stack file.")
WHY_FIX_UNDECLARED_KEY = (
    "Why: this environment requires a customer-managed key with automatic rotation. Fix: use "
    "the environment's key (platform.aws.customer_managed_kms_key: true).")
WHY_FIX_KEY_ROTATION_OFF = ("Why: this environment requires key rotation. Fix: set "
                            "enable_key_rotation=True on the key.")

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON = re.compile(r"^cron\((.+)\)$")


def rotation_interval_days(rules: dict) -> float | None:
    """The longest time between two rotations a rotation_rules block allows, in days (None if
    it cannot be told)."""
    days = rules.get("automaticallyAfterDays")
    if isinstance(days, int | float) and days > 0:
        return float(days)
    expression = str(rules.get("scheduleExpression") or "").strip()
    m = _RATE.match(expression)
    if m:
        unit = m.group(2).rstrip("s")
        return int(m.group(1)) / {"minute": 1440, "hour": 24, "day": 1}[unit]
    m = _CRON.match(expression)
    if m:
        fields = m.group(1).split()
        if len(fields) != 6:
            return None
        day_of_month, month, day_of_week = fields[2], fields[3], fields[4]
        if month not in ("*", "?"):
            return 365.0  # only in some months: up to a year apart
        if day_of_month in ("*", "?") and day_of_week in ("*", "?"):
            return 1.0
        if day_of_month in ("*", "?"):
            return 7.0
        return 31.0
    return None


def _ids(resource: Any) -> set[str]:
    props = plain(resource.props)
    return {v for v in (props.get("arn"), props.get("id"), props.get("keyId"), props.get("name"))
            if isinstance(v, str) and v}


def secrets_manager_rotation(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("secrets-manager-rotation", cfg, report_violation)
    max_days = float(cfg["maxRotationDays"])
    by_type: dict[str, list[Any]] = {}
    for r in args.resources:
        by_type.setdefault(r.resource_type, []).append(r)
    keys = by_type.get(KMS_KEY, [])
    # Looked up per secret and per rotation: indexed once, so the policy stays linear in the
    # fleet (scanning every Lambda permission per rotation took 10 s at 4,800 rotations).
    permissions = {p.urn for p in by_type.get(LAMBDA_PERMISSION, [])}
    keys_by_id = {i: k for k in reversed(keys) for i in _ids(k)}  # the first key wins
    aliases = {plain(a.props).get("name"): plain(a.props).get("targetKeyId")
               for a in by_type.get(KMS_ALIAS, [])}

    # Rotations indexed once by the secret they name (by id, or by dependency in preview):
    # matching each secret against every rotation grew with the square of the fleet.
    by_secret_id: dict[Any, list[int]] = {}
    by_dependency: dict[str, list[int]] = {}
    all_rotations = by_type.get(SM_ROTATION, [])
    for n, r in enumerate(all_rotations):
        secret_id = plain(r.props).get("secretId")
        if isinstance(secret_id, str):
            by_secret_id.setdefault(secret_id, []).append(n)
        for d in {*r.dependencies, *r.property_dependencies.get("secretId", [])}:
            by_dependency.setdefault(d.urn, []).append(n)

    for secret in by_type.get(SM_SECRET, []):
        props = plain(secret.props)
        label = resource_label(secret.resource_type, secret.name)
        tags = as_mapping(props.get("tags"))
        strategy = tags.get(ROTATION_STRATEGY_TAG)
        matches = {n for i in _ids(secret) for n in by_secret_id.get(i, ())}
        matches.update(by_dependency.get(secret.urn, ()))
        rotations = [all_rotations[n] for n in sorted(matches)]
        if strategy and not rotations:
            report(secret.name, f"{label} asks for rotation (tag {ROTATION_STRATEGY_TAG}="
                   f"{strategy}) but no SecretRotation targets it. {WHY_FIX_UNROTATED}",
                   secret.urn)
        for rotation in rotations:
            _check_rotation(rotation, label, max_days, permissions, report)
        _check_encryption(secret, props, label, cfg, (keys, keys_by_id), aliases, report)


def _check_rotation(rotation: Any, secret_label: str, max_days: float, permissions: set[str],
                    report: Reporter) -> None:
    props = plain(rotation.props)
    label = resource_label(rotation.resource_type, rotation.name)
    rules = as_mapping(props.get("rotationRules"))
    interval = rotation_interval_days(rules)
    if props.get("rotationRules") is UNKNOWN or UNKNOWN in rules.values():
        pass  # preview: the schedule is computed; checked again during `pulumi up`
    elif interval is None:
        report(rotation.name, f"{label} (for {secret_label}) has no rotation schedule this pack "
               f"can read. {WHY_FIX_UNSCHEDULED.format(days=num(max_days))}", rotation.urn)
    elif interval is not None and interval > max_days:
        report(rotation.name, f"{label} rotates {secret_label} every {num(interval)} days; "
               f"this environment allows at most {num(max_days)}. "
               f"{WHY_FIX_SLOW_ROTATION.format(days=num(max_days))}", rotation.urn)
    if not props.get("rotationLambdaArn"):
        report(rotation.name, f"{label} (for {secret_label}) names no rotation Lambda "
               f"(rotationLambdaArn). {WHY_FIX_NO_LAMBDA}", rotation.urn)
    deps = [*rotation.dependencies, *rotation.property_dependencies.get("", [])]
    if not any(d.urn in permissions for d in deps):
        report(rotation.name, f"{label} (for {secret_label}) does not depend on a "
               f"lambda.Permission for secretsmanager.amazonaws.com. {WHY_FIX_NO_PERMISSION}",
               rotation.urn)


def _check_encryption(secret: Any, props: dict, label: str, cfg: Any,
                      keys: tuple[list[Any], dict[str, Any]], aliases: dict,
                      report: Reporter) -> None:
    declared, by_id = keys
    window = props.get("recoveryWindowInDays", 30)  # AWS's default when unset
    minimum = cfg["minRecoveryWindowDays"]
    if isinstance(window, int | float) and window < minimum:
        report(secret.name, f"{label} has a recovery window of {num(window)} days; this "
               f"environment requires at least {num(minimum)}. "
               f"{WHY_FIX_RECOVERY_WINDOW.format(days=num(minimum))}", secret.urn)
    if not cfg["requireCustomerManagedKey"]:
        return
    key_ref = props.get("kmsKeyId")
    if key_ref is UNKNOWN:  # preview: the key is created in this run; follow the dependency
        deps = {d.urn for d in (*secret.dependencies,
                                *secret.property_dependencies.get("kmsKeyId", []))}
        key = next((k for k in declared if k.urn in deps), None)  # one key per environment
    elif not key_ref:
        report(secret.name, f"{label} is encrypted with the AWS-managed key (no kmsKeyId). "
               f"{WHY_FIX_AWS_MANAGED_KEY}", secret.urn)
        return
    else:
        ref = aliases.get(key_ref, key_ref)
        key = by_id.get(ref) if isinstance(ref, str) else None
        if key is None and any(d.resource_type == STACK_REFERENCE
                               for d in secret.property_dependencies.get("kmsKeyId", [])):
            return  # a shard: the platform stack's key, judged when that stack is checked
        if key is None:
            report(secret.name, f"{label} uses a KMS key that is not declared in this stack, "
                   f"so its rotation cannot be verified. {WHY_FIX_UNDECLARED_KEY}", secret.urn)
            return
    if key is not None and plain(key.props).get("enableKeyRotation") is not True:
        report(secret.name, f"{label} uses {resource_label(key.resource_type, key.name)}, "
               f"whose automatic rotation is off. {WHY_FIX_KEY_ROTATION_OFF}", secret.urn)


POLICIES = [
    StackValidationPolicy(
        name="secrets-manager-rotation",
        description="Secrets that ask for rotation rotate within the environment's maximum "
                    "interval; encryption and recovery window meet the environment's rules.",
        validate=whole_stack(secrets_manager_rotation),
        config_schema=config_schema({
            "maxRotationDays": {"type": "integer", "minimum": 1, "default": 30},
            "requireCustomerManagedKey": {"type": "boolean", "default": True},
            "minRecoveryWindowDays": {"type": "integer", "minimum": 0, "maximum": 30,
                                      "default": 7},
        }, waivable=True),
    ),
]
