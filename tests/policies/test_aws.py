"""Secrets Manager rotation and encryption, the rotation Lambda, IAM."""

from __future__ import annotations

import json

from configplane.analysis import AnalyzedResource
from configplane.marshal import UNKNOWN
from tests.policies.builders import (
    CANARY,
    allow,
    iam_policy,
    kms_key,
    lambda_function,
    permission,
    resource,
    rotation,
    sm_arn,
    sm_secret,
)
from tests.policies.conftest import found


def only(policy: str, violations):
    return [v for v in violations if v[0] == policy]


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


UNROTATED = (
    'Secret "unrotated" asks for rotation (tag configplane:rotation-strategy=postgres-single-user)'
    " but no SecretRotation targets it. Why: a credential that never rotates stays valid for as "
    "long as it is leaked. Fix: declare an aws.secretsmanager.SecretRotation for it (the "
    "rotation component does this for every secret with `rotation:` in the stack file).")
SLOW = (
    'SecretRotation "slow-rotation" rotates Secret "slow" every 90 days; this environment allows '
    "at most 30. Why: the longer a credential lives, the longer a leaked copy works. Fix: set "
    "platform.rotation.schedule_days to 30 or less in the stack file.")
NO_LAMBDA = (
    'SecretRotation "slow-rotation" (for Secret "slow") names no rotation Lambda '
    "(rotationLambdaArn). Why: Secrets Manager cannot rotate without one. Fix: point it at the "
    "environment's rotation function.")
NO_PERMISSION = (
    'SecretRotation "slow-rotation" (for Secret "slow") does not depend on a lambda.Permission '
    "for secretsmanager.amazonaws.com. Why: the first rotation starts as soon as the rotation is "
    "created and fails if Secrets Manager may not invoke the function yet. Fix: add "
    "depends_on=[permission].")


def unscheduled(days: int) -> str:
    return ('SecretRotation "unscheduled-rotation" (for Secret "unscheduled") has no rotation '
            "schedule this pack can read. Why: without automaticallyAfterDays or a rate()/cron() "
            "scheduleExpression the secret does not rotate on a schedule. Fix: set "
            f"platform.rotation.schedule_days to at most {days} in the stack file.")


AWS_MANAGED = (
    'Secret "aws-managed" is encrypted with the AWS-managed key (no kmsKeyId). Why: this '
    "environment requires a customer-managed KMS key with rotation, so access is governed by a "
    "key policy and can be revoked. Fix: set platform.aws.customer_managed_kms_key: true in the "
    "stack file.")
RECOVERY = (
    'Secret "stale-key" has a recovery window of 0 days; this environment requires at least 7. '
    "Why: a deleted secret can be restored only within its recovery window. Fix: set "
    "platform.aws.recovery_window_in_days to 7 or more.")


def key_rotation_off(secret: str) -> str:
    return (f'Secret "{secret}" uses Key "old-key", whose automatic rotation is off. Why: this '
            "environment requires key rotation. Fix: set enable_key_rotation=True on the key.")


FOREIGN = (
    'Secret "foreign-key" uses a KMS key that is not declared in this stack, so its rotation '
    "cannot be verified. Why: this environment requires a customer-managed key with automatic "
    "rotation. Fix: use the environment's key (platform.aws.customer_managed_kms_key: true).")


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


def test_rotation_lambda_hardening(prod):
    resources = [
        lambda_function("good-fn"),
        lambda_function("old-fn", runtime="python3.8", timeout=900,
                        variables={"DB_PASSWORD": f"Zq8{CANARY}x", "LOG_LEVEL": "INFO"}),
        lambda_function("image-fn", runtime=None, timeout=None),  # property missing
        permission("good-perm"),
        permission("no-source", source_account=None),
        permission("other-account", source_account="444444444444"),
        permission("public", principal="*"),
        permission("s3-perm", principal="s3.amazonaws.com", source_account=None),
        permission("s3-scoped", principal="s3.amazonaws.com", source_account=None,
                   sourceArn="arn:aws:s3:::shop-prod-uploads"),
        permission("wide-action", action="lambda:*"),
        permission("no-principal", principal=None),  # property missing
    ]
    runtime_why = ("Why: other runtimes are deprecated or unreviewed and stop getting security "
                   "patches. Fix: set runtime to one of the allowed.")
    assert only("rotation-lambda-hardening", prod.violations(resources)) == [
        ("rotation-lambda-hardening", name, "mandatory", text) for name, text in [
            ("old-fn", 'Function "old-fn" has runtime "python3.8"; allowed: python3.12, '
                       f"python3.13. {runtime_why}"),
            ("old-fn", 'Function "old-fn" has a timeout of 900 s; at most 300 s allowed. Why: a '
                       "hung rotation holds a database connection and delays the retry. Fix: "
                       "lower timeout."),
            ("old-fn", 'Function "old-fn": environment variable(s) DB_PASSWORD look like '
                       "credentials. Why: a rotation function must read secrets from Secrets "
                       "Manager, never carry them. Fix: pass ARNs, not values, and rotate the "
                       "exposed ones."),
            ("image-fn", 'Function "image-fn" has no runtime (a container image?); allowed: '
                         f"python3.12, python3.13. {runtime_why}"),
            ("no-source", 'Permission "no-source" lets Secrets Manager invoke the function '
                          "without source_account. Why: any account's Secrets Manager could "
                          "then call it (the confused-deputy problem). Fix: set source_account "
                          "to this environment's account id."),
            ("other-account", 'Permission "other-account": source_account 444444444444 is not '
                              "this environment's account 333333333333. Fix: use 333333333333."),
            ("public", 'Permission "public" lets any principal invoke the function. Fix: name '
                       "the service principal (secretsmanager.amazonaws.com) and "
                       "source_account."),
            ("s3-perm", 'Permission "s3-perm" lets s3.amazonaws.com invoke the function without '
                        "source_account or source_arn (confused deputy). Fix: set one of them."),
            ("wide-action", 'Permission "wide-action" grants action "lambda:*". Why: a '
                            "permission for a service should allow invoking the function and "
                            "nothing else. Fix: use lambda:InvokeFunction."),
        ]]


def test_iam_least_privilege(prod):
    secret = sm_arn("configplane/prod/api/DATABASE_PASSWORD")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    public_trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
    resources = [
        iam_policy("good-policy",
                   allow(["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"], secret),
                   allow("secretsmanager:GetRandomPassword", "*"),
                   allow(["kms:Decrypt", "kms:GenerateDataKey"], "*", Condition={
                       "StringEquals": {"kms:EncryptionContext:SecretARN": secret}}),
                   {"Effect": "Deny", "Action": "*", "Resource": "*"}),
        iam_policy("wide-policy",
                   allow("secretsmanager:*", "*"),
                   allow(["kms:Decrypt"], "*"),
                   allow("iam:PassRole", "*"),
                   {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}),
        resource("aws:iam/role:Role", "lambda-role", {"assumeRolePolicy": json.dumps(trust)}),
        resource("aws:iam/role:Role", "public-role", {
            "assumeRolePolicy": json.dumps(public_trust),
            "managedPolicyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"]}),
        resource("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "admin-attachment", {
            "role": "rotation", "policyArn": "arn:aws:iam::aws:policy/SecretsManagerReadWrite"}),
        resource("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "basic-attachment", {
            "role": "rotation",
            "policyArn": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}),
        iam_policy("broken-policy", raw="{not json"),
        resource("aws:iam/rolePolicy:RolePolicy", "no-document", {"role": "rotation"}),
    ]
    managed = ("Why: it grants far more than any configplane function needs. Fix: attach a "
               "policy that names the secrets and keys used.")
    wide = 'RolePolicy "wide-policy": policy statement'
    assert only("iam-least-privilege", prod.violations(resources)) == [
        ("iam-least-privilege", name, "mandatory", text) for name, text in [
            ("wide-policy", f"{wide} 0: wildcard action(s) secretsmanager:*. Why: they grant "
                            "every current and future action of the service. Fix: list the "
                            "actions needed."),
            ("wide-policy", f'{wide} 0: secretsmanager:* on every secret (Resource "*"). Why: '
                            "the function could read or change any secret of the account. Fix: "
                            "name the secrets' ARNs."),
            ("wide-policy", f"{wide} 1: kms:Decrypt on every key without a Condition. Why: the "
                            "function could decrypt anything encrypted with any key it may use. "
                            "Fix: name the key, or add a condition such as "
                            "kms:EncryptionContext:SecretARN."),
            ("wide-policy", f"{wide} 2: iam:PassRole on every role. Why: it lets the holder hand "
                            "any role to a service it controls. Fix: name the role's ARN."),
            ("wide-policy", f"{wide} 3: Allow with NotAction/NotResource grants everything not "
                            "listed. Fix: list the actions and resources granted."),
            ("public-role", 'Role "public-role" attaches the AWS-managed policy '
                            f"AdministratorAccess. {managed}"),
            ("public-role", 'Role "public-role": assumeRolePolicy statement 0: anyone may assume '
                            'the role (Principal "*"). Fix: name the service principal '
                            "(lambda.amazonaws.com)."),
            ("admin-attachment", 'RolePolicyAttachment "admin-attachment" attaches the '
                                 f"AWS-managed policy SecretsManagerReadWrite. {managed}"),
            ("broken-policy", 'RolePolicy "broken-policy": policy cannot be checked: not valid '
                              "JSON (line 1). Fix: give a JSON policy document with a Statement "
                              "list."),
        ]]
