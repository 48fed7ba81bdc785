"""Versions per secret and scheduled regeneration: which resources a bump or a new rotation
period changes, shown by diffing two offline plans of the real program (Pulumi SDK mocks).

What stands in for what: the mocks record every input the program registers, with the
resource options it asks for; they do not run the engine. That the engine keeps the old
inputs of an `ignore_changes` property under `pulumi up` is Pulumi's documented behaviour,
not proven here; what is proven is that the program asks for it, by the resource's real input
names, on exactly the rotated secrets' first versions.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from configplane.model import (
    CLOCK_ENV,
    PERIODS,
    InvalidStack,
    RotationSettings,
    SecretSpec,
    SecretVersion,
    combined_version,
    period_of,
    read_clock,
    secret_version,
)
from configplane.offline import Plan, redact, run_plan
from tests.catalog_compat import edit_stack

DAY = date(2026, 10, 15)  # period 230 of 90 days: 2026-09-04 .. 2026-12-02
NEXT_PERIOD = date(2026, 12, 3)


def plan_of(project: Path, stack: str, monkeypatch, today: date = DAY,
            secure: dict[str, str] | None = None) -> Plan:
    monkeypatch.setenv(CLOCK_ENV, today.isoformat())
    return run_plan(project, stack, one_stack=True, secure_values=secure)


def inputs_of(plan: Plan) -> dict[str, dict[str, Any]]:
    return {r.name: r.inputs for r in plan.resources}


def plan_inputs(project: Path, stack: str, monkeypatch, today: date = DAY,
                secure: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    return inputs_of(plan_of(project, stack, monkeypatch, today, secure))


def ignored_changes(plan: Plan, name: str) -> list[str]:
    """The ignoreChanges option the program gave a resource, as the plan records it."""
    return next(r.options["ignoreChanges"] for r in plan.resources if r.name == name)


def comparable(value: Any) -> Any:
    """Inputs as values: secrets keep their value (unlike plan.redact); unknowns, assets and
    archives (objects without equality) become what the plan prints for them."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return redact(value)


def changes(before: dict[str, dict], after: dict[str, dict]) -> set[tuple[str, str]]:
    """(resource, top-level input) pairs that differ; secret inputs compared by value."""
    assert before.keys() == after.keys(), "a bump must not add or remove resources"
    return {(name, key) for name in before
            for key in before[name].keys() | after[name].keys()
            if comparable(before[name].get(key)) != comparable(after[name].get(key))}


def edit(project: Path, stack: str, change) -> None:
    """`change` on the stack's config, services shown as in Pulumi config; the catalog's
    services/<name>/<stack>.yaml overlays are what it writes."""
    edit_stack(project, stack, change)


def secret(config: dict, service: str, key: str) -> dict:
    return config["configplane:services"][service].setdefault("secrets", {}).setdefault(key, {})


# --- the pure rules --------------------------------------------------------------------------

versions = st.dictionaries(st.from_regex(r"[A-Z][A-Z_]{0,8}", fullmatch=True),
                           st.integers(1, 10**6), min_size=1, max_size=6)


@settings(deadline=None)  # a shared CI machine: timing is not the property
@given(versions, st.data())
def test_the_vault_version_changes_with_any_bump_addition_or_removal(pairs, data):
    base = {k: SecretVersion(v) for k, v in pairs.items()}
    key = data.draw(st.sampled_from(sorted(pairs)))
    bumped = {**base, key: SecretVersion(pairs[key] + data.draw(st.integers(1, 1000)))}
    removed = {k: v for k, v in base.items() if k != key}
    added = {**base, "new": SecretVersion(1)}  # lowercase: never one of the drawn keys
    reordered = dict(reversed(list(base.items())))
    assert combined_version(reordered) == combined_version(base)
    assert len({combined_version(x) for x in (base, bumped, removed, added)}) == 4
    assert 0 <= combined_version(base) < 2**48  # exact in a float64 (Pulumi numbers)


@settings(deadline=None)
@given(st.dates(date(1970, 1, 1), date(2200, 1, 1)), st.integers(1, 3650))
def test_a_period_is_every_days_long(day, every):
    period = period_of(day, every)
    start = date(1970, 1, 1) + timedelta(days=period * every)
    assert start <= day < start + timedelta(days=every)
    if period:
        assert period_of(start - timedelta(days=1), every) == period - 1


def test_clock_reads_the_override_or_today():
    assert read_clock({CLOCK_ENV: "2026-12-03"}) == NEXT_PERIOD
    assert read_clock({CLOCK_ENV: "2026-12-03T23:59:00+00:00"}) == NEXT_PERIOD
    assert abs((read_clock({}) - date.today()).days) <= 1


def test_secret_versions_by_kind():
    every = RotationSettings(generated_every_days=90)
    never = RotationSettings()
    generated = SecretSpec(source="generated", store="vault")
    assert secret_version(generated, every, DAY) == SecretVersion(
        1 * PERIODS + 230, {"period": "90d-230"})
    assert secret_version(generated.model_copy(update={"version": 3}), every, DAY) == SecretVersion(
        3 * PERIODS + 230, {"period": "90d-230", "version": "3"})
    assert secret_version(generated.model_copy(update={"rotate_every_days": 7}), every, DAY) == \
        SecretVersion(PERIODS + period_of(DAY, 7), {"period": f"7d-{period_of(DAY, 7)}"})
    assert secret_version(generated, never, DAY) == SecretVersion(1, {})
    secure = SecretSpec(source="secure", store="aws", config_key="k", version=4)
    assert secret_version(secure, every, DAY) == SecretVersion(4, {})
    rotated = SecretSpec(source="generated", store="aws", rotation={"strategy": "random"})
    assert secret_version(rotated, every, DAY) == SecretVersion(1, {}, rotated=True)


# --- two plans, one bump -----------------------------------------------------------------------


def test_bumping_a_generated_vault_secret_regenerates_it_and_rewrites_only_its_kv_secret(
        project, monkeypatch):
    before = plan_inputs(project, "dev", monkeypatch)
    edit(project, "dev", lambda c: secret(c, "api", "SESSION_SIGNING_KEY").update(version=2))
    after = plan_inputs(project, "dev", monkeypatch)
    assert changes(before, after) == {
        ("api-secret-values-session-signing-key", "keepers"),
        ("api-vault-secret", "dataJsonWoVersion"),
    }
    assert after["api-secret-values-session-signing-key"]["keepers"] == {
        "period": "90d-230", "version": "2"}


def test_bumping_a_secure_vault_secret_rewrites_only_its_kv_secret(project, monkeypatch):
    before = plan_inputs(project, "prod", monkeypatch)
    edit(project, "prod", lambda c: secret(c, "worker", "PAYMENTS_API_KEY").update(version=2))
    after = plan_inputs(project, "prod", monkeypatch)
    assert changes(before, after) == {("worker-vault-secret", "dataJsonWoVersion")}


def test_bumping_a_secrets_manager_secret_rewrites_only_its_version(project, monkeypatch):
    token = {"source": "generated", "store": "aws", "length": 40}
    edit(project, "staging", lambda c: secret(c, "web", "ANALYTICS_TOKEN").update(token))
    before = plan_inputs(project, "staging", monkeypatch)
    edit(project, "staging", lambda c: secret(c, "web", "ANALYTICS_TOKEN").update(version=5))
    plan = plan_of(project, "staging", monkeypatch)
    after = inputs_of(plan)
    assert changes(before, after) == {
        ("web-secret-values-analytics-token", "keepers"),
        ("web-aws-analytics-token-initial", "secretStringWoVersion"),
    }
    assert after["web-aws-analytics-token-initial"]["secretStringWoVersion"] == 5 * PERIODS + 230
    assert ignored_changes(plan, "web-aws-analytics-token-initial") == ["versionStages"]


def test_a_rotated_secret_is_never_rewritten(project, monkeypatch):
    plan = plan_of(project, "prod", monkeypatch)
    before = inputs_of(plan)
    initial = "api-aws-database-password-initial"
    assert before[initial]["secretStringWoVersion"] == 1
    # the engine keeps the first value and version of a rotated secret, whatever comes later
    assert ignored_changes(plan, initial) == [
        "versionStages", "secretStringWo", "secretStringWoVersion"]
    assert {"secretStringWo", "secretStringWoVersion"} <= set(before[initial])  # real input names

    # A new secure value for it changes that input only, the one the engine ignores.
    after = plan_inputs(project, "prod", monkeypatch,
                        secure={"configplane:apiDbPassword": "canary-new-Zx8Cv6Bn4"})
    assert changes(before, after) == {(initial, "secretStringWo")}

    # A bump is refused before any resource is declared.
    edit(project, "prod", lambda c: secret(c, "api", "DATABASE_PASSWORD").update(version=2))
    with pytest.raises(InvalidStack) as refused:
        plan_inputs(project, "prod", monkeypatch)
    assert [(i.path, i.file) for i in refused.value.issues] == [
        ("services.api.secrets.DATABASE_PASSWORD.version", "services/api/prod.yaml")]
    assert "aws secretsmanager rotate-secret" in refused.value.issues[0].message


def test_the_old_per_service_counter_is_refused_with_its_replacement(project, monkeypatch):
    edit(project, "dev", lambda c: c["configplane:services"]["api"].update(secrets_version=2))
    with pytest.raises(InvalidStack) as refused:
        plan_inputs(project, "dev", monkeypatch)
    assert [(i.path, i.file) for i in refused.value.issues] == [
        ("services.api.secrets_version", "services/api/dev.yaml")]
    assert "bump `secrets.<KEY>.version`" in refused.value.issues[0].message


def test_rotate_every_days_is_for_generated_secrets_only(project, monkeypatch):
    edit(project, "dev", lambda c: secret(c, "worker", "PAYMENTS_API_KEY").update(
        rotate_every_days=30))
    with pytest.raises(InvalidStack) as refused:
        plan_inputs(project, "dev", monkeypatch)
    assert [i.path for i in refused.value.issues] == [
        "services.worker.secrets.PAYMENTS_API_KEY.rotate_every_days"]


# --- the rotation period turns ------------------------------------------------------------------


def test_a_new_period_regenerates_the_generated_secrets_and_nothing_else(project, monkeypatch):
    before = plan_inputs(project, "prod", monkeypatch, today=DAY)
    same_period = plan_inputs(project, "prod", monkeypatch, today=NEXT_PERIOD - timedelta(days=1))
    assert changes(before, same_period) == set()

    after = plan_inputs(project, "prod", monkeypatch, today=NEXT_PERIOD)
    assert changes(before, after) == {
        ("api-secret-values-session-signing-key", "keepers"),
        ("api-vault-secret", "dataJsonWoVersion"),
        ("web-secret-values-cookie-encryption-key", "keepers"),
        ("web-vault-secret", "dataJsonWoVersion"),
    }
    assert after["web-secret-values-cookie-encryption-key"]["keepers"] == {"period": "90d-231"}
    # the worker's only Vault secret is secure: untouched; the rotated Secrets Manager one too
    assert before["worker-vault-secret"] == after["worker-vault-secret"]
    assert before["api-aws-database-password-initial"] == after["api-aws-database-password-initial"]


def test_a_secret_with_its_own_schedule_follows_it(project, monkeypatch):
    edit(project, "dev", lambda c: secret(c, "web", "COOKIE_ENCRYPTION_KEY").update(
        rotate_every_days=7))
    week = period_of(DAY, 7)
    before = plan_inputs(project, "dev", monkeypatch, today=DAY)
    assert before["web-secret-values-cookie-encryption-key"]["keepers"] == {"period": f"7d-{week}"}
    next_week = date(1970, 1, 1) + timedelta(days=(week + 1) * 7)
    after = plan_inputs(project, "dev", monkeypatch, today=next_week)
    assert changes(before, after) == {
        ("web-secret-values-cookie-encryption-key", "keepers"),
        ("web-vault-secret", "dataJsonWoVersion"),
    }
