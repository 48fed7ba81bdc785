"""The typed stack document. pydantic is the source of `schemas/stack.schema.json`.

Defaults live here and only here. Models are frozen: components receive them read-only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from configplane.contract import CONFIGMAP_DATA_KEY, DNS_LABEL, OWNER, PART_OF_LABEL, ROTATION_STRATEGIES
from configplane.durations import GO_DURATION  # Go time.ParseDuration forms, as cert-manager reads them

ConfigValue = str | int | float | bool
# Counters reach providers as 64-bit integers (a write-only version, Vault's max_versions):
# a larger number validates as JSON but cannot be planned.
INT64_MAX = 2**63 - 1
ServiceName = Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]

# DNS_LABEL (RFC 1123 label: namespaces, service and tenant names) is also valid inside
# subdomain names; an env key is a key of the ConfigMap or Secret the pod reads.
ENV_KEY = CONFIGMAP_DATA_KEY


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VaultSettings(Frozen):
    """Vault for one environment: a KV v2 mount, audit, Kubernetes auth."""

    mount: str | None = Field(None, description="KV v2 mount path; default `<environment>-kv`.")
    max_versions: int = Field(10, ge=0, le=INT64_MAX,
                              description="Versions kept per secret (0 = Vault default).")
    cas_required: bool = Field(False, description="Require check-and-set on every write.")
    audit_file_path: str = Field("/vault/logs/audit.log", description="File audit device path.")
    kubernetes_auth_path: str | None = Field(
        None, description="Kubernetes auth mount; default `kubernetes-<environment>`."
    )
    kubernetes_host: str = Field(
        "https://kubernetes.default.svc",
        description="The API server Vault reviews login tokens with (TokenReview).")
    runs_in_cluster: bool = Field(
        True, description="Vault runs as pods of this cluster: Kubernetes auth reads the CA "
        "and the reviewer token of its own pod. false: Vault runs outside the cluster; then "
        "kubernetes_host (the external URL), kubernetes_ca_cert and "
        "token_reviewer_jwt_config_key are required.")
    kubernetes_ca_cert: str | None = Field(
        None, description="PEM CA of the API server (public), for a Vault outside the cluster.")
    token_reviewer_jwt_config_key: str | None = Field(
        None, description="A `secure` config key: a token of a service account allowed "
        "`system:auth-delegator`, which Vault calls TokenReview with (write-only to Vault).")
    token_reviewer_jwt_version: int = Field(
        1, ge=1, description="Bump to push a new reviewer token.")
    address: str = Field(..., description="Vault address the External Secrets Operator uses.")


AWS_REGION = r"^[a-z]{2}(-[a-z]+)+-\d$"
# an image pinned by its digest: a tag can be moved to other code after review
IMAGE_BY_DIGEST = r"^[a-z0-9]+([._/:-][a-z0-9]+)*@sha256:[0-9a-f]{64}$"
CRON_SCHEDULE = r"^(@(hourly|daily|weekly|monthly|yearly|annually)|(\S+\s+){4}\S+)$"


class AwsSettings(Frozen):
    region: str = Field(..., pattern=AWS_REGION)
    account_id: str = Field(..., pattern=r"^\d{12}$")
    customer_managed_kms_key: bool = Field(
        False, description="Encrypt secrets with a per-environment customer-managed KMS key."
    )
    recovery_window_in_days: int = Field(7, ge=7, le=30)
    replica_regions: list[Annotated[str, Field(pattern=AWS_REGION)]] = Field(
        default_factory=list,
        description="Secrets Manager replicates every secret the program creates to these "
        "regions (a `replicas` block each, encrypted with a customer-managed KMS key of that "
        "region); the pack's `secrets-manager-replicas` requires them where the environment's "
        "policy config says so (docs/dr.md).")
    eks_oidc_issuer: str | None = Field(
        None,
        description="The cluster's OIDC issuer URL (IRSA): each service with Secrets Manager "
        "secrets gets an IAM role that only its own service account may assume through the "
        "IAM OIDC provider `arn:aws:iam::<account_id>:oidc-provider/<issuer without https://>`. "
        "Checked by configplane/refs.py (EKS_ISSUER), which matches the whole string.",
    )


class ExternalSecretsSettings(Frozen):
    refresh_interval: str = Field("1h", pattern=r"^\d+[smh]$")
    controller_namespace: str = Field("external-secrets", pattern=DNS_LABEL)
    controller_service_account: str = Field("external-secrets", pattern=DNS_LABEL)


class RotationSettings(Frozen):
    """How often rotated secrets rotate in this environment, and the Lambda's network."""

    schedule_days: int | None = Field(90, ge=1, le=1000)
    schedule_expression: str | None = Field(None, description="e.g. `rate(30 days)`; wins over days.")
    generated_every_days: int | None = Field(
        None, ge=1, le=3650,
        description="Regenerate generated secrets (not Lambda-rotated) every N days; none: never.",
    )
    subnet_ids: list[str] = Field(default_factory=list)
    security_group_ids: list[str] = Field(default_factory=list)


class ConfigHistorySettings(Frozen):
    """Config generations kept in the cluster (hash-named ConfigMaps are retained on delete)."""

    keep: int = Field(
        5, ge=1, le=100,
        description="Generations per ConfigMap that `configplane prune` keeps (the newest N; the "
        "current one and any a workload still uses are kept as well).",
    )




class PkiSettings(Frozen):
    """Vault PKI for one environment: an intermediate CA per environment, its parent, limits."""

    mount: str | None = Field(None, description="Intermediate CA mount; default `<environment>-pki`.")
    parent: Literal["root", "external"] = Field(
        ..., description="`root`: a root CA in Vault signs the intermediate (dev). `external`: "
        "the intermediate's CSR is signed offline by the organisation's root, and the signed "
        "certificate is set in `intermediate_certificate`.",
    )
    root_mount: str | None = Field(None, description="parent=root: default `<environment>-pki-root`.")
    common_name: str | None = Field(
        None, description="Intermediate CA common name; default `<part_of> <environment> intermediate CA`."
    )
    organization: str | None = None
    max_ttl: str = Field("26280h", pattern=GO_DURATION,
                         description="Lifetime of the intermediate CA (the mount's max lease).")
    root_ttl: str = Field("87600h", pattern=GO_DURATION, description="parent=root: root CA lifetime.")
    leaf_max_ttl: str = Field("2160h", pattern=GO_DURATION,
                              description="Longest certificate any service role may issue.")
    intermediate_certificate: str | None = Field(
        None, description="parent=external: the PEM certificate the offline root signed for the "
        "CSR of the previous `pulumi up` (public, not a secret).",
    )
    crl_distribution_points: list[str] | None = Field(
        None, description="Default `<vault address>/v1/<mount>/crl`.")
    ocsp_servers: list[str] | None = Field(None, description="Default `<vault address>/v1/<mount>/ocsp`.")
    issuing_certificates: list[str] | None = Field(
        None, description="AIA URLs; default `<vault address>/v1/<mount>/ca`.")
    allow_wildcard_names: bool = Field(False, description="Never in prod.")
    cert_manager_namespace: str = Field("cert-manager", pattern=DNS_LABEL)
    cert_manager_service_account: str = Field("cert-manager", pattern=DNS_LABEL)


class DatabaseConnection(Frozen):
    """A PostgreSQL database Vault issues logins for, and the root login Vault uses."""

    host: str
    port: int = Field(5432, ge=1, le=65535)
    dbname: str = Field(..., pattern=r"^[a-z_][a-z0-9_]*$")
    username: str = Field(..., pattern=r"^[a-z_][a-z0-9_]*$",
                          description="Vault's root login (CREATEROLE, not a superuser).")
    password_config_key: str = Field(
        ..., description="The root login's initial password: a `secure` Pulumi config key. Vault "
        "rotates it right after configuring the connection; from then on only Vault knows it.",
    )
    password_version: int = Field(1, ge=1, le=INT64_MAX,
                                  description="Bump to push a new initial password.")
    ssl_mode: Literal["verify-full", "verify-ca", "require"] = "verify-full"
    ssl_root_cert: str | None = Field(
        None, description="PEM CA bundle Vault verifies the server's certificate with "
        "(required by verify-full and verify-ca; sent as the connection's `tls_ca`, which "
        "HashiCorp Vault's PostgreSQL plugin reads). RDS: the region's bundle from "
        "https://truststore.pki.rds.amazonaws.com/<region>/<region>-bundle.pem.")
    ssl_root_cert_file: str | None = Field(
        None, pattern=r"^(/[A-Za-z0-9._-]+)+$",
        description="Where the same bundle is mounted on Vault's servers; set as "
        "`sslrootcert` in the connection URL. OpenBao's plugin ignores `tls_ca` and needs it.")
    max_open_connections: int = Field(4, ge=1, le=100)
    root_rotation_period: str | None = Field(
        None, pattern=GO_DURATION,
        description="Scheduled root rotation (Vault Enterprise 1.19+); the one-off rotation "
        "after configuration always happens.",
    )


class DatabaseEngineSettings(Frozen):
    """Vault's database secrets engine for one environment: short-lived PostgreSQL logins."""

    mount: str | None = Field(None, description="Default `<environment>-database`.")
    default_ttl: str = Field("1h", pattern=GO_DURATION)
    max_ttl: str = Field("24h", pattern=GO_DURATION)
    refresh_interval: str | None = Field(
        None, pattern=r"^\d+[smh]$",
        description="How often ESO fetches a new login; default a third of default_ttl.",
    )
    connections: dict[str, DatabaseConnection] = Field(default_factory=dict)


class VaultSnapshotSettings(Frozen):
    """A raft snapshot of Vault on a schedule: a Kubernetes CronJob logs in to Vault with its
    own Kubernetes auth role (a policy allowing only `sys/storage/raft/snapshot`) and uploads
    the snapshot to the backup bucket with its own IAM role (IRSA)."""

    schedule: str = Field("0 * * * *", pattern=CRON_SCHEDULE,
                          description="Cron schedule (UTC); hourly by default: Vault's recovery "
                          "point objective.")
    bao_image: str = Field(..., pattern=IMAGE_BY_DIGEST,
                           description="The OpenBao (or Vault) CLI image, pinned by digest.")
    aws_cli_image: str = Field(..., pattern=IMAGE_BY_DIGEST,
                               description="The AWS CLI (v2) image that uploads, pinned by digest.")
    namespace: str = Field("vault-backup", pattern=DNS_LABEL)
    service_account: str = Field("vault-snapshot", pattern=DNS_LABEL)


class BackupSettings(Frozen):
    """Backups of the environment, kept in another region (docs/dr.md)."""

    region: str = Field(..., pattern=AWS_REGION,
                        description="Region of the backup bucket and its KMS key; not the "
                        "environment's own.")
    retention_days: int = Field(
        35, ge=1, le=3650,
        description="Object lock (compliance mode) retention of every backup object: nobody, "
        "the account's root included, can delete or overwrite one sooner. Objects expire after.")
    vault_snapshots: VaultSnapshotSettings | None = Field(
        None, description="Scheduled raft snapshots of Vault into the backup bucket.")


class Grants(Frozen):
    """What the platform grants a service beyond the names it owns by derivation: written in a
    platform file (Pulumi.yaml or the stack file), never in a service's own files."""

    secure_keys: dict[ServiceName, list[str]] = Field(
        default_factory=dict,
        description="Service -> the secure config keys (without `configplane:`) it owns; each "
        "key is granted to one service at most. A key no grant names is the platform's.")
    dns_names: dict[ServiceName, list[str]] = Field(
        default_factory=dict,
        description="Service -> the DNS names (or `*.` wildcards) outside the cluster its "
        "certificate may list; each name is granted to one service at most. A service's names "
        "inside the cluster are its namespace's.")


ShardName = Annotated[str, Field(pattern=DNS_LABEL, max_length=40)]


class ShardSettings(Frozen):
    """How the environment is split into stacks (docs/fleet.md): set, a platform stack
    (the environment's name) plus a stack `<environment>-<shard>` per shard; unset, one stack."""

    max_services: int = Field(60, ge=1, description="The most services one shard may hold; "
                              "`validate` refuses a shard past it and says how to split it.")
    teams: dict[Annotated[str, Field(pattern=OWNER)], ShardName] = Field(
        default_factory=dict, description="Owner (`@org/team`, the first of a service's "
        "`owners`) -> the shard of its services, instead of the team's own name.")
    services: dict[ServiceName, ShardName] = Field(
        default_factory=dict, description="Service -> its shard, overriding its team's.")
    github_repository: str | None = Field(
        # GitHub's owners (letters, digits, `-`) and names (never `.` or `..`): a name
        # that ends up in API paths and OIDC subjects
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$",
        max_length=140,
        description="`owner/name` of the repository whose GitHub Actions deploy the shards: "
        "each shard's deploy role, and its Vault login role on `vault_jwt_path`, trust its "
        "workflows' OIDC tokens for the shard's own GitHub environment `<environment>-<shard>` "
        "only (docs/fleet.md, Per-shard deploy rights).")
    vault_jwt_path: str = Field(
        "jwt", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$",
        max_length=100, description="The environment's Vault JWT auth mount for GitHub's OIDC "
        "tokens (the platform's, `bound_issuer` https://token.actions.githubusercontent.com): "
        "each shard's deployer logs in there with its role `configplane_deploy_<stack>`.")
    operator_namespace: str = Field(
        "pulumi-operator", pattern=DNS_LABEL, max_length=63,
        description="The Pulumi Kubernetes Operator's namespace: each shard's deploy role "
        "trusts its workspace account `pulumi-<stack>` there (IRSA, with "
        "`aws.eks_oidc_issuer`), and so does its Vault login role on the environment's "
        "Kubernetes auth mount; `operator stacks` puts its objects there and no service may run "
        "as `pulumi-<...>` there (docs/fleet.md).")


class Platform(Frozen):
    environment: str = Field(..., pattern=DNS_LABEL, max_length=20)
    part_of: str = Field("configplane", pattern=DNS_LABEL, description=PART_OF_LABEL)
    vault: VaultSettings
    aws: AwsSettings
    external_secrets: ExternalSecretsSettings = ExternalSecretsSettings()
    rotation: RotationSettings = RotationSettings()
    config_history: ConfigHistorySettings = ConfigHistorySettings()
    pki: PkiSettings | None = Field(None, description="Needed by services that declare `tls`.")
    database: DatabaseEngineSettings | None = Field(
        None, description="Needed by secrets with source `dynamic`.")
    backup: BackupSettings | None = Field(
        None, description="The environment's backup bucket (another region) and what is "
        "backed up into it (docs/dr.md).")
    grants: Grants = Field(Grants(), description="Secure keys and DNS names the platform "
                           "grants to one service each (docs/security.md).")
    shards: ShardSettings | None = Field(
        None, description="Split the environment into a platform stack and shard stacks.")


class Database(Frozen):
    """Connection facts stored beside a database password (AWS rotation secret layout)."""

    engine: Literal["postgres"] = "postgres"
    host: str
    port: int = Field(5432, ge=1, le=65535)
    dbname: str
    username: str


class Rotation(Frozen):
    strategy: Literal[ROTATION_STRATEGIES]  # type: ignore[valid-type]  # the contract's tuple
    master_secret_arn: str | None = Field(
        None, description="Master credential (alternating users): creates the `_clone` user."
    )
    length: int = Field(32, ge=16, le=4096, description="Length of each new password.")


SqlName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]  # unquoted PostgreSQL name
TablePrivilege = Literal["SELECT", "INSERT", "UPDATE", "DELETE"]  # closed set: no DDL, no roles


class Grant(Frozen):
    model_config = ConfigDict(frozen=True, extra="forbid", serialize_by_alias=True)

    schema_: SqlName = Field(..., alias="schema")
    tables: list[SqlName] = Field(..., min_length=1)
    privileges: list[TablePrivilege] = Field(..., min_length=1)


class DynamicCredential(Frozen):
    """source=dynamic: a PostgreSQL login Vault creates per request and drops at expiry."""

    connection: str = Field(..., description="A key of platform.database.connections.")
    username_key: str = Field("DATABASE_USERNAME", pattern=ENV_KEY,
                              description="Secret key that carries the login name.")
    grants: list[Grant] = Field(..., min_length=1)


class SecretSpec(Frozen):
    """Where one secret comes from (`source`) and where it is kept (`store`)."""

    source: Literal["secure", "generated", "reference", "dynamic"]
    store: Literal["vault", "aws"]
    config_key: str | None = Field(
        None, description="source=secure: the Pulumi config key (in namespace configplane)."
    )
    ref: str | None = Field(
        None,
        description="source=reference: `<path>#<property>` in the environment's Vault mount, "
        "or a Secrets Manager ARN.",
    )
    length: int = Field(32, ge=16, le=1024, description="source=generated: characters.")
    version: int = Field(
        1, ge=1, le=INT64_MAX, description="Bump to write this secret again (stores take values write-only); "
        "for a generated secret, to regenerate it. Never for a rotated secret.",
    )
    rotate_every_days: int | None = Field(
        None, ge=1, le=3650,
        description="source=generated: regenerate every N days (default: "
        "platform.rotation.generated_every_days).",
    )
    description: str = ""
    database: Database | None = None
    rotation: Rotation | None = None
    dynamic: DynamicCredential | None = Field(None, description="source=dynamic (store vault).")

    def as_declared(self) -> dict[str, Any]:
        """The spec with the built-in defaults that apply to its source: `length` and
        `rotate_every_days` only for a generated value, `version` only for a value the program
        writes (secure, generated); what the files set is kept whatever the source."""
        return {key: value for key, value in self.model_dump(exclude_none=True).items()
                if key in self.model_fields_set or self.source in SOURCE_FIELDS.get(key, (self.source,))}


# Fields that mean something only for some sources (see SecretSpec.as_declared).
SOURCE_FIELDS: dict[str, tuple[str, ...]] = {
    "length": ("generated",),
    "rotate_every_days": ("generated",),
    "version": ("secure", "generated"),
}


KeyUsage = Literal["digital signature", "key encipherment", "server auth", "client auth"]


class Tls(Frozen):
    """A certificate for the service's cluster DNS names, issued by the environment's PKI."""

    extra_dns_names: list[str] = Field(default_factory=list)
    duration: str = Field("720h", pattern=GO_DURATION)
    renew_before: str | None = Field(None, pattern=GO_DURATION,
                                     description="Default a third of the duration.")
    key_algorithm: Literal["ECDSA", "RSA"] = "ECDSA"
    key_size: int | None = Field(
        None, description="ECDSA 256 (default, P-256), 384 or 521; RSA 2048, 4096 (default) or "
        "8192 (the sizes cert-manager accepts).")
    usages: list[KeyUsage] | None = Field(
        None, description="Default digital signature + server auth (+ key encipherment for RSA).")


class Tenant(Frozen):
    config: dict[str, ConfigValue] = Field(default_factory=dict)




class Service(Frozen):
    app_schema: str = Field(..., description="Name of `schemas/services/<name>.schema.json`.")
    owners: list[Annotated[str, Field(pattern=OWNER)]] = Field(
        default_factory=list, description="Who reviews services/<name>/ (CODEOWNERS): GitHub "
        "teams `@org/team` or users `@user`.")
    namespace: str | None = Field(None, description="Default `<service>-<environment>`.")
    config: dict[str, ConfigValue] = Field(default_factory=dict)
    secrets: dict[str, SecretSpec] = Field(default_factory=dict)
    flags: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="flagd flag definitions, checked with flagd's own "
        "schemas (schemas/vendor/flagd), plus an optional `rollout` per flag (docs/flags.md)."
    )
    tenants: dict[str, Tenant] = Field(default_factory=dict)
    tls: Tls | None = None
    secrets_version: int | None = Field(
        None, le=INT64_MAX, description="Replaced by `secrets.<KEY>.version` (one per secret); refused.",
        json_schema_extra={"deprecated": True},
    )


class StackDocument(Frozen):
    """The merged document: project defaults <- environment (tenants are applied per service)."""

    platform: Platform
    services: dict[str, Service]
