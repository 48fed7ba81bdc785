"""Short-lived PostgreSQL logins: per environment Vault's database secrets engine with a
connection per database (whose root login Vault rotates at once); per service a database role
per `source: dynamic` secret, a policy that reads only its own creds endpoints, a Kubernetes
auth role for its own service account, and the ESO generator and ExternalSecret that deliver
a fresh login into its namespace."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_vault as vault
from pulumi_kubernetes.apiextensions import CustomResource

from components import as_secret
from configplane.durations import seconds
from configplane.model import (
    AUDIENCE,
    GENERATORS_API,
    DatabaseEngineSettings,
    DynamicModel,
    ServiceModel,
    database_mount,
    policy_hcl,
)
from configplane.ownership import database_auth_role, database_policy_name, slug

EXTERNAL_SECRETS_API = "external-secrets.io/v1"
ALL_ROLES = ("*",)  # Vault's allowed_roles: "*" admits every role of the mount


@dataclass(frozen=True)
class DatabaseEngineArgs:
    environment: str
    settings: DatabaseEngineSettings
    # connection name -> the initial root password (the `secure` config value, a secret)
    root_passwords: Mapping[str, pulumi.Output[str]]
    # written before a connection (its root password is a secret write): the audit device
    after: Sequence[pulumi.Resource] = ()


class DatabaseEngine(pulumi.ComponentResource):
    def __init__(self, name: str, args: DatabaseEngineArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("configplane:database:DatabaseEngine", name, {}, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)
        mount = vault.Mount(
            f"{name}-mount",
            path=database_mount(args.environment, settings),
            type="database",
            default_lease_ttl_seconds=seconds(settings.default_ttl),
            max_lease_ttl_seconds=seconds(settings.max_ttl),
            description=f"configplane short-lived database logins for {args.environment}",
            opts=child,
        )
        self.connection_names: dict[str, pulumi.Output[str]] = {}
        for conn_name, conn in sorted(settings.connections.items()):
            url = (f"postgresql://{{{{username}}}}:{{{{password}}}}@{conn.host}:{conn.port}/"
                   f"{conn.dbname}?sslmode={conn.ssl_mode}")
            if conn.ssl_root_cert_file:  # a plain absolute path (the model's pattern)
                url += f"&sslrootcert={conn.ssl_root_cert_file}"
            connection = vault.database.SecretBackendConnection(
                f"{name}-{conn_name}",
                backend=mount.path,
                name=conn_name,
                plugin_name="postgresql-database-plugin",
                # Any role of this mount: a list of the services' roles would make every new
                # service rewrite this platform resource (docs/fleet.md, couplings). Who may
                # write a role here is the deployers' Vault policy's to limit.
                allowed_roles=list(ALL_ROLES),
                verify_connection=True,
                rotation_period=seconds(conn.root_rotation_period)
                if conn.root_rotation_period else None,
                postgresql={
                    "connection_url": url,
                    "username": conn.username,
                    # write-only: the initial value is encrypted in state, not in the
                    # provider's; Vault replaces it right away (rotate-root below)
                    "password_wo": as_secret(args.root_passwords[conn_name]),
                    "password_wo_version": conn.password_version,
                    "password_authentication": "scram-sha-256",
                    "max_open_connections": conn.max_open_connections,
                    # the CA the server's certificate must chain to (validated: trust.py)
                    **({"tls_ca": conn.ssl_root_cert} if conn.ssl_root_cert else {}),
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)),
            )
            # Rotate the root login once configured: from then on only Vault knows it. A new
            # password_version pushes a new initial password and rotates again.
            vault.generic.Endpoint(
                f"{name}-{conn_name}-rotate-root",
                path=pulumi.Output.concat(mount.path, "/rotate-root/", connection.name),
                data_json=json.dumps({}),
                disable_read=True,
                disable_delete=True,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[connection],
                                            replacement_trigger=conn.password_version),
            )
            self.connection_names[conn_name] = connection.name
        self.mount_path: pulumi.Output[str] = mount.path
        self.register_outputs({"mount_path": self.mount_path})


@dataclass(frozen=True)
class ServiceDatabaseCredentialsArgs:
    service: ServiceModel
    plans: Sequence[DynamicModel]
    mount: pulumi.Input[str]  # the environment's database mount
    connections: Mapping[str, pulumi.Input[str]]  # connection -> its name in Vault
    namespace: pulumi.Input[str]
    vault_address: str
    kubernetes_auth_backend: pulumi.Input[str]
    kubernetes_auth_path: str


class ServiceDatabaseCredentials(pulumi.ComponentResource):
    def __init__(self, name: str, args: ServiceDatabaseCredentialsArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("configplane:database:ServiceDatabaseCredentials", name, {}, opts)
        svc = args.service
        child = pulumi.ResourceOptions(parent=self)
        policy = vault.Policy(
            f"{name}-policy", name=database_policy_name(svc.environment, svc.name),
            policy=policy_hcl(args.plans), opts=child,
        )
        role = vault.kubernetes.AuthBackendRole(
            f"{name}-auth-role",
            backend=args.kubernetes_auth_backend,
            role_name=database_auth_role(svc.name),
            bound_service_account_names=[svc.service_account],
            bound_service_account_namespaces=[svc.namespace],
            audience=AUDIENCE,
            token_policies=[policy.name],
            token_ttl=600,
            token_max_ttl=600,
            opts=child,
        )
        metadata = {"namespace": args.namespace, "labels": dict(svc.labels)}
        self.secret_names: dict[str, pulumi.Output[str]] = {}
        for plan in args.plans:
            part = f"{name}-{slug(plan.key)}"
            db_role = vault.database.SecretBackendRole(
                f"{part}-db-role",
                backend=args.mount,
                name=plan.role_name,
                db_name=args.connections[plan.connection],
                creation_statements=plan.creation_statements(),
                revocation_statements=plan.revocation_statements(),
                default_ttl=plan.default_ttl,
                max_ttl=plan.max_ttl,
                opts=child,
            )
            generator = CustomResource(
                f"{part}-generator",
                api_version=GENERATORS_API,
                kind="VaultDynamicSecret",
                metadata={"name": plan.generator_name, **metadata},
                spec=plan.generator_spec(args.vault_address, args.kubernetes_auth_path,
                                         database_auth_role(svc.name), svc.service_account),
                # ESO asks for a login as soon as the generator exists
                opts=pulumi.ResourceOptions(parent=self, depends_on=[role, db_role]),
            )
            CustomResource(
                f"{part}-external-secret",
                api_version=EXTERNAL_SECRETS_API,
                kind="ExternalSecret",
                metadata={"name": plan.secret_name, **metadata},
                spec=plan.external_secret_spec(svc.labels),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[generator]),
            )
            self.secret_names[plan.key] = pulumi.Output.from_input(plan.secret_name)
        self.policy_name: pulumi.Output[str] = policy.name
        self.register_outputs({"secret_names": self.secret_names, "policy_name": self.policy_name})
