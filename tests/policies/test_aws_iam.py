"""iam-least-privilege: IAM policies, roles and attachments (policies/aws_iam.py)."""

from __future__ import annotations

import json

from tests.policies.builders import (
    allow,
    iam_policy,
    only,
    pack_module,
    resource,
    sm_arn,
)

IAM = pack_module("aws_iam")


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
    managed = IAM.WHY_FIX_BROAD_MANAGED
    wide = 'RolePolicy "wide-policy": policy statement'
    assert only("iam-least-privilege", prod.violations(resources)) == [
        ("iam-least-privilege", name, "mandatory", text) for name, text in [
            ("wide-policy", f"{wide} 0: wildcard action(s) secretsmanager:*. "
                            f"{IAM.WHY_FIX_WILDCARD_ACTION}"),
            ("wide-policy", f'{wide} 0: secretsmanager:* on every secret (Resource "*"). '
                            f"{IAM.WHY_FIX_EVERY_SECRET}"),
            ("wide-policy", f"{wide} 1: kms:Decrypt on every key without a Condition. "
                            f"{IAM.WHY_FIX_EVERY_KEY}"),
            ("wide-policy", f"{wide} 2: iam:PassRole on every role. {IAM.WHY_FIX_PASS_ROLE}"),
            ("wide-policy", f"{wide} 3: Allow with NotAction/NotResource grants everything not "
                            f"listed. {IAM.FIX_NOT_ACTION}"),
            ("public-role", 'Role "public-role" attaches the AWS-managed policy '
                            f"AdministratorAccess. {managed}"),
            ("public-role", 'Role "public-role": assumeRolePolicy statement 0: anyone may assume '
                            f'the role (Principal "*"). {IAM.FIX_ANY_PRINCIPAL}'),
            ("admin-attachment", 'RolePolicyAttachment "admin-attachment" attaches the '
                                 f"AWS-managed policy SecretsManagerReadWrite. {managed}"),
            ("broken-policy", 'RolePolicy "broken-policy": policy cannot be checked: not valid '
                              f"JSON (line 1). {IAM.FIX_UNPARSEABLE}"),
        ]]
