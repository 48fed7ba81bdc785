"""What the certificate and dynamic-credential policies share: Go durations, and the Vault
policy names they own (vault-least-privilege leaves those to them) and how they read them."""

from __future__ import annotations

import re
from typing import Any

from ownership import DATABASE_POLICY_SUFFIX, PKI_POLICY_SUFFIX, policy_service
from packlib import UNKNOWN, PolicyParseError, Reporter, parse_vault_policy

_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
# Vault policies these modules check (and vault-least-privilege does not):
#   <env>-<service>-pki       sign with the service's PKI role (policies/certificates.py)
#   <env>-<service>-database  read the service's database creds (policies/dynamic_credentials.py)
OWNED_POLICY_SUFFIXES = (PKI_POLICY_SUFFIX, DATABASE_POLICY_SUFFIX)


def go_seconds(value: Any) -> float | None:
    """A Go duration (`2160h`, `1h30m`, `90s`) in seconds; None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text == "0":
        return 0.0
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _GO_UNITS[u] for n, u in parts)


def ttl_seconds(value: Any) -> float | None:
    """A Vault TTL: a number of seconds (int, float or digits) or a Go duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"\d+", value.strip()):
        return float(value)
    return go_seconds(value)


def human(total: float) -> str:
    """Seconds as the largest whole unit: 7776000 -> `2160h`, 1800 -> `30m`."""
    total = int(total)
    for unit, size in (("h", 3600), ("m", 60)):
        if total and total % size == 0:
            return f"{total // size}{unit}"
    return f"{total}s"


def owned_policy(name: Any, env: str, suffix: str) -> str | None:
    """The service a policy name `<env>-<service><suffix>` belongs to, or None."""
    return policy_service(name, env, suffix)


def owned_policy_rules(name: str, label: str, props: dict, env: str, suffix: str,
                       report: Reporter) -> tuple[str, list[tuple[str, list[str]]]] | None:
    """The service and the parsed `path` rules of a `<env>-<service><suffix>` Vault policy;
    None when the policy is not one of these, its text is unknown, or it cannot be parsed
    (reported: an unreadable policy is never taken as harmless)."""
    if props.get("policy") is UNKNOWN:
        return None
    service = owned_policy(props.get("name"), env, suffix)
    if service is None:
        return None
    try:
        return service, parse_vault_policy(str(props.get("policy") or ""))
    except PolicyParseError as e:
        report(name, f"{label}: the policy text cannot be checked: {e}. Fix: write it as "
               "HCL `path` blocks with `capabilities` lists.", waivable=False)
        return None


def is_owned_policy(name: Any, env: str) -> bool:
    return any(owned_policy(name, env, s) for s in OWNED_POLICY_SUFFIXES)
