"""configplane: load and validate the stack's configuration, declare its resources, export
the outputs applications read. Nothing is declared unless the whole configuration is valid."""

from pathlib import Path

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
from configplane.stack import InvalidStack, load_stack
from configplane.stackfiles import NAMESPACE, inputs_from_pulumi

PROJECT_DIR = Path(__file__).resolve().parent


def main() -> None:
    try:
        inputs = inputs_from_pulumi(PROJECT_DIR, pulumi.get_stack())
        stack = load_stack(inputs, PROJECT_DIR / "schemas")
    except InvalidStack as exc:
        # Stop before any resource is declared; the message names file, path and fix.
        raise pulumi.RunError(str(exc)) from None

    config = pulumi.Config(NAMESPACE)
    platform = stack.platform
    env = stack.environment

    vault_env = VaultEnvironment(
        f"vault-{env}",
        VaultEnvironmentArgs(env, stack.vault_mount, stack.kubernetes_auth_path, platform.vault),
    )
    aws_env = AwsSecretsEnvironment(f"aws-{env}", AwsSecretsEnvironmentArgs(env, platform.aws))

    services = {}
    for name, svc in stack.services.items():
        secure = {
            spec.config_key: config.require_secret(spec.config_key)
            for spec in svc.spec.secrets.values()
            if spec.source == "secure"
        }
        values = SecretValues(f"{name}-secret-values", SecretValuesArgs(svc, secure)).values
        cfg = ServiceConfig(f"{name}-config", ServiceConfigArgs(svc))
        configmaps = [cm.name for cm in (svc.config, svc.flags, *svc.tenants.values()) if cm]
        access = ServiceAccess(
            f"{name}-access", ServiceAccessArgs(svc, cfg.namespace, configmaps)
        )
        vault_svc = VaultService(f"{name}-vault", VaultServiceArgs(svc, vault_env, values))
        aws_svc = AwsServiceSecrets(
            f"{name}-aws", AwsServiceSecretsArgs(svc, platform.aws, aws_env, values)
        )
        services[name] = (svc, cfg, access, vault_svc, aws_svc)

    rotated = [
        RotatedSecret(
            name=f"{name}-{key.lower().replace('_', '-')}",
            secret_arn=aws_svc.secrets[key].arn,
            strategy=spec.rotation.strategy,
            kms_key_arn=aws_env.key.arn if aws_env.key else None,
            master_secret_arn=spec.rotation.master_secret_arn,
        )
        for name, (svc, _, _, _, aws_svc) in services.items()
        for key, spec in svc.secrets_in("aws").items()
        if spec.rotation
    ]
    if rotated:
        schedule = platform.rotation
        SecretRotator(
            f"rotation-{env}",
            SecretRotatorArgs(
                environment=env,
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

    eso = platform.external_secrets
    eso_role = vault_env.reader_role(
        f"vault-{env}-external-secrets",
        eso.controller_service_account,
        eso.controller_namespace,
        [v.policy_name for (_, _, _, v, _) in services.values()],
    )
    stores = SecretStores(
        f"secret-stores-{env}",
        SecretStoresArgs(
            platform,
            stack.vault_mount,
            stack.kubernetes_auth_path,
            eso_role.role_name,
            [svc.namespace for (svc, *_) in services.values()],
        ),
    )

    outputs = {}
    for name, (svc, cfg, access, vault_svc, aws_svc) in services.items():
        ServiceExternalSecret(
            f"{name}-external-secret",
            ServiceExternalSecretArgs(svc, cfg.namespace, stores, eso.refresh_interval),
        )
        outputs[name] = {
            "namespace": cfg.namespace,
            "service_account": access.service_account_name,
            "configmap": cfg.configmap_name,
            "config_hash": cfg.config_hash,
            "secret_name": svc.secret_name,
            "vault_path": svc.vault_data_path,
            "vault_policy": vault_svc.policy_name,
            "vault_role": vault_svc.role_name,
            "secrets_manager_arns": aws_svc.arns,
            "flags_configmap": cfg.flags_configmap_name,
            "tenants": {
                t: {"configmap": cm.name, "config_hash": cm.hash} for t, cm in svc.tenants.items()
            },
            "pod_annotations": {
                "checksum/config": svc.config.hash,
                "reloader.stakater.com/search": "true",
            },
        }

    pulumi.export("environment", env)
    pulumi.export("vault_mount", vault_env.mount_path)
    pulumi.export("kubernetes_auth_path", vault_env.auth_path)
    pulumi.export(
        "secret_stores", {"vault": stores.vault_store_name, "aws": stores.aws_store_name}
    )
    pulumi.export("services", outputs)


main()
