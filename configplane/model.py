"""The typed stack document. pydantic is the source of `schemas/stack.schema.json`.

Defaults live here and only here. Models are frozen: components receive them read-only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ConfigValue = str | int | float | bool

# RFC 1123 label (namespaces, service and tenant names): also valid inside subdomain names.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ENV_KEY = r"^[-._a-zA-Z0-9]+$"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VaultSettings(Frozen):
    """Vault for one environment: a KV v2 mount, audit, Kubernetes auth."""

    mount: str | None = Field(None, description="KV v2 mount path; default `<environment>-kv`.")
    max_versions: int = Field(10, ge=0, description="Versions kept per secret (0 = Vault default).")
    cas_required: bool = Field(False, description="Require check-and-set on every write.")
    audit_file_path: str = Field("/vault/logs/audit.log", description="File audit device path.")
    kubernetes_auth_path: str | None = Field(
        None, description="Kubernetes auth mount; default `kubernetes-<environment>`."
    )
    kubernetes_host: str = Field("https://kubernetes.default.svc")
    address: str = Field(..., description="Vault address the External Secrets Operator uses.")


class AwsSettings(Frozen):
    region: str = Field(..., pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    account_id: str = Field(..., pattern=r"^\d{12}$")
    customer_managed_kms_key: bool = Field(
        False, description="Encrypt secrets with a per-environment customer-managed KMS key."
    )
    recovery_window_in_days: int = Field(7, ge=7, le=30)


class ExternalSecretsSettings(Frozen):
    refresh_interval: str = Field("1h", pattern=r"^\d+[smh]$")
    controller_namespace: str = Field("external-secrets", pattern=DNS_LABEL)
    controller_service_account: str = Field("external-secrets", pattern=DNS_LABEL)


class RotationSettings(Frozen):
    """How often rotated secrets rotate in this environment, and the Lambda's network."""

    schedule_days: int | None = Field(90, ge=1, le=1000)
    schedule_expression: str | None = Field(None, description="e.g. `rate(30 days)`; wins over days.")
    subnet_ids: list[str] = Field(default_factory=list)
    security_group_ids: list[str] = Field(default_factory=list)


class Platform(Frozen):
    environment: str = Field(..., pattern=DNS_LABEL, max_length=20)
    part_of: str = Field("configplane", pattern=DNS_LABEL, description="app.kubernetes.io/part-of")
    vault: VaultSettings
    aws: AwsSettings
    external_secrets: ExternalSecretsSettings = ExternalSecretsSettings()
    rotation: RotationSettings = RotationSettings()


class Database(Frozen):
    """Connection facts stored beside a database password (AWS rotation secret layout)."""

    engine: Literal["postgres"] = "postgres"
    host: str
    port: int = Field(5432, ge=1, le=65535)
    dbname: str
    username: str


class Rotation(Frozen):
    strategy: Literal["random", "postgres-single-user", "postgres-alternating-users"]
    master_secret_arn: str | None = Field(
        None, description="Master credential (alternating users): creates the `_clone` user."
    )
    length: int = Field(32, ge=16, le=4096, description="Length of each new password.")


class SecretSpec(Frozen):
    """Where one secret comes from (`source`) and where it is kept (`store`)."""

    source: Literal["secure", "generated", "reference"]
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
    description: str = ""
    database: Database | None = None
    rotation: Rotation | None = None


class Tenant(Frozen):
    config: dict[str, ConfigValue] = Field(default_factory=dict)


# A GitHub user (`@user`), team (`@org/team`) or e-mail address, as CODEOWNERS takes them.
OWNER = r"^(@[A-Za-z0-9][A-Za-z0-9-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?|[^@\s]+@[^@\s]+\.[^@\s]+)$"


class Service(Frozen):
    app_schema: str = Field(..., description="Name of `schemas/services/<name>.schema.json`.")
    owners: list[Annotated[str, Field(pattern=OWNER)]] = Field(
        default_factory=list, description="Who reviews services/<name>/ (CODEOWNERS): GitHub "
        "teams `@org/team` or users `@user`.")
    namespace: str | None = Field(None, description="Default `<service>-<environment>`.")
    config: dict[str, ConfigValue] = Field(default_factory=dict)
    secrets: dict[str, SecretSpec] = Field(default_factory=dict)
    flags: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="flagd flag definitions (schemas/flags.schema.json)."
    )
    tenants: dict[str, Tenant] = Field(default_factory=dict)
    secrets_version: int = Field(
        1, ge=1, description="Bump after changing a secret value: stores write values write-only."
    )


class StackDocument(Frozen):
    """The merged document: project defaults <- environment (tenants are applied per service)."""

    platform: Platform
    services: dict[str, Service]
