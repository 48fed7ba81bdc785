"""components/rotation.py under Pulumi mocks: the resources it declares, their arguments,
the exact IAM grant, and the function's archive."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import handler
import pulumi
import pytest

from components import rotation
from components.rotation import (
    PasswordPolicy,
    RotatedSecret,
    SecretRotator,
    SecretRotatorArgs,
    rotation_tags,
)
from configplane.inputs import read_stack_files
from configplane.offline import PlanMocks, PlannedResource, RecordingMonitor
from configplane.validation import load_stack
from tests.projects import REPO

# The sample prod stack's account and region: the plan's mocks answer in them.
MODEL = load_stack(read_stack_files(REPO, "prod"))
ACCOUNT, REGION = MODEL.platform.aws.account_id, MODEL.platform.aws.region
SM = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret"
KMS = f"arn:aws:kms:{REGION}:{ACCOUNT}:key"
LOG_GROUP_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/configplane-rotation-prod"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:configplane-rotation-prod"


@pytest.fixture
def declare():
    """Declares a SecretRotator under the offline plan's own mocks and monitor (the ARNs and
    auto-names a provider gives, parents and dependencies as the engine records them); returns
    the planned resources by name."""

    def run(args: SecretRotatorArgs) -> dict[str, PlannedResource]:
        monitor = RecordingMonitor(PlanMocks(MODEL))
        pulumi.runtime.set_mocks(monitor.mocks, project="configplane", stack="prod",
                                 preview=False, monitor=monitor)

        @pulumi.runtime.test
        def program():
            rotator = SecretRotator("rotation", args)
            return pulumi.Output.all(rotator.function_arn, rotator.role_arn)
        program()
        return {r.name: r for r in monitor.planned}

    return run


def full_args(**overrides) -> SecretRotatorArgs:
    values = dict(
        environment="prod", account_id=ACCOUNT, region=REGION,
        secrets=[
            RotatedSecret("api-token", f"{SM}:api-token-AbCdEf", "random",
                          kms_key_arn=f"{KMS}/k1"),
            RotatedSecret("reports-db", f"{SM}:reports-AbCdEf", "postgres-single-user"),
            RotatedSecret("orders-db", f"{SM}:orders-AbCdEf", "postgres-alternating-users",
                          kms_key_arn=f"{KMS}/k1", master_secret_arn=f"{SM}:master-AbCdEf",
                          master_kms_key_arn=f"{KMS}/k2"),
        ],
        schedule_days=30, subnet_ids=["subnet-1", "subnet-2"], security_group_ids=["sg-1"],
        password=PasswordPolicy(length=40, exclude_characters="\"'\\/@:"),
        tags={"environment": "prod"},
    )
    values.update(overrides)
    return SecretRotatorArgs(**values)


def kms_statement(sid, actions, key, secret):
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": key,
            "Condition": {"StringEquals": {
                "kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com",
                "kms:EncryptionContext:SecretARN": secret}}}


def test_declares_the_resources_with_their_arguments(declare):
    planned = declare(full_args())
    types = {name: r.type for name, r in planned.items()}
    assert types == {
        "rotation": "configplane:rotation:SecretRotator",
        "rotation-logs": "aws:cloudwatch/logGroup:LogGroup",
        "rotation-role": "aws:iam/role:Role",
        "rotation-policy": "aws:iam/rolePolicy:RolePolicy",
        "rotation-function": "aws:lambda/function:Function",
        "rotation-permission": "aws:lambda/permission:Permission",
        "rotation-rotation-api-token": "aws:secretsmanager/secretRotation:SecretRotation",
        "rotation-rotation-reports-db": "aws:secretsmanager/secretRotation:SecretRotation",
        "rotation-rotation-orders-db": "aws:secretsmanager/secretRotation:SecretRotation",
    }
    component_urn = planned["rotation"].urn
    assert component_urn.endswith("::rotation") and all(
        planned[name].parent == component_urn for name in types if name != "rotation")
    role_name = planned["rotation-role"].outputs["name"]  # the engine's auto-name
    assert re.fullmatch(r"rotation-role-[0-9a-f]{7}", role_name)

    function = planned["rotation-function"].inputs
    assert {k: function[k] for k in ("name", "runtime", "handler", "timeout", "memorySize",
                                     "role", "tags")} == {
        "name": "configplane-rotation-prod", "runtime": "python3.13",
        "handler": "handler.lambda_handler", "timeout": 30, "memorySize": 128,
        "role": f"arn:aws:iam::{ACCOUNT}:role/{role_name}", "tags": {"environment": "prod"},
    }
    assert function["environment"] == {"variables": {
        "PASSWORD_LENGTH": "40", "EXCLUDE_CHARACTERS": "\"'\\/@:"}}
    assert function["vpcConfig"] == {"subnetIds": ["subnet-1", "subnet-2"],
                                     "securityGroupIds": ["sg-1"]}
    assert function["loggingConfig"] == {
        "logFormat": "JSON", "applicationLogLevel": "INFO", "systemLogLevel": "WARN",
        "logGroup": "/aws/lambda/configplane-rotation-prod"}
    assert isinstance(function["code"], pulumi.AssetArchive)

    assert planned["rotation-logs"].inputs == {
        "name": "/aws/lambda/configplane-rotation-prod", "retentionInDays": 90,
        "tags": {"environment": "prod"}}
    role = planned["rotation-role"].inputs
    assert json.loads(role["assumeRolePolicy"]) == {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    assert planned["rotation-policy"].inputs["role"] == role_name  # a role's id is its name
    assert planned["rotation-permission"].inputs == {
        "action": "lambda:InvokeFunction", "function": "configplane-rotation-prod",
        "principal": "secretsmanager.amazonaws.com", "sourceAccount": ACCOUNT}

    urns = {name: f"urn:pulumi:prod::configplane::configplane:rotation:SecretRotator${typ}::{name}"
            for name, typ in types.items()}
    for name, arn in (("api-token", f"{SM}:api-token-AbCdEf"),
                      ("reports-db", f"{SM}:reports-AbCdEf"), ("orders-db", f"{SM}:orders-AbCdEf")):
        assert planned[f"rotation-rotation-{name}"].inputs == {
            "secretId": arn, "rotationLambdaArn": FUNCTION_ARN,
            "rotationRules": {"automaticallyAfterDays": 30}}
        assert set(planned[f"rotation-rotation-{name}"].dependencies) >= {
            urns["rotation-permission"], urns["rotation-policy"]}
    assert set(planned["rotation-function"].dependencies) >= {
        urns["rotation-policy"], urns["rotation-logs"]}


def test_the_policy_grants_exactly_the_list(declare):
    planned = declare(full_args())
    policy = json.loads(planned["rotation-policy"].inputs["policy"])
    assert policy == {"Version": "2012-10-17", "Statement": [
        {"Sid": "RotateSecrets", "Effect": "Allow",
         "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
                    "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"],
         "Resource": [f"{SM}:api-token-AbCdEf", f"{SM}:orders-AbCdEf", f"{SM}:reports-AbCdEf"]},
        {"Sid": "GeneratePasswords", "Effect": "Allow",
         "Action": "secretsmanager:GetRandomPassword", "Resource": "*"},
        kms_statement("SecretKey0", ["kms:Decrypt", "kms:GenerateDataKey"], f"{KMS}/k1",
                      f"{SM}:api-token-AbCdEf"),
        kms_statement("SecretKey2", ["kms:Decrypt", "kms:GenerateDataKey"], f"{KMS}/k1",
                      f"{SM}:orders-AbCdEf"),
        {"Sid": "ReadMasterSecrets", "Effect": "Allow",
         "Action": "secretsmanager:GetSecretValue", "Resource": [f"{SM}:master-AbCdEf"]},
        kms_statement("MasterKey2", ["kms:Decrypt"], f"{KMS}/k2", f"{SM}:master-AbCdEf"),
        {"Sid": "WriteOwnLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": f"{LOG_GROUP_ARN}:*"},
        {"Sid": "ManageVpcInterfaces", "Effect": "Allow",
         "Action": ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"],
         "Resource": "*"},
    ]}


def test_random_only_outside_a_vpc_with_a_schedule_expression(declare):
    args = full_args(secrets=[RotatedSecret("api-token", f"{SM}:api-token-AbCdEf", "random")],
                     schedule_days=None, schedule_expression="rate(10 days)", subnet_ids=(),
                     security_group_ids=(), password=PasswordPolicy(), tags={})
    planned = declare(args)
    policy = json.loads(planned["rotation-policy"].inputs["policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["RotateSecrets", "GeneratePasswords",
                                                       "WriteOwnLogs"]
    function = planned["rotation-function"].inputs
    assert "vpcConfig" not in function and "environment" not in function
    assert planned["rotation-rotation-api-token"].inputs["rotationRules"] == {
        "scheduleExpression": "rate(10 days)"}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"schedule_expression": "rate(1 day)"}, "set exactly one of schedule_days and"),
    ({"schedule_days": None}, "set exactly one of schedule_days and"),
    ({"schedule_days": 0}, "schedule_days must be from 1 to 1000"),
    ({"schedule_days": None, "schedule_expression": "every day"},
     r"schedule_expression must be `rate\(<n> days\|hours\|minutes\)` or a six-field"),
    ({"schedule_days": None, "schedule_expression": "rate(every 30 days)"},
     "schedule_expression must be `rate"),
    ({"schedule_days": None, "schedule_expression": "cron(0 12 * * ?)"},
     "schedule_expression must be `rate"),
    ({"subnet_ids": ()}, "set both subnet_ids and security_group_ids, or neither"),
    ({"subnet_ids": (), "security_group_ids": ()}, "database secrets need subnet_ids"),
    ({"secrets": []}, "secrets is empty"),
    ({"environment": "Prod_1"}, "environment must be letters, digits and '-'"),
    ({"secrets": [RotatedSecret("a", "arn", "rsa")]}, r"secrets\['a'\]: strategy must be"),
    ({"secrets": [RotatedSecret("a", "arn", "postgres-alternating-users")]},
     r"secrets\['a'\]: postgres-alternating-users needs master_secret_arn"),
    ({"secrets": [RotatedSecret("a", "arn", "random", master_secret_arn="m")]},
     r"secrets\['a'\]: only postgres-alternating-users uses a master secret"),
    ({"secrets": [RotatedSecret("a", "x", "random"), RotatedSecret("a", "y", "random")]},
     r"secrets\['a'\]: rotation name `a` is used by more than one secret"),
    ({"secrets": [RotatedSecret("a.b", "x", "random")]},
     r"secrets\['a.b'\]: rotation name `a.b` must be letters, digits and '-'"),
])
def test_bad_arguments_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        full_args(**overrides)


# --- tags shared with the handler ----------------------------------------------------------


def test_rotation_tags_speak_the_handlers_language():
    # the prefix and strategies themselves: tests/rotation/test_contract_pin.py
    tags = rotation_tags("random", length=20, exclude_characters=":/", exclude_punctuation=True,
                         require_each_included_type=False, field="token")
    assert tags == {
        "configplane:rotation-strategy": "random", "configplane:rotation-length": "20",
        "configplane:rotation-exclude-characters": ":/",
        "configplane:rotation-exclude-punctuation": "true",
        "configplane:rotation-require-each-included-type": "false",
        "configplane:rotation-field": "token",
    }
    assert handler.password_request({}, tags) == {
        "PasswordLength": 20, "ExcludeCharacters": "/@\"'\\:", "ExcludeNumbers": False,
        "ExcludePunctuation": True, "ExcludeUppercase": False, "ExcludeLowercase": False,
        "RequireEachIncludedType": False}
    assert PasswordPolicy(length=12, exclude_lowercase=False).environment() == {
        "PASSWORD_LENGTH": "12", "EXCLUDE_LOWERCASE": "false"}


def test_rotation_tags_refuse_what_a_tag_cannot_hold():
    with pytest.raises(ValueError, match="PasswordPolicy.exclude_characters"):
        rotation_tags("random", exclude_characters="\"'")
    with pytest.raises(ValueError, match="rotation strategy 'rsa' is not one of"):
        rotation_tags("rsa")
    with pytest.raises(ValueError, match="password length 4 must be from 8 to 4096"):
        rotation_tags("random", length=4)
    with pytest.raises(ValueError, match="password length 5000 must be from 8 to 4096"):
        PasswordPolicy(length=5000)


# --- the archive ---------------------------------------------------------------------------


def test_archive_holds_the_handler_and_pinned_pure_python_packages():
    assets = rotation.code_archive().assets
    names = set(assets)
    assert {"handler.py", "rotation_postgres.py", "pg8000/native.py", "scramp/core.py",
            "asn1crypto/core.py", "dateutil/parser/_parser.py", "six.py",
            "pg8000-1.31.6.dist-info/METADATA", "scramp-1.5.0.dist-info/METADATA"} <= names
    assert not [n for n in names if n.endswith((".pyc", "/RECORD", "/INSTALLER", ".so"))]
    assert not [n for n in names if "/" not in n and n not in ("handler.py",
                                                               "rotation_postgres.py", "six.py")]


def test_archive_imports_without_the_programs_packages(tmp_path):
    """Unpacked alone (with stand-ins for the runtime's boto3), the handler and the driver
    import and work: every dependency the function needs is in the archive."""
    unpacked = tmp_path / "task"
    for name, asset in rotation.code_archive().assets.items():
        target = unpacked / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Path(asset.path).read_bytes())
    runtime = tmp_path / "runtime"
    (runtime / "boto3").mkdir(parents=True)
    (runtime / "boto3" / "__init__.py").write_text("def client(*a, **k): raise RuntimeError\n")
    (runtime / "botocore").mkdir()
    (runtime / "botocore" / "__init__.py").write_text("")
    (runtime / "botocore" / "exceptions.py").write_text("class ClientError(Exception): pass\n")
    script = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import rotation_postgres;"
              "print(rotation_postgres.scram_verifier('x')[:19], "
              "rotation_postgres.pg8000.__file__.startswith(sys.argv[1]))")
    result = subprocess.run([sys.executable, "-S", "-E", "-c", script, str(unpacked),
                             str(runtime)], capture_output=True, text=True, timeout=60)
    assert result.stderr == "" and result.stdout == "SCRAM-SHA-256$4096: True\n"


def test_archive_needs_the_lambda_directory(tmp_path):
    with pytest.raises(ValueError, match=r"requirements.txt not found: the rotation function"):
        rotation.code_archive(tmp_path / "nowhere")


@pytest.mark.parametrize(("requirements", "message"), [
    ("pg8000==0.0.1\n", r"pins pg8000==0\.0\.1 but 1\.31\.6 is installed; run `venv/bin/pip"),
    ("no-such-package-here==1.0\n", r"no-such-package-here==1\.0 is not installed here"),
    (f"pydantic-core=={importlib.metadata.version('pydantic-core')}\n",
     "pydantic-core ships compiled code"),
    ("pg8000>=1.0\n", r"requirements.txt:1: write each dependency as name==version"),
])
def test_archive_refuses_unpinned_missing_or_compiled_packages(tmp_path, requirements, message):
    (tmp_path / "handler.py").write_text("")
    (tmp_path / "requirements.txt").write_text(requirements)
    with pytest.raises(ValueError, match=message):
        rotation.code_archive(tmp_path)


def test_requirements_pins_are_what_is_installed():
    pins = rotation._pinned_requirements(rotation.LAMBDA_DIR / "requirements.txt")
    assert pins == [("pg8000", "1.31.6"), ("scramp", "1.5.0"), ("asn1crypto", "1.5.1"),
                    ("python-dateutil", "2.9.0.post0"), ("six", "1.17.0")]



def test_a_shared_archive_must_hold_the_ca_bundle_its_function_is_told_about(tmp_path):
    """`code` given with `db_ca_bundle`: the function reads DB_SSL_CA_FILE from its code, so an
    archive without the bundle is refused here, not at the first rotation."""
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ValueError, match="`code` holds no db-ca-bundle.pem"):
        full_args(db_ca_bundle=str(bundle), code=rotation.code_archive())
    with_bundle = rotation.code_archive(ca_bundle=str(bundle))
    assert full_args(db_ca_bundle=str(bundle), code=with_bundle).code is with_bundle
    assert full_args(code=rotation.code_archive()).db_ca_bundle is None  # no bundle, nothing to hold
