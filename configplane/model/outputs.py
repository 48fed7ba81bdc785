"""The stack outputs contract: what applications and other stacks may read. Never a secret."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantOutputs(_Out):
    configmap: str = Field(..., description="The tenant's immutable ConfigMap (hashed name).")
    config_hash: str


class SecretStoreOutputs(_Out):
    """The service's namespaced SecretStores (in its own namespace); null where the service
    keeps no secret in that backend."""

    vault: str | None = Field(None, description="SecretStore signing in to Vault as the service.")
    aws: str | None = Field(
        None, description="SecretStore reading Secrets Manager through the service's IAM role."
    )
class TlsOutputs(_Out):
    secret_name: str = Field(..., description="kubernetes.io/tls Secret cert-manager writes.")
    issuer: str = Field(..., description="cert-manager Issuer (Vault, the service's identity).")


class PkiOutputs(_Out):
    mount: str = Field(..., description="The environment's intermediate CA mount.")
    csr: str | None = Field(None, description="The intermediate's CSR (parent: external: sign "
                            "it with the offline root). Public.")


class ServiceOutputs(_Out):
    namespace: str
    service_account: str
    configmap: str = Field(..., description="Immutable ConfigMap with the service's config.")
    config_hash: str = Field(..., description="Put it in the pod template (checksum/config).")
    secret_name: str = Field(..., description="Kubernetes Secret written by the ExternalSecret.")
    vault_path: str = Field(..., description="KV v2 data path, `<mount>/data/<service>`.")
    vault_policy: str
    vault_role: str = Field(..., description="Kubernetes auth role bound to the service account.")
    secrets_manager_arns: dict[str, str] = Field(default_factory=dict)
    secret_stores: SecretStoreOutputs = Field(
        default_factory=SecretStoreOutputs, description="SecretStore names per backend."
    )
    iam_role_arn: str | None = Field(
        None, description="IAM role (IRSA) the service account's tokens assume to read the "
        "service's Secrets Manager secrets; null without such secrets.",
    )
    flags_configmap: str | None = None
    tenants: dict[str, TenantOutputs] = Field(default_factory=dict)
    workload_annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Annotations for the workload's own metadata (Deployment, StatefulSet, "
        "DaemonSet), not its pod template: Reloader reads them there.",
    )
    tls: TlsOutputs | None = Field(None, description="The service's certificate, if `tls:`.")
    dynamic_secret_names: list[str] = Field(
        default_factory=list, description="Kubernetes Secrets holding a short-lived database "
        "login (the secret's key and its username_key), one per `source: dynamic` secret.")
    pod_annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Annotations for the pod template (spec.template.metadata): checksum/config, "
        "so a new config generation rolls the pods.",
    )


class DatabaseOutputs(_Out):
    mount: str = Field(..., description="The environment's database secrets engine mount.")
    connections: dict[str, str] = Field(default_factory=dict,
                                        description="Connection -> its name in Vault.")


class StackOutputs(_Out):
    """One stack's outputs (docs/fleet.md). A platform stack: the environment's shared names,
    which its shards read through a StackReference. A shard: its own services. An environment
    that is one stack: both."""

    environment: str
    shard: str | None = Field(None, description="The shard this stack holds (shard stacks).")
    vault_mount: str | None = None
    kubernetes_auth_path: str | None = None
    pki: PkiOutputs | None = None
    kms_key_arn: str | None = Field(None, description="The environment's customer-managed key.")
    replica_key_arns: dict[str, str] | None = Field(
        None, description="Region -> the key that encrypts the secrets' replicas there "
        "(platform.aws.replica_regions).")
    database: DatabaseOutputs | None = None
    providers: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Non-secret provider settings (`<package>: {key: "
        "value}`) the shards' explicit providers are built from (where, never who).")
    services: dict[str, ServiceOutputs] = Field(
        default_factory=dict, description="The services this stack declares (`configplane "
        "where <service>` names the stack).")
