"""ARNs in the offline plan are shaped as the provider builds them, and IAM documents pass an
IAM linter.

The ARN formats are AWS's own (the Service Authorization Reference's resource types, as
parliament ships them in its IAM definition); the linter is parliament's policy analysis.
"""

from __future__ import annotations

import json
import re
from functools import cache

import pytest
from parliament import analyze_policy_string, iam_definition

from tests.conftest import REPO, STACKS
from tests.projects import sample_plan

ARN_TOKEN = re.compile(r"arn:[A-Za-z0-9*?-]*:[^\s\"',]*")
VARIABLES = {"Partition": r"aws(-[a-z]+)*", "Region": r"[a-z]{2}(-[a-z]+)+-\d",
             "Account": r"\d{12}"}


@cache
def formats() -> dict[str, list[re.Pattern]]:
    """service prefix -> its resource types' ARN formats as regexes."""
    out: dict[str, list[re.Pattern]] = {}
    for service in iam_definition:
        for resource in service["resources"]:
            parts = re.split(r"(\$\{[A-Za-z0-9]+\})", resource["arn"])
            pattern = "".join(
                f"(?:{VARIABLES.get(p[2:-1], '.+')})" if p.startswith("${") else re.escape(p)
                for p in parts)
            out.setdefault(service["prefix"], []).append(re.compile(pattern))
    return out


def strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value


@pytest.fixture(scope="module", params=STACKS)
def plan(request):
    return sample_plan(request.param)


def arns_of(plan) -> set[str]:
    texts = [t for r in plan.resources for t in (*strings(r.inputs), *strings(r.outputs))]
    texts += list(strings(plan.outputs))
    # JSON policy documents are strings too: their ARNs end at the closing quote
    return {arn for text in texts for arn in ARN_TOKEN.findall(text)}


def test_every_arn_in_the_plan_has_a_documented_format(plan):
    arns = arns_of(plan)
    services = {a.split(":")[2] for a in arns}
    # the plan's named resources: secrets, key, roles, OIDC provider, function, log group
    assert {"secretsmanager", "iam", "lambda", "logs"} <= services
    for arn in sorted(arns):
        prefix = arn.split(":")[2]
        assert prefix in formats(), f"{arn}: no AWS service {prefix!r}"
        patterns = formats()[prefix]
        assert any(p.fullmatch(arn) for p in patterns), (
            f"{arn} matches none of AWS's formats for {prefix}: "
            + ", ".join(p.pattern for p in patterns))


def test_arns_are_in_the_stacks_account_and_region(plan):
    from configplane.inputs import read_stack_files
    from configplane.validation import load_stack

    platform = load_stack(read_stack_files(REPO, plan.stack)).platform
    aws = platform.aws
    # backups and secret replicas live in regions of their own (and nowhere else)
    elsewhere = {*aws.replica_regions, *([platform.backup.region] if platform.backup else [])}
    arns = arns_of(plan)
    assert arns
    for arn in arns:
        _, partition, service, region, account, _ = arn.split(":", 5)
        assert partition == "aws", arn
        if service == "s3":  # AWS's S3 ARNs name neither
            assert (region, account) == ("", ""), arn
            continue
        assert account == aws.account_id, arn
        assert region == "" if service == "iam" else region in {aws.region, *elsewhere}, arn
    kms_regions = {r.inputs.get("region") or aws.region for r in plan.resources
                   if r.type == "aws:kms/key:Key"}
    assert kms_regions <= {aws.region, *elsewhere}
    assert elsewhere <= kms_regions  # each other region has its own key


def test_declared_secrets_carry_the_providers_suffix(plan):
    secrets = [r for r in plan.resources if r.type == "aws:secretsmanager/secret:Secret"]
    assert secrets
    for secret in secrets:
        name = secret.inputs["name"]
        assert re.fullmatch(rf"arn:aws:secretsmanager:[a-z0-9-]+:\d{{12}}:secret:"
                            rf"{re.escape(name)}-[A-Za-z0-9]{{6}}", secret.outputs["arn"])


def iam_documents(plan):
    for r in plan.resources:
        if not r.type.startswith("aws:iam/"):
            continue
        if "policy" in r.inputs:
            yield r.name, "policy", r.inputs["policy"]
        if "assumeRolePolicy" in r.inputs:
            yield r.name, "assumeRolePolicy", r.inputs["assumeRolePolicy"]


# What parliament reports about documents it was not written for, and nothing else:
# - a trust policy has no Resource (IAM forbids one there); parliament lints identity policies;
# - parliament 1.6.4 knows SAML providers and four web-identity hosts, not IAM OIDC providers
#   (`arn:aws:iam::<account>:oidc-provider/...`, the Federated principal IRSA and GitHub
#   Actions documents);
# - the rotation function's ENI actions on "*", as AWS's own AWSLambdaVPCAccessExecutionRole
#   (and in the boundary of a shard's deploy rights, which must leave them to that role).
TRUST_LIMITS = {("MALFORMED", "Statement contains neither Resource nor NotResource")}
# the cluster's IAM OIDC provider (IRSA) and GitHub Actions' (a shard's deploy role)
FEDERATED = (r"arn:aws:iam::\d{12}:oidc-provider/(oidc\.eks\.[a-z0-9-]+\.amazonaws\.com/id/"
             r"[A-F0-9]{32}|token\.actions\.githubusercontent\.com)")
ENI = ["ec2:AssignPrivateIpAddresses", "ec2:CreateNetworkInterface",
       "ec2:DeleteNetworkInterface", "ec2:UnassignPrivateIpAddresses"]


def test_iam_documents_pass_parliament(plan):
    linted = 0
    for name, field, document in iam_documents(plan):
        linted += 1
        findings = analyze_policy_string(document).findings
        found = {(f.issue, json.dumps(f.detail, sort_keys=True)) for f in findings}
        if field == "assumeRolePolicy":
            expected = {(i, json.dumps(d)) for i, d in TRUST_LIMITS}
            for statement in json.loads(document)["Statement"]:
                principal = statement["Principal"]
                if "Federated" in principal:
                    assert re.fullmatch(FEDERATED, principal["Federated"])
                    expected.add(("UNKNOWN_FEDERATION_SOURCE",
                                  json.dumps(principal["Federated"])))
        # the rotation function's role, and the boundary capping it (a shard's deploy rights)
        elif name.startswith(("rotation-", "deploy-rights-")) and any(
                s.get("Sid") == "ManageVpcInterfaces" for s in json.loads(document)["Statement"]):
            expected = {("RESOURCE_STAR", json.dumps(ENI))}
        else:
            expected = set()
        assert found == expected, (name, field, found)
    assert linted >= 2


def test_parliament_rejects_the_shapes_the_plan_used_to_show():
    """The linter can fail: the old log ARN shape is refused for logs actions."""
    bad = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["logs:PutLogEvents"],
        "Resource": "arn:aws:cloudwatch:eu-west-1:333333333333:/aws/lambda/x:*"}]})
    assert [f.issue for f in analyze_policy_string(bad).findings] == ["RESOURCE_MISMATCH"]
    assert not any(p.fullmatch("arn:aws:lambda:eu-west-1:333333333333:configplane-rotation-prod")
                   for p in formats()["lambda"])
