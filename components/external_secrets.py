"""Into the cluster: External Secrets Operator objects, which name where values are and hold
none (what the operator reads, rotated values included, never passes through the program).

Per service, in the service's own namespace: a `SecretStore` per backend it uses and one
`ExternalSecret` whose Kubernetes Secret the operator fills from those stores at run time.
Each store signs in as the service's own service account: to Vault with the service's own
Kubernetes auth role (its read policy only), to Secrets Manager through the service's own IAM
role (IRSA: the account's `eks.amazonaws.com/role-arn` annotation). No store is cluster-wide
and no identity is shared, so an ExternalSecret in one namespace can read only what that
namespace's service may read (docs/isolation.md). What the pod gets is
configplane.model.delivery's: a database secret whole, from one read of its current version.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource

from components import resource_name
from configplane.contract import RELOADER_MATCH_ANNOTATION
from configplane.model import TEMPLATE_ENGINE, Platform, ServiceModel, external_secret_sources
from configplane.ownership import external_secret_name, secret_store_name
from configplane.refs import VAULT_AUDIENCE

API_VERSION = "external-secrets.io/v1"  # v1beta1 is no longer served since ESO 0.17
STORE_KIND = "SecretStore"  # namespaced; never ClusterSecretStore (policies/secret_stores.py)


@dataclass(frozen=True)
class ServiceSecretStoresArgs:
    service: ServiceModel
    namespace: pulumi.Input[str]
    service_account: pulumi.Input[str]  # the service's own account: the stores' identity
    platform: Platform
    vault_mount: str
    kubernetes_auth_path: str
    vault_role: pulumi.Input[str]  # the service's own Kubernetes auth role


class ServiceSecretStores(pulumi.ComponentResource):
    """A Vault store when the service keeps secrets in Vault, a Secrets Manager store when it
    keeps secrets there; `None` names for the backends it does not use."""


    def __init__(self, name: str, args: ServiceSecretStoresArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("configplane:externalsecrets:ServiceSecretStores", name, {}, opts)
        svc, platform = args.service, args.platform
        child = pulumi.ResourceOptions(parent=self)
        account = {"name": args.service_account}  # a SecretStore's account is in its namespace
        self.vault_store: CustomResource | None = None
        self.aws_store: CustomResource | None = None
        if svc.vault_store:
            self.vault_store = CustomResource(
                f"{name}-vault",
                api_version=API_VERSION,
                kind=STORE_KIND,
                metadata=self._metadata(args, secret_store_name(svc.name, "vault")),
                spec={"provider": {"vault": {
                    "server": platform.vault.address,
                    "path": args.vault_mount,
                    "version": "v2",
                    "auth": {"kubernetes": {
                        "mountPath": args.kubernetes_auth_path,
                        "role": args.vault_role,
                        # tokens for Vault only, as the service's role requires
                        "serviceAccountRef": {**account, "audiences": [VAULT_AUDIENCE]},
                    }},
                }}},
                opts=child,
            )
        if svc.aws_identity:  # the store signs in with the service's own IAM role
            self.aws_store = CustomResource(
                f"{name}-aws",
                api_version=API_VERSION,
                kind=STORE_KIND,
                metadata=self._metadata(args, secret_store_name(svc.name, "aws")),
                spec={"provider": {"aws": {
                    "service": "SecretsManager",
                    "region": platform.aws.region,
                    # IRSA: ESO asks for a token of this account (audience sts.amazonaws.com)
                    # and assumes the role named in its eks.amazonaws.com/role-arn annotation.
                    "auth": {"jwt": {"serviceAccountRef": account}},
                }}},
                opts=child,
            )
        self.vault_store_name: pulumi.Output[str | None] = (
            resource_name(self.vault_store) if self.vault_store else pulumi.Output.from_input(None))
        self.aws_store_name: pulumi.Output[str | None] = (
            resource_name(self.aws_store) if self.aws_store else pulumi.Output.from_input(None))
        self.register_outputs({
            "vault_store_name": self.vault_store_name, "aws_store_name": self.aws_store_name,
        })

    @staticmethod
    def _metadata(args: ServiceSecretStoresArgs, store: str) -> dict:
        return {"name": store, "namespace": args.namespace, "labels": dict(args.service.labels)}


@dataclass(frozen=True)
class ServiceExternalSecretArgs:
    service: ServiceModel
    namespace: pulumi.Input[str]
    stores: ServiceSecretStores
    refresh_interval: str


class ServiceExternalSecret(pulumi.ComponentResource):
    def __init__(self, name: str, args: ServiceExternalSecretArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("configplane:externalsecrets:ServiceExternalSecret", name, {}, opts)
        svc = args.service
        stores = args.stores
        default_store = stores.vault_store_name if stores.vault_store else stores.aws_store_name
        aws_store = {"kind": STORE_KIND, "name": stores.aws_store_name}
        sources = delivery_sources(svc, aws_store)
        CustomResource(
            f"{name}-external-secret",
            api_version=API_VERSION,
            kind="ExternalSecret",
            metadata={"name": external_secret_name(svc.name), "namespace": args.namespace,
                      "labels": dict(svc.labels)},
            spec={
                "refreshInterval": args.refresh_interval,
                "secretStoreRef": {"kind": STORE_KIND, "name": default_store},
                "target": {
                    "name": svc.secret_name,
                    "creationPolicy": "Owner",
                    "template": {
                        "engineVersion": TEMPLATE_ENGINE,
                        # exactly the keys of configplane.model.delivery, nothing else of the sources
                        "mergePolicy": "Replace",
                        # Reloader restarts workloads that opted in when the values change.
                        "metadata": {
                            "labels": dict(svc.labels),
                            "annotations": {RELOADER_MATCH_ANNOTATION: "true"},
                        },
                        "data": sources["template"],
                    },
                },
                **{k: sources[k] for k in ("data", "dataFrom") if sources[k]},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.secret_name: pulumi.Output[str] = pulumi.Output.from_input(svc.secret_name)
        self.register_outputs({"secret_name": self.secret_name})


def delivery_sources(svc: ServiceModel, aws_store_ref: pulumi.Input[dict]) -> dict:
    """`data`, `dataFrom` and `template.data` for the service (configplane.model.delivery): a
    database secret arrives whole from one read of its current version."""
    static = {k: s for k, s in svc.spec.secrets.items() if s.source != "dynamic"}  # own ES
    return external_secret_sources(static, vault_key=svc.vault_path,
                                   aws_name=svc.aws_secret_name, aws_store_ref=aws_store_ref)
