"""Plaintext secrets in a validated stack's config values, found by the pack's own detector.

`configplane validate` reports them before anything is planned, with the same verdicts the
policy pack gives the rendered ConfigMaps later (policies/secret_detector.py, loaded through
configplane.pack, so the key vocabularies and rules have one home). Only names, paths and
rule ids reach a message, never the value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from configplane.layering import dotted
from configplane.pack import load_detector
from configplane.stack import Issue, StackModel


def _values(model: StackModel) -> Iterator[tuple[list[str], str, str]]:
    """(key path, key, rendered value) of every config value a service or tenant sets."""
    for name, plan in sorted(model.services.items()):
        base = ["services", name]
        for key, value in sorted(plan.config.data.items()):
            yield [*base, "config", key], key, value
        for tenant, rendered in sorted(plan.tenants.items()):
            own: Mapping[str, object] = plan.spec.tenants[tenant].config  # the rest is inherited
            for key in sorted(own):
                yield [*base, "tenants", tenant, "config", key], key, rendered.data[key]


def plaintext_issues(model: StackModel) -> list[Issue]:
    """One issue per config value the detector takes for a plaintext secret."""
    detector = load_detector()
    issues = []
    for path, key, value in _values(model):
        found = detector.scan(key, value)
        if not found.secret:
            continue
        origin = model.resolved.origin_of(path)
        service = path[1]
        issues.append(Issue(
            dotted(path),
            origin.file if origin else f"Pulumi.{model.stack}.yaml",
            f"`{key}` looks like a plaintext secret (rules: {', '.join(found.rules)}). Fix: remove "
            f"it from config and declare it under services.{service}.secrets (source secure, "
            "reference or generated); rotate it if it was ever committed. `configplane scan "
            "--explain` shows why it was flagged.",
        ))
    return issues
