"""AWS Secrets Manager storage: the environment's KMS key and each service's secrets.

Initial values are written write-only (`secret_string_wo`): a managed `secret_string` would
show drift as soon as rotation moves AWSCURRENT, and the provider would keep the value in its
outputs. Write-only is not "out of state": Pulumi keeps the inputs it sent, the initial value
included, encrypted in state as a secret. Each secret has its own version
(configplane.model.versions); a rotated one is written once and never again.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import as_secret
from components.platform import PlatformRefs
from components.rotation import rotation_tags
from configplane.contract import MANAGED_BY
from configplane.model import AwsSettings, SecretSpec, ServiceModel, ServiceVersions
from configplane.ownership import kms_alias, secret_resource_name


@dataclass(frozen=True)
class AwsSecretsEnvironmentArgs:
    environment: str
    settings: AwsSettings


class AwsSecretsEnvironment(pulumi.ComponentResource):
    """The customer-managed KMS key, where the environment asks for one; and a key in each
    region secrets are replicated to (docs/dr.md)."""


    def __init__(self, name: str, args: AwsSecretsEnvironmentArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("configplane:aws:AwsSecretsEnvironment", name, {}, opts)
        self.key: aws.kms.Key | None = None
        if args.settings.customer_managed_kms_key:
            self.key = aws.kms.Key(
                f"{name}-kms-key",
                description=f"configplane secrets ({args.environment})",
                enable_key_rotation=True,
                deletion_window_in_days=30,
                tags={"environment": args.environment, "managed-by": MANAGED_BY},
                opts=pulumi.ResourceOptions(parent=self),
            )
            aws.kms.Alias(
                f"{name}-kms-alias",
                name=kms_alias(args.environment),
                target_key_id=self.key.key_id,
                opts=pulumi.ResourceOptions(parent=self),
            )
        # A replica is encrypted in its own region, with a key of that region.
        self.replica_keys = {
            region: aws.kms.Key(
                f"{name}-kms-key-{region}",
                region=region,
                description=f"configplane secret replicas ({args.environment}, {region})",
                enable_key_rotation=True,
                deletion_window_in_days=30,
                tags={"environment": args.environment, "managed-by": MANAGED_BY},
                opts=pulumi.ResourceOptions(parent=self),
            )
            for region in args.settings.replica_regions
        }
        self.kms_key_arn: pulumi.Output[str | None] = (
            self.key.arn if self.key else pulumi.Output.from_input(None))
        self.register_outputs({"kms_key_arn": self.kms_key_arn})


@dataclass(frozen=True)
class AwsServiceSecretsArgs:
    service: ServiceModel
    settings: AwsSettings
    platform: PlatformRefs  # the environment's KMS key, when it has one
    values: Mapping[str, pulumi.Output[str]]  # secret name -> value, for store=aws ones
    versions: ServiceVersions


class AwsServiceSecrets(pulumi.ComponentResource):
    """One Secrets Manager secret per secret of the service kept in AWS."""


    def __init__(self, name: str, args: AwsServiceSecretsArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("configplane:aws:AwsServiceSecrets", name, {}, opts)
        svc = args.service
        child = pulumi.ResourceOptions(parent=self)
        self.secrets: dict[str, aws.secretsmanager.Secret] = {}
        arns: dict[str, pulumi.Input[str]] = {}
        for key, spec in svc.secrets_in("aws").items():
            if spec.source == "reference":
                if spec.ref is not None:  # (validate: always)
                    arns[key] = spec.ref  # lives elsewhere already; nothing to declare
                continue
            role = secret_resource_name(key)
            secret = aws.secretsmanager.Secret(
                f"{name}-{role}",
                name=svc.aws_secret_name(key),
                description=spec.description or f"{svc.name} {key}",
                kms_key_id=args.platform.kms_key_arn,
                recovery_window_in_days=args.settings.recovery_window_in_days,
                replicas=[{"region": region, "kms_key_id": arn}
                          for region, arn in args.platform.replica_key_arns.items()] or None,
                tags={
                    **svc.labels_as_tags(),
                    "configplane.io/secret": key,
                    # the rotation function reads the strategy from the secret's tags
                    **(rotation_tags(spec.rotation.strategy, length=spec.rotation.length)
                       if spec.rotation else {}),
                },
                opts=child,
            )
            version = args.versions.secrets[key]
            aws.secretsmanager.SecretVersion(
                f"{name}-{role}-initial",
                secret_id=secret.id,
                secret_string_wo=as_secret(
                    args.values[key].apply(functools.partial(secret_string, spec))
                ),
                secret_string_wo_version=version.version,
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=initial_ignore(version.rotated)),
            )
            self.secrets[key] = secret
            arns[key] = secret.arn
        self.arns: pulumi.Output[dict[str, str]] = (
            pulumi.Output.all(**arns) if arns else pulumi.Output.from_input({}))
        self.register_outputs({"arns": self.arns})


ROTATION_OWNED = ["secret_string_wo", "secret_string_wo_version"]


def initial_ignore(rotated: bool) -> list[str]:
    """Rotation moves AWSCURRENT off this version (so its stages drift); and a rotated secret
    is written once: the engine keeps the first value and version whatever the program says
    later, so no new version can put the original value back over a rotated one."""
    return ["version_stages", *(ROTATION_OWNED if rotated else [])]


def secret_string(spec: SecretSpec, value: str) -> str:
    """A database password is stored with its connection facts (the layout AWS rotation reads)."""
    if spec.database is None:
        return value
    document = {**spec.database.model_dump(), "password": value}
    if spec.rotation and spec.rotation.master_secret_arn:
        document["masterarn"] = spec.rotation.master_secret_arn
    return json.dumps(document, sort_keys=True)
