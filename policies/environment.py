"""No resource names another environment's namespace, Vault mount, account or ARN."""

from __future__ import annotations

import re

from contract import AWS_ACCOUNT_ID, DNS_LABEL
from packlib import (
    ENVIRONMENT_PROPERTY,
    Reporter,
    config_schema,
    environment,
    plain,
    resource_label,
    strings,
)
from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

# --- environment-isolation ------------------------------------------------------------------------

WHY_FIX_OTHER_ENVIRONMENT = (
    "Why: one environment's resources must not reach another's secrets or workloads. Fix: use "
    "this environment's names (the program derives them from platform.environment).")
FREE_TEXT = {"description"}  # prose may mention other environments
_DEVICE_PATH = re.compile(r"(?<![\w.-])/dev/")  # /dev/stdout is not the dev environment
# The last label of a dotted name is a top-level domain or a file extension (flagd.dev,
# audit.log), not an environment; environments appear as names or inner labels.
_LAST_LABEL = re.compile(r"(?<=[a-z0-9])\.[a-z]{2,}(?=$|[/:?#\s\"',;)\]}])")
_WORD = re.compile(r"[a-z0-9]+")


def environment_isolation(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("environment-isolation", cfg, report_violation)
    env = environment(cfg)
    others = {e for e in cfg["environments"] if e != env}
    accounts = {a: e for e, a in (cfg.get("accountIds") or {}).items() if e != env}
    label = resource_label(args.resource_type, args.name)
    for path, key, value in strings(plain(args.props)):
        if key in FREE_TEXT or key.endswith("Wo"):  # write-only inputs hold secret values
            continue
        lowered = value.lower()
        # each pattern only where it can match: a deploy policy's HCL is tens of KiB
        if "/dev/" in lowered:
            lowered = _DEVICE_PATH.sub("/", lowered)
        if "." in lowered:
            lowered = _LAST_LABEL.sub(" ", lowered)
        words = set(_WORD.findall(lowered))
        named = sorted(others & words) + sorted({accounts[w] for w in words if w in accounts})
        for other in dict.fromkeys(named):
            report(args.name, f"{label}: {path} names environment {other} (its namespace, "
                   f"Vault mount, account or ARN); this stack is {env}. "
                   f"{WHY_FIX_OTHER_ENVIRONMENT}")


POLICIES = [
    ResourceValidationPolicy(
        name="environment-isolation",
        description="No resource names another environment's namespace, Vault mount, "
                    "account or ARN.",
        validate=environment_isolation,
        config_schema=config_schema({
            "environment": ENVIRONMENT_PROPERTY,
            "environments": {"type": "array", "items": {"type": "string", "pattern": DNS_LABEL},
                             "default": ["dev", "staging", "prod"]},
            "accountIds": {"type": "object", "default": {},
                           "additionalProperties": {"type": "string", "pattern": AWS_ACCOUNT_ID}},
        }, waivable=True),
    ),
]
