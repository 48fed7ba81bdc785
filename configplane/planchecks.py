"""The plan's own checks, run beside the pack (not pack policies): a secret value that reaches
a resource input unmarked, and a URN registered twice. Messages name the property and the
resource, never the value."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from configplane.redaction import is_secret_wrapper

if TYPE_CHECKING:
    from configplane.plan import Plan

SECRET_MARKING_CHECK = "configplane-secret-marking"  # the plan's own check, not a pack policy
UNIQUE_URN_CHECK = "configplane-unique-urns"  # the engine refuses a URN registered twice


def unmarked_secret_violations(plan: Plan, config_secrets: list[str]) -> list[dict[str, str]]:
    """A value that is secret somewhere (config, or marked on any resource) but reaches a
    resource input unmarked. The message names the property, never the value."""
    secrets = {s for s in config_secrets if len(s) >= 4}
    for resource in plan.resources:
        secrets |= {text for text, marked in _strings(resource.inputs) if marked and len(text) >= 4}
        secrets |= {text for text, marked in _strings(resource.outputs) if marked and len(text) >= 4}
    index = _substring_index(secrets)
    violations = []
    for resource in plan.resources:
        for path, text in _unmarked_strings(resource.inputs):
            if _contains_any(text, index):
                violations.append({
                    "policy": SECRET_MARKING_CHECK,
                    "urn": resource.urn,
                    "level": "mandatory",
                    "message": f"input `{path}` of {resource.name} carries a secret value that is "
                               "not marked secret, so it would be stored and shown in plaintext. "
                               "Fix: wrap it with pulumi.Output.secret() where the component "
                               "builds it.",
                })
    return violations


def duplicate_urn_violations(plan: Plan) -> list[dict[str, str]]:
    """A URN registered twice: `pulumi preview` fails with "Duplicate resource URN"; the mocks
    would not. `validate` reports the known causes by name; this catches any other."""
    seen: set[str] = set()
    violations = []
    for resource in plan.resources:
        if resource.urn in seen:
            violations.append({
                "policy": UNIQUE_URN_CHECK, "urn": resource.urn, "level": "mandatory",
                "message": f"{resource.name} is declared twice (same URN): `pulumi preview` "
                           "would fail. Fix: rename the service, tenant or secret whose name "
                           "collides once normalised (lowercase, '_' becomes '-')."})
        seen.add(resource.urn)
    return violations


_PREFIX = 4  # every secret searched for has at least this many characters


def _substring_index(secrets: set[str]) -> dict[str, list[str]]:
    """Secrets by their first characters, so the check stays linear in the size of the plan
    (testing every secret against every string grew with the square of the fleet)."""
    index: dict[str, list[str]] = {}
    for secret in secrets:
        index.setdefault(secret[:_PREFIX], []).append(secret)
    return index


def _contains_any(text: str, index: dict[str, list[str]]) -> bool:
    """Whether any indexed secret is a substring of `text`."""
    return any(text.startswith(secret, i)
               for i in range(len(text) - _PREFIX + 1)
               for secret in index.get(text[i:i + _PREFIX], ()))


def _strings(value: Any, marked: bool = False):
    if is_secret_wrapper(value):
        yield from _strings(value.get("value"), True)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v, marked)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, marked)
    elif isinstance(value, str):
        yield value, marked


def _unmarked_strings(value: Any, path: str = ""):
    if is_secret_wrapper(value):
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _unmarked_strings(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _unmarked_strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value
