"""A service's own AWS identity: the IAM role its service account's tokens assume (IRSA).

The External Secrets Operator reads a service's Secrets Manager secrets through the service's
SecretStore, which authenticates as the service's own Kubernetes service account
(`auth.jwt.serviceAccountRef`): the operator requests a token for that account (audience
`sts.amazonaws.com`) and calls `sts:AssumeRoleWithWebIdentity` for the role named in the
account's `eks.amazonaws.com/role-arn` annotation. The role trusts the cluster's IAM OIDC
provider for exactly that `system:serviceaccount:<namespace>:<account>` subject, and may
read only the service's own secrets (plus decrypt them through Secrets Manager with the
environment's customer-managed key). Why IRSA rather than EKS Pod Identity: docs/isolation.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from configplane import ownership, refs
from configplane.model import AwsSettings, ServiceModel

READ_ACTIONS = ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
STS_AUDIENCE = "sts.amazonaws.com"


def trust_policy(issuer: str, account: str, namespace: str, service_account: str) -> dict:
    host = refs.oidc_provider_host(issuer)
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "ServiceAccountWebIdentity",
        "Effect": "Allow",
        "Principal": {"Federated": refs.oidc_provider_arn(issuer, account)},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            f"{host}:sub": ownership.service_account_subject(namespace, service_account),
            f"{host}:aud": STS_AUDIENCE,
        }},
    }]}


def read_policy(secret_resources: list[str]) -> dict:
    """GetSecretValue/DescribeSecret on the service's secrets, nothing else."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "ReadOwnSecrets", "Effect": "Allow", "Action": READ_ACTIONS,
        "Resource": sorted(secret_resources)}]}


def decrypt_policy(region: str, kms_key_arn: str, encrypted_secrets: list[str]) -> dict:
    """kms:Decrypt on the stack's key only through Secrets Manager and only for the service's
    secrets encrypted with it (Secrets Manager's encryption context names the secret)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "DecryptOwnSecrets",
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": kms_key_arn,
        "Condition": {
            "StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"},
            "StringLike": {"kms:EncryptionContext:SecretARN": sorted(encrypted_secrets)},
        },
    }]}


@dataclass(frozen=True)
class SecretReaderRoleArgs:
    service: ServiceModel
    settings: AwsSettings
    kms_key_arn: pulumi.Input[str] | None  # the environment's CMK, which encrypts its secrets
    # the shard deployer's boundary (docs/fleet.md, Per-shard deploy rights): a split environment
    permissions_boundary: str | None = None


class SecretReaderRole(pulumi.ComponentResource):
    """The role, its read policy and (with a customer-managed key) its decrypt policy.

    Secrets are granted by name (`arn:...:secret:<name>-??????`, AWS's form for the six
    characters Secrets Manager appends), so the read policy is known before the secrets
    exist and the policy pack checks it in `pulumi preview` already."""


    def __init__(self, name: str, args: SecretReaderRoleArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("configplane:identity:SecretReaderRole", name, {}, opts)
        svc, settings = args.service, args.settings
        if settings.eks_oidc_issuer is None:  # validation refuses this stack first
            raise ValueError("SecretReaderRole needs platform.aws.eks_oidc_issuer")
        child = pulumi.ResourceOptions(parent=self)
        created, referenced = [], []
        for key, spec in svc.secrets_in("aws").items():
            if spec.source == "reference" and spec.ref:
                referenced.append(refs.parse_secret_arn(
                    spec.ref, account=settings.account_id, region=settings.region
                ).policy_resource)
            else:
                created.append(refs.secret_name_pattern(
                    settings.region, settings.account_id, svc.aws_secret_name(key)))
        role = aws.iam.Role(
            f"{name}-role",
            name=ownership.iam_role_name(svc.environment, svc.name),
            description=f"External Secrets reads {svc.name}'s Secrets Manager secrets "
                        f"({svc.environment}) as its service account",
            assume_role_policy=json.dumps(trust_policy(
                settings.eks_oidc_issuer, settings.account_id, svc.namespace,
                svc.service_account)),
            max_session_duration=3600,
            permissions_boundary=args.permissions_boundary,
            tags=svc.labels_as_tags(),
            opts=child,
        )
        aws.iam.RolePolicy(f"{name}-policy", name="read-own-secrets", role=role.id,
                           policy=json.dumps(read_policy([*created, *referenced])), opts=child)
        if args.kms_key_arn is not None and created:
            aws.iam.RolePolicy(
                f"{name}-kms-policy", name="decrypt-own-secrets", role=role.id,
                policy=pulumi.Output.from_input(args.kms_key_arn).apply(
                    lambda key: json.dumps(decrypt_policy(settings.region, key, created))),
                opts=child)
        self.role_arn: pulumi.Output[str] = role.arn
        self.role_name: pulumi.Output[str] = role.name
        self.register_outputs({"role_arn": self.role_arn, "role_name": self.role_name})
