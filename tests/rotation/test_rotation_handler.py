"""The rotation protocol under moto: the random strategy end to end, the guard, the
handler's own checks where moto is kinder than AWS, and faults followed by retries."""

from __future__ import annotations

import json
import string

import boto3
import handler
import pytest
from botocore import xform_name
from rotation_helpers import STEPS, canary

PUNCTUATION = set(string.punctuation)


# --- full rotations ---------------------------------------------------------------------


def test_random_rotation_driven_step_by_step(aws, leaks):
    old = canary()
    arn = aws.create_secret(old, "random")
    first = aws.current_version(arn)
    token = aws.start(arn)
    assert aws.stages(arn) == {first: ["AWSCURRENT"], token: ["AWSPENDING"]}

    aws.step(arn, token, "createSecret")
    assert aws.stages(arn) == {first: ["AWSCURRENT"],
                               token: ["AWSPENDING", handler.ROTATING]}
    for step in STEPS[1:]:
        aws.step(arn, token, step)

    assert aws.stages(arn) == {first: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    new = aws.value(arn)
    assert new != old and aws.value(arn, "AWSPREVIOUS") == old
    assert len(new) == 32
    assert not set(new) & set(handler.DEFAULT_EXCLUDE_CHARACTERS)


def test_random_rotation_by_rotate_secret_twice(aws):
    arn = aws.create_secret(canary(), "random")
    first = aws.current_version(arn)
    second = aws.rotate(arn)
    assert aws.new_errors == []
    assert [e["Step"] for e in aws.events] == list(STEPS)
    assert aws.stages(arn) == {first: ["AWSPREVIOUS"], second: ["AWSCURRENT"]}
    value_two = aws.value(arn)

    third = aws.rotate(arn)
    assert aws.new_errors == []
    assert aws.stages(arn) == {second: ["AWSPREVIOUS"], third: ["AWSCURRENT"]}
    assert aws.value(arn, "AWSPREVIOUS") == value_two != aws.value(arn)


def test_random_json_field_and_tag_options(aws):
    document = {"token": canary(), "issuer": "billing", "scopes": ["read"]}
    tags = {handler.FIELD_TAG: "token", handler.TAG_PREFIX + "length": "20",
            handler.TAG_PREFIX + "exclude-punctuation": "true"}
    arn = aws.create_secret(json.dumps(document), "random", tags=tags)
    aws.rotate(arn)
    assert aws.new_errors == []
    rotated = json.loads(aws.value(arn))
    assert {k: v for k, v in rotated.items() if k != "token"} == {"issuer": "billing",
                                                                 "scopes": ["read"]}
    assert rotated["token"] != document["token"] and len(rotated["token"]) == 20
    assert not set(rotated["token"]) & PUNCTUATION


def test_password_request_environment_defaults_and_tag_overrides():
    env = {"PASSWORD_LENGTH": "40", "EXCLUDE_CHARACTERS": "'\"", "EXCLUDE_NUMBERS": "true"}
    tags = {handler.TAG_PREFIX + "length": "24",
            handler.TAG_PREFIX + "exclude-characters": ":/'",
            handler.TAG_PREFIX + "require-each-included-type": "false"}
    assert handler.password_request(env, tags) == {
        "PasswordLength": 24, "ExcludeCharacters": "'\":/", "ExcludeNumbers": True,
        "ExcludePunctuation": False, "ExcludeUppercase": False, "ExcludeLowercase": False,
        "RequireEachIncludedType": False,
    }
    assert handler.password_request({}, {}) == {
        "PasswordLength": 32, "ExcludeCharacters": "/@\"'\\", "ExcludeNumbers": False,
        "ExcludePunctuation": False, "ExcludeUppercase": False, "ExcludeLowercase": False,
        "RequireEachIncludedType": True,
    }


@pytest.mark.parametrize(("env", "tags", "message"), [
    ({}, {handler.TAG_PREFIX + "length": "4"}, "tag configplane:rotation-length must be"),
    ({"PASSWORD_LENGTH": "many"}, {}, "environment PASSWORD_LENGTH must be"),
    ({"EXCLUDE_NUMBERS": "yes"}, {}, "environment EXCLUDE_NUMBERS must be true or false"),
    ({}, {handler.TAG_PREFIX + "exclude-lowercase": "1"},
     "tag configplane:rotation-exclude-lowercase must be true or false"),
])
def test_password_request_refuses_bad_options(leaks, env, tags, message):
    leaks.refused(handler.password_request, env, tags, match=message)


# --- refusals ------------------------------------------------------------------------------


def test_random_refuses_a_database_secret(aws, leaks):
    value = json.dumps({"engine": "postgres", "host": "db", "username": "app",
                        "password": canary()})
    arn = aws.create_secret(value, "random")
    token = aws.start(arn)
    leaks.refused(aws.step, arn, token, "createSecret", match="looks like a database secret")
    assert aws.value(arn) == value


@pytest.mark.parametrize(("tags", "message"), [
    ({}, "has no tag configplane:rotation-strategy"),
    ({handler.STRATEGY_TAG: "rsa"}, "has an unknown value in tag configplane:rotation-strategy"),
])
def test_strategy_tag_is_required(aws, leaks, tags, message):
    arn = aws.create_secret(canary(), tags=tags)
    token = aws.start(arn)
    leaks.refused(aws.step, arn, token, "createSecret", match=message)


def test_rotation_disabled_is_refused(aws, leaks):
    arn = aws.create_secret(canary(), "random")
    token = aws.start(arn)
    aws.sm.cancel_rotate_secret(SecretId=arn)
    assert aws.sm.describe_secret(SecretId=arn)["RotationEnabled"] is False
    for step in STEPS:
        leaks.refused(aws.step, arn, token, step, match="is not enabled for rotation")


def test_rotation_enabled_absent_is_not_a_refusal(aws):
    """moto leaves RotationEnabled out until rotation is configured; the guard only refuses
    an explicit false."""
    arn = aws.create_secret(canary(), "random")
    token = "11111111-2222-3333-4444-555555555555"
    pending = canary()
    aws.sm.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=pending,
                            VersionStages=["AWSPENDING"])
    assert "RotationEnabled" not in aws.sm.describe_secret(SecretId=arn)
    aws.run_steps(arn, token)
    assert aws.value(arn) == pending


def test_unknown_token_is_refused(aws, leaks):
    arn = aws.create_secret(canary(), "random")
    aws.start(arn)
    for step in STEPS:
        leaks.refused(aws.step, arn, "00000000-0000-0000-0000-000000000000", step,
                      match="is not a version of secret")


def test_token_not_pending_is_refused_and_current_returns_quietly(aws, leaks):
    arn = aws.create_secret(canary(), "random")
    first = aws.current_version(arn)
    token = aws.rotate(arn)
    before = aws.stages(arn)
    for step in STEPS:  # the old version is AWSPREVIOUS now
        leaks.refused(aws.step, arn, first, step, match="is not AWSPENDING")
        aws.step(arn, token, step)  # already AWSCURRENT: nothing happens
    assert aws.stages(arn) == before


def test_bad_events_are_refused(aws, leaks):
    leaks.refused(handler.lambda_handler, {"Step": "createSecret"}, None,
                  match="must carry Step, SecretId and ClientRequestToken")
    leaks.refused(handler.lambda_handler,
                  {"Step": "dropSecret", "SecretId": "x", "ClientRequestToken": "y"}, None,
                  match="unknown step 'dropSecret'")


# --- where moto is kinder than AWS: the handler's own checks -------------------------------


@pytest.fixture
def counting(aws):
    """Every Secrets Manager call made from here on, as (operation, its parameters): seen
    through botocore's own event hooks on boto3's default session, where the handler's clients
    (and moto's) come from. Nothing of the handler is replaced."""
    calls: list[tuple[str, dict]] = []

    def record(model, params, **_):
        calls.append((xform_name(model.name), dict(params)))

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    events = boto3.DEFAULT_SESSION.events
    events.register("before-parameter-build.secrets-manager", record)
    yield lambda: list(calls)
    events.unregister("before-parameter-build.secrets-manager", record)


def test_create_secret_never_puts_twice_for_a_token(aws, counting):
    """moto lets the same token take a different value; AWS refuses. A retried createSecret
    must keep the first value without calling PutSecretValue again."""
    arn = aws.create_secret(canary(), "random")
    token = aws.start(arn)
    aws.step(arn, token, "createSecret")
    pending = aws.value(arn, "AWSPENDING", token)
    aws.step(arn, token, "createSecret")
    assert [name for name, _ in counting()].count("put_secret_value") == 1
    assert aws.value(arn, "AWSPENDING", token) == pending


def test_rotation_token_is_passed_to_put_secret_value(aws, counting, leaks):
    rotation_token = canary("ROTATIONTOKEN")
    leaks.canaries.add(rotation_token)
    arn = aws.create_secret(canary(), "random")
    token = aws.start(arn)
    aws.run_steps(arn, token, RotationToken=rotation_token)
    puts = [kwargs for name, kwargs in counting() if name == "put_secret_value"]
    assert [p["RotationToken"] for p in puts] == [rotation_token]
    assert [p["ClientRequestToken"] for p in puts] == [token]


def test_second_rotation_while_one_is_pending_is_refused(aws, leaks, monkeypatch):
    """AWS refuses rotate-secret while AWSPENDING is on a version that is not AWSCURRENT;
    moto moves AWSPENDING instead. The handler's CONFIGPLANE_ROTATING label catches it."""
    arn = aws.create_secret(canary(), "random")
    first = aws.current_version(arn)
    original = handler.RandomStrategy.set_secret

    def unreachable(self, rotation):
        raise handler.RotationError("the external system did not answer")
    monkeypatch.setattr(handler.RandomStrategy, "set_secret", unreachable)
    stuck = aws.rotate(arn)
    assert [type(e) for e in aws.new_errors] == [handler.RotationError]
    stuck_value = aws.value(arn, "AWSPENDING", stuck)

    second = aws.rotate(arn)
    [refusal] = aws.new_errors
    assert f"an earlier rotation to version {stuck} started and did not finish" in str(refusal)
    assert aws.stages(arn) == {first: ["AWSCURRENT"], stuck: [handler.ROTATING],
                               second: ["AWSPENDING"]}

    # The recovery the README gives: put AWSPENDING back on the stuck version and retry it.
    monkeypatch.setattr(handler.RandomStrategy, "set_secret", original)
    aws.sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING",
                                       MoveToVersionId=stuck, RemoveFromVersionId=second)
    aws.run_steps(arn, stuck)
    assert aws.stages(arn) == {first: ["AWSPREVIOUS"], stuck: ["AWSCURRENT"]}
    assert aws.value(arn) == stuck_value


def test_two_pending_versions_are_refused(aws, leaks):
    """moto lets AWSPENDING sit on two versions at once (AWS does not)."""
    arn = aws.create_secret(canary(), "random")
    token = aws.start(arn)
    other = "22222222-2222-3333-4444-555555555555"
    aws.sm.put_secret_value(SecretId=arn, ClientRequestToken=other, SecretString=canary(),
                            VersionStages=["LEFTOVER"])
    aws.sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING",
                                       MoveToVersionId=other)
    leaks.refused(aws.step, arn, token, "createSecret",
                  match=f"version {other} is AWSPENDING too")


def test_unexpected_errors_lose_their_text(aws, leaks, monkeypatch):
    secret_text = canary("INSIDE-AN-ERROR")
    leaks.canaries.add(secret_text)

    def broken(self, rotation, current):
        try:
            raise KeyError(secret_text)
        except KeyError:
            raise ValueError(f"parse failed near {secret_text}") from None
    monkeypatch.setattr(handler.RandomStrategy, "new_value", broken)
    arn = aws.create_secret(canary(), "random")
    token = aws.start(arn)
    error = leaks.refused(aws.step, arn, token, "createSecret",
                          match=r"createSecret for secret .*: unexpected ValueError at "
                                r"test_rotation_handler.py:\d+")
    assert error.__suppress_context__


# --- faults and the retry Secrets Manager would make ----------------------------------------


@pytest.mark.parametrize("failing_step", STEPS)
def test_fault_after_each_step_then_retry(aws, failing_step):
    old = canary()
    arn = aws.create_secret(old, "random")
    first = aws.current_version(arn)
    aws.crash_after = failing_step  # the function dies once the step's work is done
    token = aws.rotate(arn)
    aws.crash_after = None
    assert [str(e) for e in aws.new_errors] == ["the function was stopped"]
    pending = aws.value(arn, "AWSPENDING" if failing_step != "finishSecret" else "AWSCURRENT",
                        token)
    expected_current = pending if failing_step == "finishSecret" else old
    assert aws.value(arn) == expected_current

    aws.run_steps(arn, token)  # the retry: same token, every step again
    assert aws.value(arn) == pending != old
    assert aws.stages(arn) == {first: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}


def test_random_json_without_the_field_is_refused(aws, leaks):
    value = json.dumps({"apikey": canary(), "token": canary()})
    arn = aws.create_secret(value, "random")
    token = aws.start(arn)
    leaks.refused(aws.step, arn, token, "createSecret",
                  match="a JSON object without a string field 'password'; set the tag "
                        "configplane:rotation-field")
    assert aws.value(arn) == value
