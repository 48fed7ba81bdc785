"""Backups of one environment, in another region (docs/dr.md).

The backup bucket: S3 in `platform.backup.region` (pulumi-aws 7's per-resource `region`, so
the environment's one AWS provider serves both regions and the pack sees where each resource
lives), versioned, encrypted by a customer-managed KMS key of that region, object lock in
compliance mode (nobody can delete or overwrite a backup before its retention ends), all
public access blocked, TLS only. The KMS key encrypts the objects but does not live with
them: it is a separate resource with its own key policy (the account's), and Vault's unseal
and recovery keys are never put in the bucket (docs/dr.md says where they are kept).

Vault's raft snapshot: a Kubernetes CronJob in a namespace of its own logs in to Vault with
its own Kubernetes auth role, whose only policy allows `read` on `sys/storage/raft/snapshot`,
saves the snapshot, and uploads it with an IAM role of its own (IRSA) that may only put
objects under `vault/<environment>/` and encrypt with the backup key.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_vault as vault

from components.workload_identity import trust_policy
from configplane import ownership, refs
from configplane.contract import (
    ENVIRONMENT_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PART_OF_LABEL,
    SERVICE_LABEL,
)
from configplane.model import AwsSettings, BackupSettings, VaultSnapshotSettings
from configplane.refs import VAULT_AUDIENCE

SNAPSHOT_POLICY = 'path "sys/storage/raft/snapshot" {\n  capabilities = ["read"]\n}\n'
TOKEN_PATH = "/var/run/secrets/vault/token"
SNAPSHOT_FILE = "/snapshots/vault.snap"


def tls_only_policy(bucket_arn: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }]}


def upload_policy(bucket_arn: str, prefix: str, key_arn: str) -> dict:
    """Put objects under the snapshot prefix (encrypted with the backup key), nothing else:
    no read, no delete, no listing."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "PutSnapshots", "Effect": "Allow", "Action": "s3:PutObject",
         "Resource": f"{bucket_arn}/{prefix}*"},
        {"Sid": "EncryptSnapshots", "Effect": "Allow",
         "Action": ["kms:GenerateDataKey", "kms:Encrypt"], "Resource": key_arn},
    ]}


def snapshot_script(auth_path: str, role: str) -> str:
    """Log in with the pod's projected token (audience `vault`), save the snapshot."""
    return "\n".join([
        "set -eu",
        "BAO_TOKEN=$(bao write -field=token " + shlex.join(
            [f"auth/{auth_path}/login", f"role={role}", f"jwt=@{TOKEN_PATH}"]) + ")",
        "export BAO_TOKEN VAULT_TOKEN=\"$BAO_TOKEN\"",
        "bao operator raft snapshot save " + shlex.quote(SNAPSHOT_FILE),
    ])


def upload_script(bucket: str, prefix: str, key_arn: str) -> str:
    """Upload under a UTC time-stamped name, encrypted with the backup key; object lock needs
    a checksum with every put."""
    return "\n".join([
        "set -eu",
        f'target={shlex.quote(f"s3://{bucket}/{prefix}")}"$(date -u +%Y-%m-%dT%H%M%SZ).snap"',
        "aws s3 cp " + shlex.join([SNAPSHOT_FILE]) + ' "$target" ' + shlex.join(
            ["--sse", "aws:kms", "--sse-kms-key-id", key_arn, "--checksum-algorithm", "SHA256",
             "--only-show-errors"]),
    ])


@dataclass(frozen=True)
class BackupEnvironmentArgs:
    environment: str
    part_of: str
    settings: BackupSettings
    aws: AwsSettings
    vault_address: str
    kubernetes_auth_backend: pulumi.Input[str]  # the environment's Kubernetes auth mount
    kubernetes_auth_path: str


class BackupEnvironment(pulumi.ComponentResource):
    def __init__(self, name: str, args: BackupEnvironmentArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("configplane:backup:BackupEnvironment", name, {}, opts)
        env, settings = args.environment, args.settings
        child = pulumi.ResourceOptions(parent=self)
        region = settings.region
        tags = {"environment": env, "managed-by": MANAGED_BY, "configplane.io/purpose": "backup"}
        self.key = aws.kms.Key(
            f"{name}-kms-key", region=region, description=f"configplane backups ({env})",
            enable_key_rotation=True, deletion_window_in_days=30, tags=tags, opts=child)
        bucket_name = ownership.backup_bucket_name(args.part_of, env, args.aws.account_id)
        self.bucket = aws.s3.Bucket(
            f"{name}-bucket", region=region, bucket=bucket_name, object_lock_enabled=True,
            force_destroy=False, tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=True))
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning", region=region, bucket=self.bucket.id,
            versioning_configuration={"status": "Enabled"}, opts=child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption", region=region, bucket=self.bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {
                "sse_algorithm": "aws:kms", "kms_master_key_id": self.key.arn},
                "bucket_key_enabled": True}],
            opts=child)
        public_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block", region=region, bucket=self.bucket.id,
            block_public_acls=True, block_public_policy=True, ignore_public_acls=True,
            restrict_public_buckets=True, opts=child)
        aws.s3.BucketObjectLockConfiguration(
            f"{name}-object-lock", region=region, bucket=self.bucket.id,
            object_lock_enabled="Enabled",
            rule={"default_retention": {"mode": "COMPLIANCE", "days": settings.retention_days}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]))
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle", region=region, bucket=self.bucket.id,
            rules=[{"id": "expire-after-retention", "status": "Enabled", "filter": {},
                    "expiration": {"days": settings.retention_days + 1},
                    "noncurrent_version_expiration": {
                        "noncurrent_days": settings.retention_days + 1}}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]))
        aws.s3.BucketPolicy(
            f"{name}-policy", region=region, bucket=self.bucket.id,
            policy=self.bucket.arn.apply(lambda arn: json.dumps(tls_only_policy(arn))),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_block]))
        if settings.vault_snapshots is not None:
            self._vault_snapshots(name, args, settings.vault_snapshots, bucket_name)
        self.bucket_name: pulumi.Output[str] = self.bucket.bucket
        self.key_arn: pulumi.Output[str] = self.key.arn
        self.register_outputs({"bucket_name": self.bucket_name, "key_arn": self.key_arn})

    def _vault_snapshots(self, name: str, args: BackupEnvironmentArgs,
                         snapshots: VaultSnapshotSettings, bucket_name: str) -> None:
        env, aws_settings = args.environment, args.aws
        child = pulumi.ResourceOptions(parent=self)
        prefix = ownership.vault_snapshot_prefix(env)
        namespace, account = snapshots.namespace, snapshots.service_account
        labels = {SERVICE_LABEL: "vault-snapshot", PART_OF_LABEL: args.part_of,
                  MANAGED_BY_LABEL: MANAGED_BY, ENVIRONMENT_LABEL: env}
        policy = vault.Policy(f"{name}-vault-snapshot-policy",
                              name=ownership.vault_snapshot_policy_name(env),
                              policy=SNAPSHOT_POLICY, opts=child)
        vault.kubernetes.AuthBackendRole(
            f"{name}-vault-snapshot-role", backend=args.kubernetes_auth_backend,
            role_name=account, bound_service_account_names=[account],
            bound_service_account_namespaces=[namespace], token_policies=[policy.name],
            token_ttl=300, token_max_ttl=600, audience=VAULT_AUDIENCE, opts=child)
        if aws_settings.eks_oidc_issuer is None:  # validation refuses this stack first
            raise ValueError("vault snapshots need platform.aws.eks_oidc_issuer")
        role = aws.iam.Role(
            f"{name}-vault-snapshot-iam-role",
            name=ownership.vault_snapshot_role_name(env),
            description=f"The Vault snapshot CronJob uploads to the backup bucket ({env})",
            assume_role_policy=json.dumps(trust_policy(
                aws_settings.eks_oidc_issuer, aws_settings.account_id, namespace, account)),
            max_session_duration=3600, tags={"environment": env, "managed-by": MANAGED_BY},
            opts=child)
        bucket_arn = f"arn:aws:s3:::{bucket_name}"
        aws.iam.RolePolicy(
            f"{name}-vault-snapshot-iam-policy", name="upload-vault-snapshots", role=role.id,
            policy=self.key.arn.apply(lambda key: json.dumps(upload_policy(bucket_arn, prefix, key))),
            opts=child)
        ns = k8s.core.v1.Namespace(f"{name}-namespace",
                                   metadata={"name": namespace, "labels": labels}, opts=child)
        role_arn = refs.iam_role_arn(aws_settings.account_id, ownership.vault_snapshot_role_name(env))
        sa = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata={"name": account, "namespace": namespace, "labels": labels,
                      "annotations": {"eks.amazonaws.com/role-arn": role_arn}},
            automount_service_account_token=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns]))
        restricted = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                      "capabilities": {"drop": ["ALL"]}}
        resources = {"requests": {"cpu": "100m", "memory": "128Mi"},
                     "limits": {"memory": "512Mi"}}
        # typed Any: mypy runs out of memory matching this nested literal against the
        # provider's unions of TypedDicts (tests/program/test_backup.py checks it against
        # Kubernetes' own schema instead)
        pod_spec: Any = {
            "serviceAccountName": account,
            "automountServiceAccountToken": False,
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            # the snapshot first (it holds the Vault token), the upload second
            # (it holds the AWS credentials): neither sees the other's
            "initContainers": [{
                "name": "snapshot", "image": snapshots.bao_image,
                "command": ["/bin/sh", "-c",
                            snapshot_script(args.kubernetes_auth_path, account)],
                "env": [{"name": "BAO_ADDR", "value": args.vault_address},
                        {"name": "VAULT_ADDR", "value": args.vault_address},
                        {"name": "HOME", "value": "/tmp"}],
                "securityContext": restricted, "resources": resources,
                "volumeMounts": [
                    {"name": "snapshots", "mountPath": "/snapshots"},
                    {"name": "vault-token", "mountPath": "/var/run/secrets/vault",
                     "readOnly": True},
                    {"name": "tmp", "mountPath": "/tmp"}],
            }],
            "containers": [{
                "name": "upload", "image": snapshots.aws_cli_image,
                "command": ["/bin/sh", "-c"],
                "args": [self.key.arn.apply(
                    lambda key: upload_script(bucket_name, prefix, key))],
                "env": [{"name": "AWS_REGION", "value": args.settings.region},
                        {"name": "HOME", "value": "/tmp"}],
                "securityContext": restricted, "resources": resources,
                "volumeMounts": [
                    {"name": "snapshots", "mountPath": "/snapshots",
                     "readOnly": True},
                    {"name": "tmp", "mountPath": "/tmp"}],
            }],
            "volumes": [
                # on disk: the snapshot is sealed by Vault's barrier, and may be
                # larger than the pod's memory
                {"name": "snapshots", "emptyDir": {"sizeLimit": "10Gi"}},
                {"name": "tmp", "emptyDir": {}},
                {"name": "vault-token", "projected": {"sources": [
                    {"serviceAccountToken": {
                        "audience": VAULT_AUDIENCE, "expirationSeconds": 600,
                        "path": "token"}}]}},
            ],
        }
        cron_spec: Any = {
            "schedule": snapshots.schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": {
                "backoffLimit": 2,
                "activeDeadlineSeconds": 1800,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": pod_spec,
                },
            }},
        }
        k8s.batch.v1.CronJob(
            f"{name}-vault-snapshot",
            metadata={"name": "vault-snapshot", "namespace": namespace, "labels": labels},
            spec=cron_spec,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[sa]))
