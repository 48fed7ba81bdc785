"""configplane: load and validate the stack's configuration, declare its resources, export
the outputs applications read. Nothing is declared unless the whole configuration is valid."""

from pathlib import Path
from typing import NamedTuple

import pulumi

from components.access import ServiceAccess, ServiceAccessArgs
from components.aws_secrets import (
    AwsSecretsEnvironment,
    AwsSecretsEnvironmentArgs,
    AwsServiceSecrets,
    AwsServiceSecretsArgs,
)
from components.external_secrets import (
    SecretStores,
    SecretStoresArgs,
    ServiceExternalSecret,
    ServiceExternalSecretArgs,
)
from components.rotation import PasswordPolicy, RotatedSecret, SecretRotator, SecretRotatorArgs
from components.secret_values import SecretValues, SecretValuesArgs
from components.service_config import ServiceConfig, ServiceConfigArgs
from components.vault import VaultEnvironment, VaultEnvironmentArgs, VaultService, VaultServiceArgs
from configplane.catalog import read_inputs, runtime_values
from configplane.model import AwsSettings
from configplane.stack import InvalidStack, ServicePlan, StackModel, load_stack
from configplane.stackfiles import NAMESPACE, StackFileError

PROJECT_DIR = Path(__file__).resolve().parent


class DeclaredService(NamedTuple):
    plan: ServicePlan
    config: ServiceConfig
    access: ServiceAccess
    vault: VaultService
    aws: AwsServiceSecrets


def main() -> None:
    try:
        # The one reader the CLI uses too: the catalog from services/, config from the engine.
        inputs = read_inputs(PROJECT_DIR, pulumi.get_stack(), runtime_values())
        stack = load_stack(inputs, PROJECT_DIR / "schemas")
    except (InvalidStack, StackFileError) as exc:
        # Stop before any resource is declared; the message names file, path and fix.
        raise pulumi.RunError(str(exc)) from None

    platform = stack.platform
    env = stack.environment
    vault_env = VaultEnvironment(
        f"vault-{env}",
        VaultEnvironmentArgs(env, stack.vault_mount, stack.kubernetes_auth_path, platform.vault),
    )
    aws_env = AwsSecretsEnvironment(f"aws-{env}", AwsSecretsEnvironmentArgs(env, platform.aws))
    config = pulumi.Config(NAMESPACE)
    services = {
        name: declare_service(svc, config, vault_env, aws_env, platform.aws)
        for name, svc in stack.services.items()
    }
    declare_rotation(stack, services, aws_env)

    eso = platform.external_secrets
    eso_role = vault_env.reader_role(
        f"vault-{env}-external-secrets",
        eso.controller_service_account,
        eso.controller_namespace,
        [s.vault.policy_name for s in services.values()],
    )
    stores = SecretStores(
        f"secret-stores-{env}",
        SecretStoresArgs(platform, stack.vault_mount, stack.kubernetes_auth_path,
                         eso_role.role_name, [s.plan.namespace for s in services.values()]),
    )
    for name, s in services.items():
        ServiceExternalSecret(
            f"{name}-external-secret",
            ServiceExternalSecretArgs(s.plan, s.config.namespace, stores, eso.refresh_interval),
        )

    pulumi.export("environment", env)
    pulumi.export("vault_mount", vault_env.mount_path)
    pulumi.export("kubernetes_auth_path", vault_env.auth_path)
    pulumi.export(
        "secret_stores", {"vault": stores.vault_store_name, "aws": stores.aws_store_name}
    )
    pulumi.export("services", {name: service_outputs(s) for name, s in services.items()})


def declare_service(svc: ServicePlan, config: pulumi.Config, vault_env: VaultEnvironment,
                    aws_env: AwsSecretsEnvironment, aws_settings: AwsSettings) -> DeclaredService:
    name = svc.name
    secure = {
        spec.config_key: config.require_secret(spec.config_key)
        for spec in svc.spec.secrets.values()
        if spec.source == "secure"
    }
    values = SecretValues(f"{name}-secret-values", SecretValuesArgs(svc, secure)).values
    cfg = ServiceConfig(f"{name}-config", ServiceConfigArgs(svc))
    configmaps = [cm.name for cm in (svc.config, svc.flags, *svc.tenants.values()) if cm]
    return DeclaredService(
        plan=svc,
        config=cfg,
        access=ServiceAccess(f"{name}-access", ServiceAccessArgs(svc, cfg.namespace, configmaps)),
        vault=VaultService(f"{name}-vault", VaultServiceArgs(svc, vault_env, values)),
        aws=AwsServiceSecrets(
            f"{name}-aws", AwsServiceSecretsArgs(svc, aws_settings, aws_env, values)
        ),
    )


def declare_rotation(stack: StackModel, services: dict[str, DeclaredService],
                     aws_env: AwsSecretsEnvironment) -> None:
    """One rotation Lambda per environment for every Secrets Manager secret that asks for it."""
    rotated = [
        RotatedSecret(
            name=f"{name}-{key.lower().replace('_', '-')}",
            secret_arn=s.aws.secrets[key].arn,
            strategy=spec.rotation.strategy,
            kms_key_arn=aws_env.key.arn if aws_env.key else None,
            master_secret_arn=spec.rotation.master_secret_arn,
        )
        for name, s in services.items()
        for key, spec in s.plan.secrets_in("aws").items()
        if spec.rotation
    ]
    if not rotated:
        return
    platform = stack.platform
    schedule = platform.rotation
    SecretRotator(
        f"rotation-{stack.environment}",
        SecretRotatorArgs(
            environment=stack.environment,
            account_id=platform.aws.account_id,
            region=platform.aws.region,
            secrets=rotated,
            schedule_days=None if schedule.schedule_expression else schedule.schedule_days,
            schedule_expression=schedule.schedule_expression,
            subnet_ids=schedule.subnet_ids,
            security_group_ids=schedule.security_group_ids,
            # AWS's own rotation functions exclude these: they break URLs and shells
            password=PasswordPolicy(exclude_characters="/@\"'\\ "),
        ),
    )


def service_outputs(s: DeclaredService) -> dict:
    """One service's part of the outputs contract (schemas/outputs.schema.json)."""
    svc = s.plan
    return {
        "namespace": s.config.namespace,
        "service_account": s.access.service_account_name,
        "configmap": s.config.configmap_name,
        "config_hash": s.config.config_hash,
        "secret_name": svc.secret_name,
        "vault_path": svc.vault_data_path,
        "vault_policy": s.vault.policy_name,
        "vault_role": s.vault.role_name,
        "secrets_manager_arns": s.aws.arns,
        "flags_configmap": s.config.flags_configmap_name,
        "tenants": {t: {"configmap": cm.name, "config_hash": cm.hash}
                    for t, cm in svc.tenants.items()},
        "pod_annotations": {
            "checksum/config": svc.config.hash,
            "reloader.stakater.com/search": "true",
        },
    }


main()
