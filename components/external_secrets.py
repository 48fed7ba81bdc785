"""Into the cluster without values in state: External Secrets Operator objects.

A ClusterSecretStore per backend (Vault KV v2, AWS Secrets Manager) and an ExternalSecret per
service whose Kubernetes Secret the operator fills from the stores at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource

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
                    # Reloader restarts workloads that opted in when the values change.
                    "template": {"metadata": {
                        "labels": dict(svc.labels),
                        "annotations": {"reloader.stakater.com/match": "true"},
                    }},
                },
                "data": [self._entry(svc, key, args.stores) for key in sorted(svc.spec.secrets)
                         if svc.spec.secrets[key].source != "dynamic"],  # own ExternalSecret
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.secret_name = pulumi.Output.from_input(svc.secret_name)
        self.register_outputs({"secret_name": self.secret_name})

    @staticmethod
    def _entry(svc: ServicePlan, key: str, stores: SecretStores) -> dict:
        spec = svc.spec.secrets[key]
        if spec.store == "vault":
            path, prop = spec.ref.split("#", 1) if spec.ref else (svc.vault_path, key)
            return {"secretKey": key, "remoteRef": {"key": path, "property": prop}}
        remote = {"key": spec.ref or svc.aws_secret_name(key)}
        if spec.database is not None:
            remote["property"] = "password"  # the secret holds JSON with connection facts
        return {
            "secretKey": key,
            "remoteRef": remote,
            "sourceRef": {"storeRef": {"kind": "ClusterSecretStore", "name": stores.aws_store_name}},
        }
