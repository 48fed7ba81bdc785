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
from components.backup import BackupEnvironment, BackupEnvironmentArgs
from components.deploy_rights import ShardDeployRights, ShardDeployRightsArgs, ShardScope, VaultMounts
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
from components.pki import PkiEnvironment, PkiEnvironmentArgs, ServiceCertificate, ServiceCertificateArgs
from components.platform import PlatformRefs, provider_settings, shard_refs
from components.rotation import (
    PasswordPolicy,
    RotatedSecret,
    SecretRotator,
    SecretRotatorArgs,
    code_archive,
)
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
from configplane.model import (
    ClockError,
    InvalidStack,
    ServiceModel,
    StackModel,
    Topology,
    TopologyError,
    declared_services,
    narrowed,
    read_clock,
    stack_role,
    topology_of,
)
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
        # Which stack this is (docs/fleet.md): an environment's platform stack, or a shard.
        role = stack_role(run.project_dir, pulumi.get_stack())
        shard = role.kind == "shard"
        # The one reader the CLI uses too: the catalog from services/, config from the engine
        # (a shard: the environment's settings from its stack file, its own secure values).
        inputs = read_inputs(run.project_dir, role.environment, None if shard else values,
                             shard_values=values if shard else None)
        topology = topology_of(inputs)
        inputs = narrowed(inputs, [s for s in declared_services(topology, role, selection.one_stack)
                                   if run.selection.admits(s)])
        # the model, built once: today (read once per run) dates generated secrets
        stack = load_stack(inputs, run.project_dir / "schemas", run.detector, read_clock())
    except (InvalidStack, StackFileError, TopologyError, ClockError) as exc:
        # Stop before any resource is declared; the message names file, path and fix (or
        # what CONFIGPLANE_NOW must be).
        raise pulumi.RunError(str(exc)) from None

    config = pulumi.Config(NAMESPACE)
    one_stack = selection.one_stack or not topology.sharded
    if shard and not one_stack:
        shared = shard_refs(
            f"{pulumi.get_organization()}/{pulumi.get_project()}/{role.environment}",
            provider_settings(inputs.values),
            customer_managed_key=stack.platform.aws.customer_managed_kms_key,
            pki=any(s.tls for s in stack.services.values()),
            connections=sorted({p.connection for s in stack.services.values() for p in s.dynamic}),
            replica_regions=stack.platform.aws.replica_regions)
        pulumi.export("environment", stack.environment)
        pulumi.export("shard", role.shard)
    else:
        shared = declare_platform(stack, config, provider_settings(inputs.values), topology)
        if not one_stack:
            return  # the platform stack: its shards declare the services
    boundaries = service_boundaries(stack, topology)
    services: dict[str, DeclaredService] = {}
    for name, svc in stack.services.items():  # (a loop: a comprehension would be one more
        # frame in the stack trace the SDK records for each of the service's resources)
        services[name] = declare_service(stack, svc, config, shared, boundaries.get(name))
    declare_rotation(stack, services, shared, boundaries)
    declare_certificates(stack, services, shared)
    declare_dynamic_credentials(stack, services, shared)

    for name, s in services.items():
        if s.plan.external_secret:
            ServiceExternalSecret(
                f"{name}-external-secret",
                ServiceExternalSecretArgs(s.plan, s.config.namespace, s.stores,
                                          stack.platform.external_secrets.refresh_interval),
                opts=shared.opts(),
            )
    # each stack exports its own services only: adding one never rewrites another stack
    pulumi.export("services", {name: service_outputs(s) for name, s in services.items()})


def service_boundaries(stack: StackModel, topology: Topology) -> dict[str, str]:
    """Each service -> the permissions boundary its IAM roles carry: its shard deployer's
    (docs/fleet.md, Per-shard deploy rights), in a split environment (the plan of it as one
    stack too, so that the split moves the roles unchanged); none in an unsplit one."""
    if not topology.sharded:
        return {}
    account = stack.platform.aws.account_id
    return {name: refs.iam_policy_arn(account, ownership.deploy_boundary_name(placed.name))
            for name in stack.services if (placed := topology.stack_of(name)) is not None}


def declare_deploy_rights(stack: StackModel, topology: Topology,
                          key_arns: list[pulumi.Output[str]], auth_path: pulumi.Output[str]
                          ) -> None:
    """Per shard of a split environment, its deployer's IAM role, boundary, Vault policy and
    Vault logins."""
    platform, env = stack.platform, stack.environment
    if not topology.sharded or platform.shards is None:
        return
    mounts = VaultMounts(
        kv=stack.vault_mount, auth=stack.kubernetes_auth_path,
        pki=ownership.pki_mount(env, platform.pki.mount) if platform.pki else None,
        database=ownership.database_mount(env, platform.database.mount)
        if platform.database else None)
    for shard, services in topology.shards().items():
        placed = ownership.shard_stack_name(env, shard)
        scope = ShardScope(stack=placed, environment=env, services=services,
                           account=platform.aws.account_id,
                           regions=(platform.aws.region, *platform.aws.replica_regions),
                           rotation_subnets=tuple(platform.rotation.subnet_ids),
                           rotation_security_groups=tuple(platform.rotation.security_group_ids))
        ShardDeployRights(f"deploy-rights-{placed}", ShardDeployRightsArgs(
            scope=scope, mounts=mounts,
            others=tuple(sorted(set(topology.assignment) - set(services))),
            key_arns=key_arns, github_repository=platform.shards.github_repository,
            eks_oidc_issuer=platform.aws.eks_oidc_issuer,
            operator_namespace=platform.shards.operator_namespace,
            vault_jwt_path=platform.shards.vault_jwt_path, auth_backend=auth_path))


def declare_platform(stack: StackModel, config: pulumi.Config,
                     providers: dict[str, dict[str, str]], topology: Topology) -> PlatformRefs:
    """What the environment's services share, written once (docs/fleet.md): Vault's KV mount,
    audit and Kubernetes auth, the KMS key, the CA, the database engine and each shard's
    deploy rights. Exports what the shard stacks read through their StackReference."""
    platform = stack.platform
    env = stack.environment
    reviewer_key = platform.vault.token_reviewer_jwt_config_key
    vault_env = VaultEnvironment(
        f"vault-{env}",
        VaultEnvironmentArgs(env, stack.vault_mount, stack.kubernetes_auth_path, platform.vault,
                             config.require_secret(reviewer_key) if reviewer_key else None),
    )
    aws_env = AwsSecretsEnvironment(f"aws-{env}", AwsSecretsEnvironmentArgs(env, platform.aws))
    if platform.backup is not None:
        BackupEnvironment(f"backup-{env}", BackupEnvironmentArgs(
            environment=env, part_of=platform.part_of, settings=platform.backup,
            aws=platform.aws, vault_address=platform.vault.address,
            kubernetes_auth_backend=vault_env.auth_path,
            kubernetes_auth_path=stack.kubernetes_auth_path))
    pki = PkiEnvironment(f"pki-{env}", PkiEnvironmentArgs(platform, platform.pki)) \
        if platform.pki is not None else None
    engine = None
    if platform.database is not None:
        engine = DatabaseEngine(f"database-{env}", DatabaseEngineArgs(
            environment=env,
            settings=platform.database,
            root_passwords={name: config.require_secret(conn.password_config_key)
                            for name, conn in platform.database.connections.items()},
            after=vault_env.before_secrets,
        ))
    kms_key_arn = aws_env.key.arn if aws_env.key else None
    declare_deploy_rights(stack, topology, [aws_env.key.arn, *(
        k.arn for k in aws_env.replica_keys.values())] if aws_env.key else [],
        vault_env.auth_path)
    pulumi.export("environment", env)
    pulumi.export("vault_mount", vault_env.mount_path)
    pulumi.export("kubernetes_auth_path", vault_env.auth_path)
    if pki is not None:
        pulumi.export("pki", {"mount": pki.mount_path, "csr": pki.csr})
    if kms_key_arn is not None:
        pulumi.export("kms_key_arn", kms_key_arn)
    replica_key_arns = {region: key.arn for region, key in aws_env.replica_keys.items()}
    if replica_key_arns:
        pulumi.export("replica_key_arns", replica_key_arns)
    if engine is not None:
        pulumi.export("database", {"mount": engine.mount_path,
                                   "connections": engine.connection_names})
    pulumi.export("providers", providers)
    return PlatformRefs(
        vault_mount=vault_env.mount_path, auth_path=vault_env.auth_path, kms_key_arn=kms_key_arn,
        replica_key_arns=replica_key_arns,
        pki_mount=pki.mount_path if pki else None,
        database_mount=engine.mount_path if engine else None,
        connections=engine.connection_names if engine else {},
        before_secrets=vault_env.before_secrets,
        pki_ready=pki.issuance_settings if pki else ())


def declare_service(stack: StackModel, svc: ServiceModel, config: pulumi.Config,
                    shared: PlatformRefs, boundary: str | None = None) -> DeclaredService:
    name = svc.name
    versions = svc.versions
    aws_settings = stack.platform.aws
    secure = {
        key: config.require_secret(key)
        for spec in svc.spec.secrets.values()
        # validate refuses a secure secret without config_key
        if spec.source == "secure" and (key := spec.config_key) is not None
    }
    opts = shared.opts()
    values = SecretValues(f"{name}-secret-values", SecretValuesArgs(svc, secure, versions),
                          opts=opts).values
    cfg = ServiceConfig(f"{name}-config", ServiceConfigArgs(svc), opts=opts)
    configmaps = [cm.name for cm in (svc.config, svc.flags, *svc.tenants.values()) if cm]
    vault_svc = VaultService(f"{name}-vault", VaultServiceArgs(svc, shared, values, versions),
                             opts=opts)
    aws_svc = AwsServiceSecrets(
        f"{name}-aws", AwsServiceSecretsArgs(svc, aws_settings, shared, values, versions), opts=opts
    )
    identity = None
    if svc.aws_identity:
        identity = SecretReaderRole(f"{name}-identity", SecretReaderRoleArgs(
            svc, aws_settings, shared.kms_key_arn, boundary), opts=opts)
    # the role's ARN as IAM builds it from its fixed name: known in preview, for the pack
    role_arn = refs.iam_role_arn(aws_settings.account_id,
                                 ownership.iam_role_name(svc.environment, name))
    access = ServiceAccess(f"{name}-access", ServiceAccessArgs(
        svc, cfg.namespace, configmaps,
        annotations={IRSA_ROLE_ANNOTATION: role_arn} if identity else {}), opts=opts)
    stores = ServiceSecretStores(f"{name}-secret-stores", ServiceSecretStoresArgs(
        svc, cfg.namespace, access.service_account_name, stack.platform, stack.vault_mount,
        stack.kubernetes_auth_path, vault_svc.role_name), opts=opts)
    return DeclaredService(plan=svc, config=cfg, access=access, vault=vault_svc, aws=aws_svc,
                           identity=identity, stores=stores)


def declare_rotation(stack: StackModel, services: dict[str, DeclaredService],
                     shared: PlatformRefs, boundaries: dict[str, str]) -> None:
    """A rotation Lambda per service whose Secrets Manager secrets ask for it: each function's
    role reaches that service's secrets only (docs/isolation.md)."""
    platform = stack.platform
    schedule = platform.rotation
    code: pulumi.AssetArchive | None = None  # one archive for every function, built once
    for name, s in services.items():
        secrets = s.plan.spec.secrets
        rotated = [
            RotatedSecret(
                name=rotation_name,
                secret_arn=s.aws.secrets[key].arn,
                strategy=rotation.strategy,
                kms_key_arn=shared.kms_key_arn,
                master_secret_arn=rotation.master_secret_arn,
            )
            for key, rotation_name in s.plan.rotated.items()
            # (every one: the builder's `rotated` holds the secrets with a rotation)
            if (rotation := secrets[key].rotation) is not None
        ]
        if not rotated:
            continue
        if code is None:
            code = code_archive()
        SecretRotator(
            ownership.rotation_component_name(stack.environment, name),
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
                permissions_boundary=boundaries.get(name),
                code=code,
            ),
            opts=shared.opts(),
        )


def declare_certificates(stack: StackModel, services: dict[str, DeclaredService],
                         shared: PlatformRefs) -> None:
    """An Issuer and Certificate per service with `tls`, signed by the environment's CA."""
    settings, mount = stack.platform.pki, shared.pki_mount
    if settings is None or mount is None:  # (a shard without TLS reads no CA)
        return
    for name, s in services.items():
        if s.plan.tls is None:
            continue
        services[name] = s._replace(tls=ServiceCertificate(f"{name}-tls", ServiceCertificateArgs(
            service=s.plan,
            tls=s.plan.tls,
            pki_mount=mount,
            pki_ready=shared.pki_ready,
            namespace=s.config.namespace,
            service_account=s.access.service_account_name,
            vault_address=stack.platform.vault.address,
            kubernetes_auth_backend=shared.auth_path,
            kubernetes_auth_path=stack.kubernetes_auth_path,
            leaf_max_ttl=seconds(settings.leaf_max_ttl),
            cert_manager_namespace=settings.cert_manager_namespace,
            cert_manager_service_account=settings.cert_manager_service_account,
        ), opts=shared.opts()))


def declare_dynamic_credentials(stack: StackModel, services: dict[str, DeclaredService],
                                shared: PlatformRefs) -> None:
    """Per service its database roles and the ESO objects for its logins."""
    mount = shared.database_mount
    if stack.platform.database is None or mount is None:  # (a shard without logins reads none)
        return
    for name, s in services.items():
        if s.plan.dynamic:
            services[name] = s._replace(dynamic=ServiceDatabaseCredentials(
                f"{name}-dynamic", ServiceDatabaseCredentialsArgs(
                    service=s.plan, plans=s.plan.dynamic, mount=mount,
                    connections=shared.connections,
                    namespace=s.config.namespace, vault_address=stack.platform.vault.address,
                    kubernetes_auth_backend=shared.auth_path,
                    kubernetes_auth_path=stack.kubernetes_auth_path,
                ), opts=shared.opts()))


def service_outputs(s: DeclaredService) -> dict:
    """One service's part of the outputs contract (schemas/outputs.schema.json). The names the
    program gives its resources are exported as the model has them (the resources are named
    with exactly these; tests/program/test_program.py checks each against the plan): a plain
    value is exported as it is, where an Output costs one more await per leaf. What the cloud
    computes (ARNs) comes from the resources."""
    svc = s.plan
    return {
        "namespace": svc.namespace,
        "service_account": svc.service_account,
        "configmap": svc.config.name,
        "config_hash": svc.config.hash,
        "secret_name": svc.secret_name,
        "vault_path": svc.vault_data_path,
        "vault_policy": svc.vault_policy,
        "vault_role": ownership.vault_role(svc.name),
        "secrets_manager_arns": s.aws.arns,
        "secret_stores": {
            "vault": ownership.secret_store_name(svc.name, "vault") if s.stores.vault_store else None,
            "aws": ownership.secret_store_name(svc.name, "aws") if s.stores.aws_store else None},
        "iam_role_arn": s.identity.role_arn if s.identity else None,
        "flags_configmap": svc.flags.name if svc.flags else None,
        "tls": {"secret_name": svc.tls.secret_name, "issuer": svc.tls.issuer_name}
        if s.tls and svc.tls else None,
        "dynamic_secret_names": [p.secret_name for p in svc.dynamic] if s.dynamic else [],
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
