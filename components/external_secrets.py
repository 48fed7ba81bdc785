"""Into the cluster: External Secrets Operator objects, which name where values are and hold
none (what the operator reads, rotated values included, never passes through the program).

A ClusterSecretStore per backend (Vault KV v2, AWS Secrets Manager) and an ExternalSecret per
service whose Kubernetes Secret the operator fills from the stores at run time. What the pod
gets is configplane.delivery's: a database secret whole, from one read of its current version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource

from configplane.delivery import TEMPLATE_ENGINE, external_secret_sources
from configplane.model import Platform
from configplane.stack import ServicePlan

API_VERSION = "external-secrets.io/v1"  # v1beta1 is no longer served since ESO 0.17


@dataclass(frozen=True)
class SecretStoresArgs:
    platform: Platform
    vault_mount: str
    kubernetes_auth_path: str
    vault_role: pulumi.Input[str]
    namespaces: Sequence[str]  # only these namespaces may use the stores


class SecretStores(pulumi.ComponentResource):
    vault_store_name: pulumi.Output[str]
    aws_store_name: pulumi.Output[str]

    def __init__(self, name: str, args: SecretStoresArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("configplane:externalsecrets:SecretStores", name, {}, opts)
        env = args.platform.environment
        eso = args.platform.external_secrets
        controller = {"name": eso.controller_service_account, "namespace": eso.controller_namespace}
        conditions = [{"namespaces": sorted(args.namespaces)}]
        child = pulumi.ResourceOptions(parent=self)
        vault_store = CustomResource(
            f"{name}-vault",
            api_version=API_VERSION,
            kind="ClusterSecretStore",
            metadata={"name": f"vault-{env}"},
            spec={
                "conditions": conditions,
                "provider": {"vault": {
                    "server": args.platform.vault.address,
                    "path": args.vault_mount,
                    "version": "v2",
                    "auth": {"kubernetes": {
                        "mountPath": args.kubernetes_auth_path,
                        "role": args.vault_role,
                        "serviceAccountRef": controller,
                    }},
                }},
            },
            opts=child,
        )
        aws_store = CustomResource(
            f"{name}-aws",
            api_version=API_VERSION,
            kind="ClusterSecretStore",
            metadata={"name": f"aws-secretsmanager-{env}"},
            spec={
                "conditions": conditions,
                "provider": {"aws": {
                    "service": "SecretsManager",
                    "region": args.platform.aws.region,
                    "auth": {"jwt": {"serviceAccountRef": controller}},  # IRSA
                }},
            },
            opts=child,
        )
        self.vault_store_name = vault_store.metadata["name"]
        self.aws_store_name = aws_store.metadata["name"]
        self.register_outputs({
            "vault_store_name": self.vault_store_name, "aws_store_name": self.aws_store_name,
        })


@dataclass(frozen=True)
class ServiceExternalSecretArgs:
    service: ServicePlan
    namespace: pulumi.Input[str]
    stores: SecretStores
    refresh_interval: str


class ServiceExternalSecret(pulumi.ComponentResource):
    secret_name: pulumi.Output[str]

    def __init__(self, name: str, args: ServiceExternalSecretArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("configplane:externalsecrets:ServiceExternalSecret", name, {}, opts)
        svc = args.service
        aws_store = {"kind": "ClusterSecretStore", "name": args.stores.aws_store_name}
        sources = delivery_sources(svc, aws_store)
        CustomResource(
            f"{name}-external-secret",
            api_version=API_VERSION,
            kind="ExternalSecret",
            metadata={"name": svc.name, "namespace": args.namespace, "labels": dict(svc.labels)},
            spec={
                "refreshInterval": args.refresh_interval,
                "secretStoreRef": {"kind": "ClusterSecretStore", "name": args.stores.vault_store_name},
                "target": {
                    "name": svc.secret_name,
                    "creationPolicy": "Owner",
                    "template": {
                        "engineVersion": TEMPLATE_ENGINE,
                        # exactly the keys of configplane.delivery, nothing else of the sources
                        "mergePolicy": "Replace",
                        # Reloader restarts workloads that opted in when the values change.
                        "metadata": {
                            "labels": dict(svc.labels),
                            "annotations": {"reloader.stakater.com/match": "true"},
                        },
                        "data": sources["template"],
                    },
                },
                **{k: sources[k] for k in ("data", "dataFrom") if sources[k]},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.secret_name = pulumi.Output.from_input(svc.secret_name)
        self.register_outputs({"secret_name": self.secret_name})


def delivery_sources(svc: ServicePlan, aws_store_ref: pulumi.Input[dict]) -> dict:
    """`data`, `dataFrom` and `template.data` for the service (configplane.delivery): a
    database secret arrives whole from one read of its current version."""
    return external_secret_sources(svc.spec.secrets, vault_key=svc.vault_path,
                                   aws_name=svc.aws_secret_name, aws_store_ref=aws_store_ref)
