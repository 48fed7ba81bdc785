"""Vault: per environment a KV v2 mount, audit and Kubernetes auth; per service its secret,
a read-only policy on its own paths and a Kubernetes auth role bound to its own service
account, which the service's SecretStore signs in with (no shared reader role)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_vault as vault

from components import as_secret
from components.platform import PlatformRefs
from configplane.model import ServiceModel, ServiceVersions, VaultSettings
from configplane.ownership import vault_role
from configplane.refs import VAULT_AUDIENCE


@dataclass(frozen=True)
class VaultEnvironmentArgs:
    environment: str
    mount: str
    kubernetes_auth_path: str
    settings: VaultSettings
    # a Vault outside the cluster: the token it calls TokenReview with (a secret), else None
    token_reviewer_jwt: pulumi.Output[str] | None = None


class VaultEnvironment(pulumi.ComponentResource):
    def __init__(self, name: str, args: VaultEnvironmentArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("configplane:vault:VaultEnvironment", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.mount = vault.Mount(
            f"{name}-kv",
            path=args.mount,
            type="kv",
            options={"version": "2"},
            description=f"configplane secrets for {args.environment}",
            opts=child,
        )
        kv_config = vault.kv.SecretBackendV2(
            f"{name}-kv-config",
            mount=self.mount.path,
            max_versions=args.settings.max_versions,
            cas_required=args.settings.cas_required,
            opts=child,
        )
        audit = vault.Audit(
            f"{name}-audit",
            type="file",
            path=f"file-{args.environment}",
            options={"file_path": args.settings.audit_file_path},
            opts=child,
        )
        self.auth = vault.AuthBackend(
            f"{name}-kubernetes-auth", type="kubernetes", path=args.kubernetes_auth_path, opts=child
        )
        vault.kubernetes.AuthBackendConfig(
            f"{name}-kubernetes-auth-config",
            backend=self.auth.path,
            kubernetes_host=args.settings.kubernetes_host,
            **kubernetes_trust(args.settings, args.token_reviewer_jwt),
            # the reviewer token is a secret write: the audit device logs it (as an HMAC)
            opts=pulumi.ResourceOptions(parent=self, depends_on=[audit]),
        )
        # what must exist before the first secret is written: the audit device (or that write
        # is never logged) and the KV settings (max_versions, cas_required). Secrets depend on
        # them.
        self.before_secrets: list[pulumi.Resource] = [audit, kv_config]
        self.mount_path: pulumi.Output[str] = self.mount.path
        self.auth_path: pulumi.Output[str] = self.auth.path
        self.register_outputs({"mount_path": self.mount_path, "auth_path": self.auth_path})


def kubernetes_trust(settings: VaultSettings,
                     reviewer_jwt: pulumi.Output[str] | None) -> dict:
    """In the cluster, Vault reads the API server's CA and its reviewer token from its own pod
    (nothing to declare). Outside, both are given: the CA, and the token write-only (the
    provider keeps no copy; Pulumi keeps it encrypted in state as a secret input)."""
    if settings.runs_in_cluster:
        return {}
    return {
        "kubernetes_ca_cert": settings.kubernetes_ca_cert,
        "token_reviewer_jwt_wo": pulumi.Output.secret(reviewer_jwt),
        "token_reviewer_jwt_wo_version": settings.token_reviewer_jwt_version,
        "disable_local_ca_jwt": True,  # never fall back to files of a pod Vault is not in
    }


@dataclass(frozen=True)
class VaultServiceArgs:
    service: ServiceModel
    platform: PlatformRefs  # the environment's mount and auth path
    values: Mapping[str, pulumi.Output[str]]  # secret name -> value, for store=vault ones
    versions: ServiceVersions


class VaultService(pulumi.ComponentResource):
    def __init__(self, name: str, args: VaultServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("configplane:vault:VaultService", name, {}, opts)
        svc, env = args.service, args.platform
        child = pulumi.ResourceOptions(parent=self)
        known = {k: args.values[k] for k in svc.secrets_in("vault") if k in args.values}
        if known:
            vault.kv.SecretV2(
                f"{name}-secret",
                mount=env.vault_mount,
                name=svc.vault_path,
                # write-only: the provider keeps no copy; Pulumi keeps the inputs it sent,
                # this value included, encrypted in state (a secret input)
                data_json_wo=as_secret(
                    pulumi.Output.all(**known).apply(lambda v: json.dumps(v, sort_keys=True))
                ),
                # changes when one of these secrets is bumped, regenerated, added or removed
                data_json_wo_version=args.versions.vault_version(sorted(known)),
                opts=pulumi.ResourceOptions(parent=self, depends_on=env.before_secrets),
            )
        self.policy = vault.Policy(
            f"{name}-policy", name=svc.vault_policy, policy=svc.vault_policy_hcl(), opts=child
        )
        role = vault.kubernetes.AuthBackendRole(
            f"{name}-role",
            backend=env.auth_path,
            role_name=vault_role(svc.name),
            bound_service_account_names=[svc.service_account],
            bound_service_account_namespaces=[svc.namespace],
            token_policies=[self.policy.name],
            token_ttl=3600,
            audience=VAULT_AUDIENCE,
            opts=child,
        )
        self.policy_name: pulumi.Output[str] = self.policy.name
        self.role_name: pulumi.Output[str] = role.role_name
        self.register_outputs({"policy_name": self.policy_name, "role_name": self.role_name})
