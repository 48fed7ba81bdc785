"""secrets-manager-rotation: rotation schedule, rotation Lambda and permission, encryption
and recovery window of Secrets Manager secrets (policies/rotation.py)."""

from __future__ import annotations

from configplane.offline import UNKNOWN, AnalyzedResource
from tests.policies.builders import (
    kms_key,
    only,
    pack_module,
    permission,
    resource,
    rotation,
    sm_secret,
)
from tests.policies.conftest import found


def rotation_stack() -> list[AnalyzedResource]:
    key, old_key = kms_key("prod-key"), kms_key("old-key", key_rotation=False)
    alias = resource("aws:kms/alias:Alias", "prod-alias", {
        "name": "alias/configplane-prod-secrets", "targetKeyId": key.outputs["keyId"]})
    perm = permission("rotation-permission")
    good = sm_secret("good", strategy="random", kms_key_id=key.outputs["arn"])
    scheduled = sm_secret("scheduled", strategy="random", kms_key_id=key.outputs["keyId"])
    via_alias = sm_secret("via-alias", kms_key_id="alias/configplane-prod-secrets")
    unrotated = sm_secret("unrotated", strategy="postgres-single-user",
                          kms_key_id=key.outputs["arn"])
    slow = sm_secret("slow", strategy="random", kms_key_id=key.outputs["arn"])
    unscheduled = sm_secret("unscheduled", strategy="random", kms_key_id=key.outputs["arn"])
    # preview: ARNs not known yet; the rotation and the key are found by dependency
    previewed = resource("aws:secretsmanager/secret:Secret", "previewed", {
        "name": "configplane/prod/api/PREVIEWED", "arn": UNKNOWN, "kmsKeyId": UNKNOWN,
        "tags": {"configplane:rotation-strategy": "random"}},
        property_dependencies={"kmsKeyId": [old_key.urn]})
    previewed_rotation = resource(
        "aws:secretsmanager/secretRotation:SecretRotation", "previewed-rotation",
        {"secretId": UNKNOWN, "rotationLambdaArn": UNKNOWN, "rotationRules": UNKNOWN},
        dependencies=[previewed.urn, perm.urn], property_dependencies={"secretId": [previewed.urn]})
    return [
        key, old_key, alias, perm,
        good, rotation("good-rotation", good, rules={"automaticallyAfterDays": 30},
                       depends_on=[perm]),
        scheduled, rotation("scheduled-rotation", scheduled,
                            rules={"scheduleExpression": "cron(0 4 ? * SUN *)"}, depends_on=[perm]),
        via_alias, unrotated,
        slow, rotation("slow-rotation", slow, rules={"automaticallyAfterDays": 90},
                       lambda_arn=None),
        unscheduled, rotation("unscheduled-rotation", unscheduled, depends_on=[perm]),
        sm_secret("aws-managed", recovery=None),  # property missing: no key, no window
        sm_secret("stale-key", kms_key_id=old_key.outputs["arn"], recovery=0),
        sm_secret("foreign-key", kms_key_id="arn:aws:kms:eu-west-1:333333333333:key/elsewhere"),
        previewed, previewed_rotation,
    ]


ROTATION = pack_module("rotation")
UNROTATED = (
    'Secret "unrotated" asks for rotation (tag configplane:rotation-strategy=postgres-single-user)'
    f" but no SecretRotation targets it. {ROTATION.WHY_FIX_UNROTATED}")
SLOW = (
    'SecretRotation "slow-rotation" rotates Secret "slow" every 90 days; this environment allows '
    f"at most 30. {ROTATION.WHY_FIX_SLOW_ROTATION.format(days='30')}")
NO_LAMBDA = (
    'SecretRotation "slow-rotation" (for Secret "slow") names no rotation Lambda '
    f"(rotationLambdaArn). {ROTATION.WHY_FIX_NO_LAMBDA}")
NO_PERMISSION = (
    'SecretRotation "slow-rotation" (for Secret "slow") does not depend on a lambda.Permission '
    f"for secretsmanager.amazonaws.com. {ROTATION.WHY_FIX_NO_PERMISSION}")


def unscheduled(days: int) -> str:
    return ('SecretRotation "unscheduled-rotation" (for Secret "unscheduled") has no rotation '
            f"schedule this pack can read. {ROTATION.WHY_FIX_UNSCHEDULED.format(days=days)}")


AWS_MANAGED = (
    'Secret "aws-managed" is encrypted with the AWS-managed key (no kmsKeyId). '
    f"{ROTATION.WHY_FIX_AWS_MANAGED_KEY}")
RECOVERY = (
    'Secret "stale-key" has a recovery window of 0 days; this environment requires at least 7. '
    f"{ROTATION.WHY_FIX_RECOVERY_WINDOW.format(days='7')}")


def key_rotation_off(secret: str) -> str:
    return (f'Secret "{secret}" uses Key "old-key", whose automatic rotation is off. '
            f"{ROTATION.WHY_FIX_KEY_ROTATION_OFF}")


FOREIGN = (
    'Secret "foreign-key" uses a KMS key that is not declared in this stack, so its rotation '
    f"cannot be verified. {ROTATION.WHY_FIX_UNDECLARED_KEY}")


def test_secrets_manager_rotation_prod(prod):
    violations = only("secrets-manager-rotation", prod.violations(rotation_stack()))
    assert violations == [("secrets-manager-rotation", name, "mandatory", text) for name, text in [
        ("unrotated", UNROTATED),
        ("slow-rotation", SLOW), ("slow-rotation", NO_LAMBDA), ("slow-rotation", NO_PERMISSION),
        ("unscheduled-rotation", unscheduled(30)),
        ("aws-managed", AWS_MANAGED),
        ("stale-key", RECOVERY), ("stale-key", key_rotation_off("stale-key")),
        ("foreign-key", FOREIGN),
        ("previewed", key_rotation_off("previewed")),
    ]]


def test_secrets_manager_rotation_dev_is_advisory_and_longer(pack_for):
    # dev: 90 days, no customer-managed key, any recovery window; resources keep prod URNs
    dev = pack_for("dev", "dev")
    violations = only("secrets-manager-rotation", dev.violations(rotation_stack()))
    assert violations == [("secrets-manager-rotation", name, "advisory", text) for name, text in [
        ("unrotated", UNROTATED),
        ("slow-rotation", NO_LAMBDA), ("slow-rotation", NO_PERMISSION),
        ("unscheduled-rotation", unscheduled(90)),
    ]]


def test_rotation_interval_forms(prod):
    secret = sm_secret("s", strategy="random", kms_key_id=kms_key("prod-key").outputs["arn"])
    perm = permission("p")

    def verdict(rules):
        found = only("secrets-manager-rotation", prod.violations(
            [kms_key("prod-key"), perm, secret,
             rotation("r", secret, rules=rules, depends_on=[perm])]))
        return [text.split(";")[0] for *_, text in found]

    assert verdict({"scheduleExpression": "rate(30 days)"}) == []
    assert verdict({"scheduleExpression": "rate(12 hours)"}) == []
    assert verdict({"scheduleExpression": "cron(0 4 * * ? *)"}) == []
    assert verdict({"scheduleExpression": "cron(0 4 1 * ? *)"}) == [
        'SecretRotation "r" rotates Secret "s" every 31 days']
    assert verdict({"scheduleExpression": "cron(0 4 1 JAN ? *)"}) == [
        'SecretRotation "r" rotates Secret "s" every 365 days']
    assert verdict({"scheduleExpression": "rate(31 days)"}) == [
        'SecretRotation "r" rotates Secret "s" every 31 days']


EXPIRED = " (exception SEC-2 expired on 2000-01-01: renew it after review or fix the resource)"


def test_reviewed_exceptions(custom):
    # "unrotated" waived until 2999; the waiver of "slow-rotation" expired in 2000
    report = custom.run(rotation_stack())
    violations = [v for v in found(report)
                  if v[0] == "secrets-manager-rotation" and v[1] in ("unrotated", "slow-rotation")]
    assert violations == [("secrets-manager-rotation", "slow-rotation", "mandatory", text + EXPIRED)
                          for text in (SLOW, NO_LAMBDA, NO_PERMISSION)]
    assert "info: secrets-manager-rotation: unrotated: waived by SEC-1 until 2999-12-31" \
        in report.logs
