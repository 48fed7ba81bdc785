"""Every resource type token the pack checks, each written once (the engine's `pkg:mod:Type`).

Validators say which of these they apply to with `packlib.for_types(...)`. (Not `types.py`:
the pack directory is on sys.path, where that name would hide the standard library's.)"""

from __future__ import annotations

STACK = "pulumi:pulumi:Stack"

# --- Kubernetes -------------------------------------------------------------------------------

CONFIGMAP = "kubernetes:core/v1:ConfigMap"
K8S_SECRET = "kubernetes:core/v1:Secret"
K8S_SECRET_PATCH = "kubernetes:core/v1:SecretPatch"
K8S_SECRETS = (K8S_SECRET, K8S_SECRET_PATCH)
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
# Workloads and where each keeps its pod spec.
WORKLOADS = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate"
ISSUERS = ("kubernetes:cert-manager.io/v1:Issuer", "kubernetes:cert-manager.io/v1:ClusterIssuer")
ESO_PREFIX = "kubernetes:external-secrets.io/"  # External Secrets Operator kinds, any version
EXTERNAL_SECRETS = ("kubernetes:external-secrets.io/v1:ExternalSecret",
                    "kubernetes:external-secrets.io/v1beta1:ExternalSecret")
VAULT_DYNAMIC_SECRET = "kubernetes:generators.external-secrets.io/v1alpha1:VaultDynamicSecret"

# --- AWS --------------------------------------------------------------------------------------

LAMBDA_FUNCTION = "aws:lambda/function:Function"
LAMBDA_PERMISSION = "aws:lambda/permission:Permission"
SM_SECRET = "aws:secretsmanager/secret:Secret"
STACK_REFERENCE = "pulumi:pulumi:StackReference"  # a shard reads its platform stack
SM_ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"
KMS_KEY = "aws:kms/key:Key"
KMS_ALIAS = "aws:kms/alias:Alias"
# S3 (the backup bucket): each kind with the provider's older `...V2` token, which declares the
# same thing
S3_BUCKET = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
S3_VERSIONING = ("aws:s3/bucketVersioning:BucketVersioning",
                 "aws:s3/bucketVersioningV2:BucketVersioningV2")
S3_ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2")
S3_OBJECT_LOCK = (
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
    "aws:s3/bucketObjectLockConfigurationV2:BucketObjectLockConfigurationV2")
S3_PUBLIC_ACCESS_BLOCK = ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",)
IAM_ROLE = "aws:iam/role:Role"
IAM_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
IAM_POLICY = "aws:iam/policy:Policy"
IAM_POLICIES = (IAM_ROLE_POLICY, IAM_POLICY,
                "aws:iam/userPolicy:UserPolicy", "aws:iam/groupPolicy:GroupPolicy")
IAM_ATTACHMENTS = ("aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                   "aws:iam/policyAttachment:PolicyAttachment")

# --- Vault ------------------------------------------------------------------------------------

VAULT_POLICY = "vault:index/policy:Policy"
VAULT_K8S_ROLE = "vault:kubernetes/authBackendRole:AuthBackendRole"
VAULT_JWT_ROLE = "vault:jwt/authBackendRole:AuthBackendRole"
VAULT_MOUNT = "vault:index/mount:Mount"
VAULT_AUDIT = "vault:index/audit:Audit"
PKI_ROLE = "vault:pkiSecret/secretBackendRole:SecretBackendRole"
DB_ROLE = "vault:database/secretBackendRole:SecretBackendRole"
