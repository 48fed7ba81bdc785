"""Secrets Manager rotation for one environment: a rotation Lambda built from
``lambdas/rotation/``, its least-privilege role, the permission that lets Secrets Manager
invoke it, and a ``SecretRotation`` per secret.

Packaging: the function's archive is a ``pulumi.AssetArchive`` of the handler's ``*.py``
files plus every file of the pure-Python packages pinned in
``lambdas/rotation/requirements.txt``, read from the environment the program runs in
(``importlib.metadata``), where the same pins are installed from ``requirements.txt``. No
build step, no network and no build directory to forget: ``configplane plan`` and the tests
work offline, and the archive's content (hence its hash) is the same on every machine with
those pins. The program refuses to build the archive if an installed version differs from
the pin, or if a package ships compiled code. Bytecode, ``RECORD`` and installer files are
left out so the archive depends only on the pins. boto3 is the Lambda runtime's own.

The function's strategy per secret is read from the secret's tags: put ``rotation_tags(...)``
on each rotated ``aws.secretsmanager.Secret`` (see ``lambdas/rotation/handler.py``).
"""

import importlib.metadata
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws

from configplane.contract import (
    ROTATION_FIELD_TAG,
    ROTATION_STRATEGIES,
    ROTATION_STRATEGY_TAG,
    ROTATION_TAG_PREFIX,
)
from configplane.model import rotation_problems
from configplane.ownership import name_length_problems, rotation_function_name

LAMBDA_DIR = Path(__file__).resolve().parents[1] / "lambdas" / "rotation"
RUNTIME = "python3.13"
HANDLER = "handler.lambda_handler"
TIMEOUT_SECONDS = 30  # three 5-second logins at most, with room to spare
CA_BUNDLE_NAME = "db-ca-bundle.pem"
SECRET_ACTIONS = [
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
]
ENI_ACTIONS = [  # what AWSLambdaVPCAccessExecutionRole grants for the function's ENIs
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
]
_TAG_VALUE = re.compile(r"^[\w\s.:/=+\-@]*$")  # what an AWS tag value may hold


def rotation_tags(strategy: str, *, length: int | None = None,
                  exclude_characters: str | None = None, exclude_numbers: bool | None = None,
                  exclude_punctuation: bool | None = None, exclude_uppercase: bool | None = None,
                  exclude_lowercase: bool | None = None,
                  require_each_included_type: bool | None = None,
                  field: str | None = None) -> dict[str, str]:
    """The tags a rotated secret carries: its strategy and per-secret password options.

    ``exclude_characters`` adds to the environment's list; tag values cannot hold quotes or
    backslashes, so those belong in ``PasswordPolicy.exclude_characters``.
    """
    if strategy not in ROTATION_STRATEGIES:
        raise ValueError(f"rotation strategy {strategy!r} is not one of {', '.join(ROTATION_STRATEGIES)}")
    tags = {ROTATION_STRATEGY_TAG: strategy}
    _check_length(length)
    if length is not None:
        tags[ROTATION_TAG_PREFIX + "length"] = str(length)
    if exclude_characters:
        if not _TAG_VALUE.fullmatch(exclude_characters):
            raise ValueError(
                "exclude_characters for one secret may only hold letters, digits, spaces and "
                "_ . : / = + - @ (what a tag value allows); put other characters in the "
                "environment's PasswordPolicy.exclude_characters")
        tags[ROTATION_TAG_PREFIX + "exclude-characters"] = exclude_characters
    for suffix, value in (("exclude-numbers", exclude_numbers),
                          ("exclude-punctuation", exclude_punctuation),
                          ("exclude-uppercase", exclude_uppercase),
                          ("exclude-lowercase", exclude_lowercase),
                          ("require-each-included-type", require_each_included_type)):
        if value is not None:
            tags[ROTATION_TAG_PREFIX + suffix] = "true" if value else "false"
    if field:
        tags[ROTATION_FIELD_TAG] = field
    return tags


def _check_length(length: int | None) -> None:
    if length is not None and not 8 <= length <= 4096:
        raise ValueError(f"password length {length} must be from 8 to 4096")


@dataclass(frozen=True)
class PasswordPolicy:
    """Environment-wide defaults for generated passwords; None keeps the handler's default
    (32 characters, excluding ``/@"'\\``, each included type required)."""

    length: int | None = None
    exclude_characters: str | None = None
    exclude_numbers: bool | None = None
    exclude_punctuation: bool | None = None
    exclude_uppercase: bool | None = None
    exclude_lowercase: bool | None = None
    require_each_included_type: bool | None = None

    def __post_init__(self) -> None:
        _check_length(self.length)

    def environment(self) -> dict[str, str]:
        variables = {}
        if self.length is not None:
            variables["PASSWORD_LENGTH"] = str(self.length)
        if self.exclude_characters is not None:
            variables["EXCLUDE_CHARACTERS"] = self.exclude_characters
        for name, value in (("EXCLUDE_NUMBERS", self.exclude_numbers),
                            ("EXCLUDE_PUNCTUATION", self.exclude_punctuation),
                            ("EXCLUDE_UPPERCASE", self.exclude_uppercase),
                            ("EXCLUDE_LOWERCASE", self.exclude_lowercase),
                            ("REQUIRE_EACH_INCLUDED_TYPE", self.require_each_included_type)):
            if value is not None:
                variables[name] = "true" if value else "false"
        return variables


@dataclass(frozen=True)
class RotatedSecret:
    """One secret to rotate. ``name`` names its child resources; ``strategy`` must match the
    secret's ``configplane:rotation-strategy`` tag. Alternating users need the master
    secret (and its KMS key when that is customer-managed); None for a KMS key means the
    AWS-managed ``aws/secretsmanager`` key, which needs no grant."""

    name: str
    secret_arn: pulumi.Input[str]
    strategy: str
    kms_key_arn: pulumi.Input[str] | None = None
    master_secret_arn: pulumi.Input[str] | None = None
    master_kms_key_arn: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class SecretRotatorArgs:
    """What one environment's rotation needs; exactly one of ``schedule_days`` (1-1000) and
    ``schedule_expression`` (``rate(...)`` or ``cron(...)``). Database secrets need
    ``subnet_ids`` and ``security_group_ids`` (the function then runs in the VPC, which must
    reach Secrets Manager through a VPC endpoint or NAT)."""

    environment: str
    account_id: str
    region: str
    secrets: Sequence[RotatedSecret]
    schedule_days: int | None = None
    schedule_expression: str | None = None
    subnet_ids: Sequence[pulumi.Input[str]] = ()
    security_group_ids: Sequence[pulumi.Input[str]] = ()
    password: PasswordPolicy = field(default_factory=PasswordPolicy)
    db_ca_bundle: str | None = None  # a PEM file shipped with the function to verify TLS
    # The function's code; None: `code_archive(ca_bundle=db_ca_bundle)` (given with
    # `db_ca_bundle`, it must hold the bundle: refused otherwise). Every function of an
    # environment ships the same one, so the program builds it once and passes it to each
    # (reading the pinned packages' files is most of a rotator's own cost).
    code: pulumi.AssetArchive | None = None
    log_retention_days: int = 90
    tags: Mapping[str, str] = field(default_factory=dict)
    # The one service whose secrets this function rotates: its own function and role, so no
    # rotation identity reaches two services' secrets (docs/isolation.md). None: the
    # environment's function for whatever secrets it is given.
    service: str | None = None
    # the permissions boundary of the function's role: its shard deployer's, in a split
    # environment (docs/fleet.md, Per-shard deploy rights)
    permissions_boundary: str | None = None

    def __post_init__(self) -> None:
        # The same rules `configplane validate` applies (configplane.model.rotation_rules).
        found = rotation_problems(
            self.environment,
            [(s.name, s.strategy, bool(s.master_secret_arn or s.master_kms_key_arn)
              if s.strategy != "postgres-alternating-users" else s.master_secret_arn is not None)
             for s in self.secrets],
            self.schedule_days, self.schedule_expression, self.subnet_ids,
            self.security_group_ids)
        problems = [(f"secrets[{p.secret!r}]: " if p.secret is not None else "") + p.message
                    for p in found]
        if self.service is not None:
            problems += name_length_problems(self.environment, self.service, aws=False,
                                             rotated=True)
        if self.db_ca_bundle and self.code is not None \
                and CA_BUNDLE_NAME not in (getattr(self.code, "assets", None) or {}):
            # the function would look for a CA file its code does not hold, and fail each TLS
            # connection at rotation time rather than here
            problems.append(f"`code` holds no {CA_BUNDLE_NAME} while `db_ca_bundle` is set: "
                            "build it with code_archive(ca_bundle=db_ca_bundle), or leave "
                            "`code` unset")
        if problems:
            raise ValueError("SecretRotatorArgs: " + "; ".join(problems))

    @property
    def function_name(self) -> str:
        return rotation_function_name(self.environment, self.service)

    @property
    def in_vpc(self) -> bool:
        return bool(self.subnet_ids)


def _pinned_requirements(path: Path) -> list[tuple[str, str]]:
    pins = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise ValueError(f"{path}:{number}: write each dependency as name==version")
        pins.append((name.strip(), version.strip()))
    return pins


_SKIPPED_METADATA = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def _distribution_assets(name: str, version: str, source: Path) -> dict[str, pulumi.Asset]:
    fix = f"run `venv/bin/pip install -r {source}` (and pin the same version in requirements.txt)"
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise ValueError(f"{source}: {name}=={version} is not installed here; {fix}") from None
    if dist.version != version:
        raise ValueError(f"{source}: pins {name}=={version} but {dist.version} is installed; {fix}")
    assets: dict[str, pulumi.Asset] = {}
    for file in dist.files or ():
        parts = file.parts
        if parts[0] == ".." or "__pycache__" in parts or file.suffix == ".pyc":
            continue
        if parts[0].endswith(".dist-info") and file.name in _SKIPPED_METADATA:
            continue
        if file.suffix in (".so", ".pyd", ".dylib"):
            raise ValueError(f"{source}: {name} ships compiled code ({file}); the rotation "
                             "function takes pure-Python packages only")
        assets[file.as_posix()] = pulumi.FileAsset(str(dist.locate_file(file)))
    return assets


def code_archive(lambda_dir: Path = LAMBDA_DIR, ca_bundle: str | None = None) -> pulumi.AssetArchive:
    """The function's code: the handler modules and their pinned pure-Python packages."""
    assets: dict[str, pulumi.Asset] = {
        path.name: pulumi.FileAsset(str(path)) for path in sorted(lambda_dir.glob("*.py"))
    }
    requirements = lambda_dir / "requirements.txt"
    if not requirements.is_file():
        raise ValueError(f"{requirements} not found: the rotation function's code "
                         "(lambdas/rotation/) must be deployed with the program")
    for name, version in _pinned_requirements(requirements):
        assets.update(_distribution_assets(name, version, requirements))
    if ca_bundle:
        assets[CA_BUNDLE_NAME] = pulumi.FileAsset(ca_bundle)
    return pulumi.AssetArchive(dict(sorted(assets.items())))


def policy_statements(region: str, secrets: Sequence[dict], log_group_arn: str,
                      in_vpc: bool) -> list[dict]:
    """The role's whole grant; ``secrets`` hold resolved ``arn``, ``kms_key_arn``,
    ``master_secret_arn`` and ``master_kms_key_arn`` (None when unused)."""
    via = f"secretsmanager.{region}.amazonaws.com"

    def key_statement(sid: str, actions: list[str], key: str, secret_arn: str) -> dict:
        return {
            "Sid": sid,
            "Effect": "Allow",
            "Action": actions,
            "Resource": key,
            "Condition": {"StringEquals": {
                "kms:ViaService": via,
                "kms:EncryptionContext:SecretARN": secret_arn,
            }},
        }

    statements: list[dict] = [
        {"Sid": "RotateSecrets", "Effect": "Allow", "Action": SECRET_ACTIONS,
         "Resource": sorted({s["arn"] for s in secrets})},
        {"Sid": "GeneratePasswords", "Effect": "Allow",
         "Action": "secretsmanager:GetRandomPassword", "Resource": "*"},
    ]
    for index, secret in enumerate(secrets):
        if secret["kms_key_arn"]:
            statements.append(key_statement(f"SecretKey{index}",
                                            ["kms:Decrypt", "kms:GenerateDataKey"],
                                            secret["kms_key_arn"], secret["arn"]))
    masters = sorted({s["master_secret_arn"] for s in secrets if s["master_secret_arn"]})
    if masters:
        statements.append({"Sid": "ReadMasterSecrets", "Effect": "Allow",
                           "Action": "secretsmanager:GetSecretValue", "Resource": masters})
    for index, secret in enumerate(secrets):
        if secret["master_secret_arn"] and secret["master_kms_key_arn"]:
            statements.append(key_statement(f"MasterKey{index}", ["kms:Decrypt"],
                                            secret["master_kms_key_arn"],
                                            secret["master_secret_arn"]))
    statements.append({"Sid": "WriteOwnLogs", "Effect": "Allow",
                       "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                       "Resource": f"{log_group_arn}:*"})
    if in_vpc:
        statements.append({"Sid": "ManageVpcInterfaces", "Effect": "Allow",
                           "Action": ENI_ACTIONS, "Resource": "*"})
    return statements


class SecretRotator(pulumi.ComponentResource):
    """The rotation of an environment's Secrets Manager secrets by one Lambda function.

    Usage (from ``__main__.py``, with the validated stack config)::

        SecretRotator("rotation", SecretRotatorArgs(
            environment="prod", account_id="123456789012", region="eu-west-1",
            secrets=[RotatedSecret("orders-db", secret.arn, "postgres-alternating-users",
                                   kms_key_arn=key.arn, master_secret_arn=master.arn)],
            schedule_days=30, subnet_ids=[...], security_group_ids=[...]))

    Each rotated secret must carry ``rotation_tags(strategy, ...)``. Children: the log
    group, role, role policy, function, invoke permission and one ``SecretRotation`` per
    secret (``<name>-rotation-<secret name>``), which waits for the permission and policy.
    """

    def __init__(self, name: str, args: SecretRotatorArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("configplane:rotation:SecretRotator", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)

        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", name=f"/aws/lambda/{args.function_name}",
            retention_in_days=args.log_retention_days, tags=tags, opts=child)

        role = aws.iam.Role(
            f"{name}-role",
            description=f"configplane secret rotation ({args.environment}"
                        f"{', ' + args.service if args.service else ''})",
            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}),
            permissions_boundary=args.permissions_boundary,
            tags=tags, opts=child)

        resolved = [
            pulumi.Output.all(arn=s.secret_arn, kms_key_arn=s.kms_key_arn,
                              master_secret_arn=s.master_secret_arn,
                              master_kms_key_arn=s.master_kms_key_arn)
            for s in args.secrets
        ]
        policy_json = pulumi.Output.all(log_group.arn, *resolved).apply(
            lambda values: json.dumps({"Version": "2012-10-17", "Statement": policy_statements(
                args.region, values[1:], values[0], args.in_vpc)}))
        policy = aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=policy_json,
                                    opts=child)

        variables = args.password.environment()
        if args.db_ca_bundle:
            variables["DB_SSL_CA_FILE"] = f"/var/task/{CA_BUNDLE_NAME}"
        function = aws.lambda_.Function(
            f"{name}-function",
            name=args.function_name,
            description=f"configplane: rotates Secrets Manager secrets ({args.environment}"
                        f"{', ' + args.service if args.service else ''})",
            role=role.arn,
            runtime=RUNTIME,
            handler=HANDLER,
            code=args.code if args.code is not None
            else code_archive(ca_bundle=args.db_ca_bundle),
            timeout=TIMEOUT_SECONDS,
            memory_size=128,
            environment={"variables": variables} if variables else None,
            vpc_config={"subnet_ids": list(args.subnet_ids),
                        "security_group_ids": list(args.security_group_ids)}
            if args.in_vpc else None,
            # INFO at most: a DEBUG level would let botocore log request bodies.
            logging_config={"log_format": "JSON", "application_log_level": "INFO",
                            "system_log_level": "WARN", "log_group": log_group.name},
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, log_group]))

        permission = aws.lambda_.Permission(
            f"{name}-permission", action="lambda:InvokeFunction", function=function.name,
            principal="secretsmanager.amazonaws.com", source_account=args.account_id,
            opts=child)

        rules: aws.secretsmanager.SecretRotationRotationRulesArgsDict
        if args.schedule_days is not None:
            rules = {"automatically_after_days": args.schedule_days}
        else:
            rules = {"schedule_expression": args.schedule_expression}
        for secret in args.secrets:
            aws.secretsmanager.SecretRotation(
                f"{name}-rotation-{secret.name}", secret_id=secret.secret_arn,
                rotation_lambda_arn=function.arn, rotation_rules=rules,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[permission, policy]))

        self.function_arn: pulumi.Output[str] = function.arn
        self.function_name: pulumi.Output[str] = function.name
        self.role_arn: pulumi.Output[str] = role.arn
        self.log_group_name: pulumi.Output[str] = log_group.name
        self.register_outputs({
            "function_arn": self.function_arn,
            "function_name": self.function_name,
            "role_arn": self.role_arn,
            "log_group_name": self.log_group_name,
        })
