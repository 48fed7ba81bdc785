"""Rotation problems are typed: callers pick them by code, never by their wording."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from configplane.model import (
    DATABASE_NETWORK,
    ENVIRONMENT_NAME,
    MASTER_SECRET_MISSING,
    MASTER_SECRET_UNUSED,
    NETWORK_CODES,
    SCHEDULE_CODES,
    RotationProblem,
    rotation_problems,
)
from configplane.model import rotation_rules as rules

ALL_CODES = rules.CODES
GOOD = [("api-db", "postgres-single-user", False)]
NET = (["subnet-1"], ["sg-1"])


def codes(*args, **kwargs) -> set[str]:
    return {p.code for p in rotation_problems(*args, **kwargs)}


@pytest.mark.parametrize(("args", "expected"), [
    (("dev", GOOD, 30, None, *NET), set()),
    (("dev!", GOOD, 30, None, *NET), {ENVIRONMENT_NAME}),
    (("dev", [], 30, None, *NET), {rules.NO_SECRETS}),
    (("dev", GOOD, None, None, *NET), {rules.SCHEDULE_CHOICE}),
    (("dev", GOOD, 30, "rate(1 day)", *NET), {rules.SCHEDULE_CHOICE}),
    (("dev", GOOD, 0, None, *NET), {rules.SCHEDULE_DAYS}),
    (("dev", GOOD, None, "every day", *NET), {rules.SCHEDULE_EXPRESSION}),
    (("dev", [("a_b", "random", False)], 30, None, *NET), {rules.ROTATION_NAME}),
    (("dev", GOOD * 2, 30, None, *NET), {rules.ROTATION_NAME_SHARED}),
    (("dev", [("a", "nope", False)], 30, None, *NET), {rules.STRATEGY}),
    (("dev", [("a", "postgres-alternating-users", False)], 30, None, *NET),
     {MASTER_SECRET_MISSING}),
    (("dev", [("a", "postgres-single-user", True)], 30, None, *NET), {MASTER_SECRET_UNUSED}),
    (("dev", GOOD, 30, None, ["subnet-1"], []), {rules.NETWORK_PAIR, }),
    (("dev", GOOD, 30, None, [], []), {DATABASE_NETWORK}),
])
def test_each_rule_has_its_own_code(args, expected):
    assert codes(*args) == expected


def test_codes_are_distinct_and_scoped():
    declared = {v for k, v in vars(rules).items() if k.isupper() and isinstance(v, str)
                and not k.startswith(("NAME", "RATE", "CRON"))}
    assert declared == ALL_CODES and len(ALL_CODES) == 12
    assert SCHEDULE_CODES | NETWORK_CODES < ALL_CODES
    assert not SCHEDULE_CODES & NETWORK_CODES
    found = rotation_problems("dev!", [("a_b", "postgres-alternating-users", False)] * 2,
                              None, None, ["s"], [])
    assert {p.code for p in found} <= ALL_CODES
    for problem in found:  # a secret's problem names its rotation, the setup's none
        per_secret = problem.code in {rules.ROTATION_NAME, rules.ROTATION_NAME_SHARED,
                                      rules.STRATEGY, MASTER_SECRET_MISSING, MASTER_SECRET_UNUSED}
        assert (problem.secret == "a_b") == per_secret
    with pytest.raises(dataclasses.FrozenInstanceError):
        found[0].code = "x"  # type: ignore[misc]


def test_validate_filters_by_code_not_by_wording(monkeypatch):
    """Reworded messages change nothing in which problems `validate` reports where."""
    from configplane.validation import stack_checks

    original = stack_checks.rotation_problems

    def reworded(*args, **kwargs):
        return [RotationProblem(p.code, p.secret, f"reworded {p.code}")
                for p in original(*args, **kwargs)]

    monkeypatch.setattr(stack_checks, "rotation_problems", reworded)
    # a platform whose schedule is broken and whose network misses a half, and one rotated
    # secret (a Secrets Manager one with a rotation, as stack_checks' rotated_secrets picks)
    rotation = SimpleNamespace(schedule_expression=None, schedule_days=0, subnet_ids=["s"],
                               security_group_ids=[])
    spec = SimpleNamespace(store="aws", source="secure", rotation=SimpleNamespace(
        strategy="postgres-alternating-users", master_secret_arn=None))
    doc = SimpleNamespace(platform=SimpleNamespace(environment="dev", rotation=rotation),
                          services={"api": SimpleNamespace(secrets={"K": spec})})
    found = stack_checks._rotation(doc, lambda path: "file")
    assert sorted((path, message) for path, _, message in found) == sorted([
        ("platform.rotation.schedule_days", "rotation: reworded schedule-days. Fix: correct "
         "the setting (the rotation component refuses it)."),
        ("platform.rotation.security_group_ids", "rotation: reworded network-pair. Fix: correct "
         "the setting (the rotation component refuses it)."),
    ])  # master-secret and database-network problems are reported per secret, by code
