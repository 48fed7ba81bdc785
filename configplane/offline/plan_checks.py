"""The plan's own checks, run beside the pack (not pack policies): a secret value that reaches
a resource input unmarked, and a URN registered twice. Messages name the property and the
resource, never the value."""

from __future__ import annotations

from collections.abc import Sequence

from configplane.offline.results import PlannedResource
from configplane.redaction import MIN_SECRET_LEN, marked_strings

SECRET_MARKING_CHECK = "configplane-secret-marking"  # the plan's own check, not a pack policy
UNIQUE_URN_CHECK = "configplane-unique-urns"  # the engine refuses a URN registered twice


def unmarked_secret_violations(resources: Sequence[PlannedResource],
                               config_secrets: list[str]) -> list[dict[str, str]]:
    """A value that is secret somewhere (config, or marked on any resource) but reaches a
    resource input unmarked. The message names the property, never the value."""
    secrets = {s for s in config_secrets if len(s) >= MIN_SECRET_LEN}
    for resource in resources:
        for value in (resource.inputs, resource.outputs):
            secrets |= {text for _, text, marked in marked_strings(value)
                        if marked and len(text) >= MIN_SECRET_LEN}
    index = _substring_index(secrets)
    violations = []
    for resource in resources:
        for path, text, marked in marked_strings(resource.inputs):
            if not marked and _contains_any(text, index):
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


def duplicate_urn_violations(resources: Sequence[PlannedResource]) -> list[dict[str, str]]:
    """A URN registered twice: `pulumi preview` fails with "Duplicate resource URN"; the mocks
    would not. `validate` reports the known causes by name; this catches any other."""
    seen: set[str] = set()
    violations = []
    for resource in resources:
        if resource.urn in seen:
            violations.append({
                "policy": UNIQUE_URN_CHECK, "urn": resource.urn, "level": "mandatory",
                "message": f"{resource.name} is declared twice (same URN): `pulumi preview` "
                           "would fail. Fix: rename the service, tenant or secret whose name "
                           "collides once normalised (lowercase, '_' becomes '-')."})
        seen.add(resource.urn)
    return violations


_PREFIX = MIN_SECRET_LEN  # every secret searched for has at least this many characters


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
