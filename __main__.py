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
from components.dynamic_credentials import (
    DatabaseEngine,
    DatabaseEngineArgs,
    ServiceDatabaseCredentials,
    ServiceDatabaseCredentialsArgs,
)
from components.external_secrets import (
    ServiceExternalSecret,
    ServiceExternalSecretArgs,
    ServiceSecretStores,
    ServiceSecretStoresArgs,
)
from components.pki import (
    PkiEnvironment,
    PkiEnvironmentArgs,
    ServiceCertificate,
    ServiceCertificateArgs,
)
from components.rotation import PasswordPolicy, RotatedSecret, SecretRotator, SecretRotatorArgs
from components.secret_values import SecretValues, SecretValuesArgs
from components.service_config import ServiceConfig, ServiceConfigArgs
from components.vault import VaultEnvironment, VaultEnvironmentArgs, VaultService, VaultServiceArgs
from components.workload_identity import SecretReaderRole, SecretReaderRoleArgs
from configplane import ownership, refs
from configplane.contract import CHECKSUM_ANNOTATION, IRSA_ROLE_ANNOTATION, RELOADER_SEARCH_ANNOTATION
from configplane.durations import seconds
from configplane.inputs import (
    NAMESPACE,
    RunContext,
    Selection,
    StackFileError,
    read_inputs,
    runtime_values,
)
from configplane.model import InvalidStack, ServiceModel, StackModel, read_clock
from configplane.validation import load_stack

PROJECT_DIR = Path(__file__).resolve().parent


class DeclaredService(NamedTuple):
    plan: ServiceModel
    config: ServiceConfig
    access: ServiceAccess
    vault: VaultService
    aws: AwsServiceSecrets
    identity: SecretReaderRole | None  # its own IAM role, when it keeps secrets in AWS
    stores: ServiceSecretStores
    tls: ServiceCertificate | None = None
    dynamic: ServiceDatabaseCredentials | None = None


def main() -> None:
    values = runtime_values()  # config from the engine, the run's selection included
    try:  # `plan --service` hands its selection through config: `pulumi up` has none
        selection = Selection.from_config(values)
    except ValueError as exc:
        raise pulumi.RunError(str(exc)) from None
    run = RunContext.create(PROJECT_DIR, selection.services)
    try:
        # The one reader the CLI uses too: the catalog from services/, config from the engine.
        inputs = read_inputs(run.project_dir, pulumi.get_stack(), values,
                             services=run.selection.services)
        # the model, built once: today (read once per run) dates generated secrets
        stack = load_stack(inputs, run.project_dir / "schemas", run.detector, read_clock())
    except (InvalidStack, StackFileError) as exc:
        # Stop before any resource is declared; the message names file, path and fix.
        raise pulumi.RunError(str(exc)) from None

    platform = stack.platform
    env = stack.environment
    config = pulumi.Config(NAMESPACE)
    reviewer_key = platform.vault.token_reviewer_jwt_config_key
    vault_env = VaultEnvironment(
        f"vault-{env}",
        VaultEnvironmentArgs(env, stack.vault_mount, stack.kubernetes_auth_path, platform.vault,
                             config.require_secret(reviewer_key) if reviewer_key else None),
    )
    aws_env = AwsSecretsEnvironment(f"aws-{env}", AwsSecretsEnvironmentArgs(env, platform.aws))
    services = {name: declare_service(stack, svc, config, vault_env, aws_env)
                for name, svc in stack.services.items()}
    declare_rotation(stack, services, aws_env)
    pki = declare_certificates(stack, services, vault_env)
    declare_dynamic_credentials(stack, services, vault_env, config)

    for name, s in services.items():
        if s.plan.external_secret:
            ServiceExternalSecret(
                f"{name}-external-secret",
                ServiceExternalSecretArgs(s.plan, s.config.namespace, s.stores,
                                          platform.external_secrets.refresh_interval),
            )

    pulumi.export("environment", env)
    pulumi.export("vault_mount", vault_env.mount_path)
    pulumi.export("kubernetes_auth_path", vault_env.auth_path)
    if pki is not None:
        pulumi.export("pki", {"mount": pki.mount_path, "csr": pki.csr})
    pulumi.export("services", {name: service_outputs(s) for name, s in services.items()})


def declare_service(stack: StackModel, svc: ServiceModel, config: pulumi.Config,
                    vault_env: VaultEnvironment, aws_env: AwsSecretsEnvironment) -> DeclaredService:
    name = svc.name
    versions = svc.versions
    aws_settings = stack.platform.aws
    secure = {
        spec.config_key: config.require_secret(spec.config_key)
        for spec in svc.spec.secrets.values()
        if spec.source == "secure"
    }
    values = SecretValues(f"{name}-secret-values", SecretValuesArgs(svc, secure, versions)).values
    cfg = ServiceConfig(f"{name}-config", ServiceConfigArgs(svc))
    configmaps = [cm.name for cm in (svc.config, svc.flags, *svc.tenants.values()) if cm]
    vault_svc = VaultService(f"{name}-vault", VaultServiceArgs(svc, vault_env, values, versions))
    aws_svc = AwsServiceSecrets(
        f"{name}-aws", AwsServiceSecretsArgs(svc, aws_settings, aws_env, values, versions)
    )
    identity = None
    if svc.aws_identity:
        identity = SecretReaderRole(f"{name}-identity", SecretReaderRoleArgs(
            svc, aws_settings, aws_env.key.arn if aws_env.key else None))
    # the role's ARN as IAM builds it from its fixed name: known in preview, for the pack
    role_arn = refs.iam_role_arn(aws_settings.account_id,
                                 ownership.iam_role_name(svc.environment, name))
    access = ServiceAccess(f"{name}-access", ServiceAccessArgs(
        svc, cfg.namespace, configmaps,
        annotations={IRSA_ROLE_ANNOTATION: role_arn} if identity else {}))
    stores = ServiceSecretStores(f"{name}-secret-stores", ServiceSecretStoresArgs(
        svc, cfg.namespace, access.service_account_name, stack.platform, stack.vault_mount,
        stack.kubernetes_auth_path, vault_svc.role_name))
    return DeclaredService(plan=svc, config=cfg, access=access, vault=vault_svc, aws=aws_svc,
                           identity=identity, stores=stores)


def declare_rotation(stack: StackModel, services: dict[str, DeclaredService],
                     aws_env: AwsSecretsEnvironment) -> None:
    """A rotation Lambda per service whose Secrets Manager secrets ask for it: each function's
    role reaches that service's secrets only (docs/isolation.md)."""
    platform = stack.platform
    schedule = platform.rotation
    for name, s in services.items():
        secrets = s.plan.spec.secrets
        rotated = [
            RotatedSecret(
                name=rotation_name,
                secret_arn=s.aws.secrets[key].arn,
                strategy=secrets[key].rotation.strategy,
                kms_key_arn=aws_env.key.arn if aws_env.key else None,
                master_secret_arn=secrets[key].rotation.master_secret_arn,
            )
            for key, rotation_name in s.plan.rotated.items()
        ]
        if not rotated:
            continue
        SecretRotator(
            f"rotation-{stack.environment}-{name}",
            SecretRotatorArgs(
                environment=stack.environment,
                service=name,
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


def declare_certificates(stack: StackModel, services: dict[str, DeclaredService],
                         vault_env: VaultEnvironment) -> PkiEnvironment | None:
    """The environment's intermediate CA, and an Issuer and Certificate per service with `tls`."""
    settings = stack.platform.pki
    if settings is None:
        return None
    env = stack.environment
    pki = PkiEnvironment(f"pki-{env}", PkiEnvironmentArgs(stack.platform, settings))
    for name, s in services.items():
        if s.plan.tls is None:
            continue
        services[name] = s._replace(tls=ServiceCertificate(f"{name}-tls", ServiceCertificateArgs(
            service=s.plan,
            tls=s.plan.tls,
            pki=pki,
            namespace=s.config.namespace,
            service_account=s.access.service_account_name,
            vault_address=stack.platform.vault.address,
            kubernetes_auth_backend=vault_env.auth_path,
            kubernetes_auth_path=stack.kubernetes_auth_path,
            leaf_max_ttl=seconds(settings.leaf_max_ttl),
            cert_manager_namespace=settings.cert_manager_namespace,
            cert_manager_service_account=settings.cert_manager_service_account,
        )))
    return pki


def declare_dynamic_credentials(stack: StackModel, services: dict[str, DeclaredService],
                                vault_env: VaultEnvironment, config: pulumi.Config) -> None:
    """Vault's database engine, and per service its roles and the ESO objects for its logins."""
    settings = stack.platform.database
    if settings is None:
        return
    allowed: dict[str, list[str]] = {}
    for plan in (p for s in services.values() for p in s.plan.dynamic):
        allowed.setdefault(plan.connection, []).append(plan.role_name)
    engine = DatabaseEngine(f"database-{stack.environment}", DatabaseEngineArgs(
        environment=stack.environment,
        settings=settings,
        root_passwords={name: config.require_secret(conn.password_config_key)
                        for name, conn in settings.connections.items()},
        allowed_roles=allowed,
        after=vault_env.before_secrets,
    ))
    for name, s in services.items():
        if s.plan.dynamic:
            services[name] = s._replace(dynamic=ServiceDatabaseCredentials(
                f"{name}-dynamic", ServiceDatabaseCredentialsArgs(
                    service=s.plan, plans=s.plan.dynamic, engine=engine,
                    namespace=s.config.namespace, vault_address=stack.platform.vault.address,
                    kubernetes_auth_backend=vault_env.auth_path,
                    kubernetes_auth_path=stack.kubernetes_auth_path,
                )))


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
        "secret_stores": {"vault": s.stores.vault_store_name, "aws": s.stores.aws_store_name},
        "iam_role_arn": s.identity.role_arn if s.identity else None,
        "flags_configmap": s.config.flags_configmap_name,
        "tls": {"secret_name": s.tls.secret_name, "issuer": s.tls.issuer_name} if s.tls else None,
        "dynamic_secret_names": list(s.dynamic.secret_names.values()) if s.dynamic else [],
        "tenants": {t: {"configmap": cm.name, "config_hash": cm.hash}
                    for t, cm in svc.tenants.items()},
        # Reloader's search mode reads its annotation on the workload's own metadata
        # (Reloader's README: "Applies To: Workload"); the ConfigMaps and the Secret the
        # ExternalSecret writes carry its `match` annotation. The hash goes on the pod
        # template: a change rolls the pods (the Helm checksum/config pattern).
        "workload_annotations": {RELOADER_SEARCH_ANNOTATION: "true"},
        "pod_annotations": {CHECKSUM_ANNOTATION: svc.config.hash},
    }


main()
