"""The stack outputs contract: what applications and other stacks may read. Never a secret."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantOutputs(_Out):
    configmap: str = Field(..., description="The tenant's immutable ConfigMap (hashed name).")
    config_hash: str


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
    flags_configmap: str | None = None
    tenants: dict[str, TenantOutputs] = Field(default_factory=dict)
    workload_annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Annotations for the workload's own metadata (Deployment, StatefulSet, "
        "DaemonSet), not its pod template: Reloader reads them there.",
    )
    pod_annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Annotations for the pod template (spec.template.metadata): checksum/config, "
        "so a new config generation rolls the pods.",
    )


class StackOutputs(_Out):
    environment: str
    vault_mount: str
    kubernetes_auth_path: str
    secret_stores: dict[str, str] = Field(..., description="ClusterSecretStore name per backend.")
    services: dict[str, ServiceOutputs]
