"""Per-shard deploy rights (docs/fleet.md): the identities a shard stack deploys with, planned
in the environment's platform stack, one set per shard.

- an IAM role `configplane-deploy-<stack>` (ownership.deploy_role_name) that the shard's
  GitHub Actions jobs (in its own GitHub environment: ownership.github_deploy_environment)
  and its Pulumi Kubernetes Operator workspace account (IRSA) assume; its inline policy
  reaches only the names ownership.py derives for the shard's services, and it may create or
  change a role only with the shard's permissions boundary attached;
- that boundary `configplane-boundary-<stack>`, a managed policy capping what every role the
  deployer creates can ever do, whatever inline policy the deployer gives it;
- a Vault policy `configplane-deploy-<stack>` writing only the shard's services' Vault
  names: their policies, Kubernetes auth roles, KV secrets, PKI roles and database roles;
- the logins that get that policy, both named `configplane_deploy_<stack>`
  (ownership.deploy_login_role): a JWT role on the platform's GitHub JWT mount bound to the
  shard's GitHub environment, and a Kubernetes auth role bound to its operator workspace
  account. The deploy policy writes neither (vault_policy_paths names only services' roles).

What neither can restrict (a deployer that may write a Vault policy may write one granting
anything) is said in docs/fleet.md. The documents are plain functions, so tests read them
without the engine.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_vault as vault

from components.rotation import ENI_ACTIONS, SECRET_ACTIONS
from configplane import ownership, refs
from configplane.refs import VAULT_AUDIENCE

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"

SECRET_MANAGE_ACTIONS = sorted({
    "secretsmanager:CancelRotateSecret", "secretsmanager:CreateSecret",
    "secretsmanager:DeleteResourcePolicy", "secretsmanager:DeleteSecret",
    "secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy",
    "secretsmanager:GetSecretValue", "secretsmanager:ListSecretVersionIds",
    "secretsmanager:PutResourcePolicy", "secretsmanager:PutSecretValue",
    "secretsmanager:RemoveRegionsFromReplication", "secretsmanager:ReplicateSecretToRegions",
    "secretsmanager:RestoreSecret", "secretsmanager:RotateSecret",
    "secretsmanager:TagResource", "secretsmanager:UntagResource",
    "secretsmanager:UpdateSecret", "secretsmanager:UpdateSecretVersionStage"})
ROLE_ACTIONS = sorted({
    "iam:DeleteRole", "iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies",
    "iam:ListInstanceProfilesForRole", "iam:ListRolePolicies", "iam:ListRoleTags",
    "iam:TagRole", "iam:UntagRole", "iam:UpdateAssumeRolePolicy", "iam:UpdateRole",
    "iam:UpdateRoleDescription"})
# Every action that gives a role permissions: allowed only while the boundary is attached
# (AWS's condition key iam:PermissionsBoundary; DeleteRolePermissionsBoundary is never granted).
BOUNDED_ROLE_ACTIONS = sorted({
    "iam:AttachRolePolicy", "iam:CreateRole", "iam:DeleteRolePolicy", "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy"})
FUNCTION_ACTIONS = sorted({
    "lambda:AddPermission", "lambda:CreateFunction", "lambda:DeleteFunction",
    "lambda:GetFunction", "lambda:GetFunctionCodeSigningConfig",
    "lambda:GetFunctionConfiguration", "lambda:GetPolicy", "lambda:ListTags",
    "lambda:ListVersionsByFunction", "lambda:RemovePermission", "lambda:TagResource",
    "lambda:UntagResource", "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration"})
# What Lambda checks with the caller's own rights when a function gets a VPC config (AWS Lambda
# Developer Guide, "Giving Lambda functions access to resources in an Amazon VPC", user
# permissions); they take no resource ("*")
VPC_DESCRIBE_ACTIONS = ["ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs"]
# the calls that carry a function's VPC config (condition keys lambda:SubnetIds, ...)
VPC_CONFIG_ACTIONS = ["lambda:CreateFunction", "lambda:UpdateFunctionConfiguration"]
LOG_GROUP_ACTIONS = sorted({
    "logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:DeleteRetentionPolicy",
    "logs:ListTagsForResource", "logs:PutRetentionPolicy", "logs:TagResource",
    "logs:UntagResource"})
KEY_ACTIONS = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
VAULT_WRITE = ["create", "read", "update", "delete"]
# A deployer's Vault token: long enough for one shard's `pulumi up`, never a standing credential
# (the pack's maxTokenTtlSeconds caps it too).
LOGIN_TOKEN_TTL = 1800
LOGIN_TOKEN_MAX_TTL = 3600


def github_audience(repository: str) -> str:
    """The audience the deploy jobs request GitHub's OIDC token for when they log in to Vault
    (GitHub's own default: the repository owner's URL; `stack-access` asks for it)."""
    return f"https://github.com/{repository.split('/', 1)[0]}"


def github_subject(repository: str, stack: str) -> str:
    """The `sub` of a deploy job of `stack`: its repository and its own GitHub environment."""
    return f"repo:{repository}:environment:{ownership.github_deploy_environment(stack)}"


@dataclass(frozen=True)
class ShardScope:
    """What one shard's deployer may reach: the names of its services in its environment."""

    stack: str  # the shard's stack `<environment>-<shard>`
    environment: str
    services: tuple[str, ...]
    account: str
    regions: tuple[str, ...]  # the environment's region first, then its replica regions
    # the environment's rotation network (platform.rotation): none, the functions run outside
    # any VPC and the deployer gets no EC2 right
    rotation_subnets: tuple[str, ...] = ()
    rotation_security_groups: tuple[str, ...] = ()

    def secret_arns(self) -> list[str]:
        return [f"arn:aws:secretsmanager:{region}:{self.account}:secret:"
                f"{ownership.secret_prefix(self.environment, s)}*"
                for s in self.services for region in self.regions]

    def role_arns(self) -> list[str]:
        """The services' reader roles and rotation roles (Pulumi's autonamed, by glob)."""
        return [refs.iam_role_arn(self.account, name) for s in self.services
                for name in (ownership.iam_role_name(self.environment, s),
                             ownership.rotation_role_pattern(self.environment, s))]

    def rotation_role_arns(self) -> list[str]:
        return [refs.iam_role_arn(self.account, ownership.rotation_role_pattern(
            self.environment, s)) for s in self.services]

    def function_arns(self) -> list[str]:
        return [f"arn:aws:lambda:{self.regions[0]}:{self.account}:function:"
                f"{ownership.rotation_function_name(self.environment, s)}"
                for s in self.services]

    def log_group_arns(self, streams: bool) -> list[str]:
        return [f"arn:aws:logs:{self.regions[0]}:{self.account}:log-group:"
                f"{ownership.rotation_log_group(self.environment, s)}" + suffix
                for s in self.services for suffix in ((":*",) if streams else ("", ":*"))]

    @property
    def boundary_arn(self) -> str:
        return refs.iam_policy_arn(self.account, ownership.deploy_boundary_name(self.stack))

    def via_secrets_manager(self) -> list[str]:
        return [f"secretsmanager.{region}.amazonaws.com" for region in self.regions]


def deployer_policy(scope: ShardScope, key_arns: Sequence[str]) -> dict[str, Any]:
    """The deploy role's inline policy: the shard's services' AWS names, nothing else."""
    statements: list[dict[str, Any]] = [
        {"Sid": "ManageShardSecrets", "Effect": "Allow", "Action": SECRET_MANAGE_ACTIONS,
         "Resource": scope.secret_arns()},
        {"Sid": "ManageShardRoles", "Effect": "Allow", "Action": ROLE_ACTIONS,
         "Resource": scope.role_arns()},
        {"Sid": "GrantOnlyWithinTheBoundary", "Effect": "Allow", "Action": BOUNDED_ROLE_ACTIONS,
         "Resource": scope.role_arns(),
         "Condition": {"ArnEquals": {"iam:PermissionsBoundary": scope.boundary_arn}}},
        {"Sid": "PassRotationRoles", "Effect": "Allow", "Action": "iam:PassRole",
         "Resource": scope.rotation_role_arns(),
         "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}},
        {"Sid": "ManageRotationFunctions", "Effect": "Allow", "Action": FUNCTION_ACTIONS,
         "Resource": scope.function_arns()},
        {"Sid": "ManageRotationLogs", "Effect": "Allow", "Action": LOG_GROUP_ACTIONS,
         "Resource": scope.log_group_arns(streams=False)},
    ]
    if scope.rotation_subnets:
        statements += rotation_vpc_statements(scope)
    if key_arns:  # a customer-managed key: used only by Secrets Manager on the deployer's behalf
        statements.append({
            "Sid": "UseEnvironmentKeyThroughSecretsManager", "Effect": "Allow",
            "Action": KEY_ACTIONS, "Resource": sorted(key_arns),
            "Condition": {"StringEquals": {"kms:ViaService": scope.via_secrets_manager()}}})
    return {"Version": "2012-10-17", "Statement": statements}


def rotation_vpc_statements(scope: ShardScope) -> list[dict[str, Any]]:
    """When the environment's rotation functions run in a VPC: the EC2 reads Lambda makes
    with the deployer's rights, and no function's VPC config naming a subnet or a security
    group other than the environment's (one Deny per key: a condition block ANDs its keys)."""
    statements: list[dict[str, Any]] = [
        {"Sid": "DescribeRotationNetwork", "Effect": "Allow", "Action": VPC_DESCRIBE_ACTIONS,
         "Resource": "*"}]
    for sid, key, allowed in (("OnlyTheEnvironmentsSubnets", "lambda:SubnetIds",
                               scope.rotation_subnets),
                              ("OnlyTheEnvironmentsSecurityGroups", "lambda:SecurityGroupIds",
                               scope.rotation_security_groups)):
        if not allowed:  # validation refuses subnets without security groups; IAM, an
            continue     # empty condition value list
        statements.append({
            "Sid": sid, "Effect": "Deny", "Action": VPC_CONFIG_ACTIONS,
            "Resource": scope.function_arns(),
            "Condition": {"ForAnyValue:StringNotEquals": {key: sorted(allowed)}}})
    return statements


def boundary_policy(scope: ShardScope) -> dict[str, Any]:
    """The most any role the shard's deployer creates can do: read and rotate its own
    services' secrets, read secrets outside configplane's layout (references the platform
    validated), decrypt through Secrets Manager, write its rotation logs and network
    interfaces. Another shard's (or the platform's) configplane secret is denied by name."""
    everywhere = [f"arn:aws:secretsmanager:{region}:{scope.account}:secret:*"
                  for region in scope.regions]
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadAndRotateSecrets", "Effect": "Allow", "Action": SECRET_ACTIONS,
         "Resource": everywhere},
        {"Sid": "NoOtherConfigplaneSecret", "Effect": "Deny", "Action": SECRET_ACTIONS,
         "NotResource": scope.secret_arns(),
         # the secret the request names (IAM compares it as an ARN, whether the caller named
         # the secret by name or by ARN); a secret outside configplane's layout is not denied
         "Condition": {"ArnLike": {"secretsmanager:SecretId": [
             f"arn:aws:secretsmanager:{region}:{scope.account}:secret:configplane/*"
             for region in scope.regions]}}},
        {"Sid": "GeneratePasswords", "Effect": "Allow",
         "Action": "secretsmanager:GetRandomPassword", "Resource": "*"},
        {"Sid": "DecryptThroughSecretsManager", "Effect": "Allow",
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
         "Resource": [f"arn:aws:kms:{region}:{scope.account}:key/*" for region in scope.regions],
         "Condition": {"StringEquals": {"kms:ViaService": scope.via_secrets_manager()}}},
        {"Sid": "WriteOwnRotationLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": scope.log_group_arns(streams=True)},
        {"Sid": "ManageVpcInterfaces", "Effect": "Allow", "Action": ENI_ACTIONS,
         "Resource": "*"},
    ]}


def trust_policy(scope: ShardScope, *, github_repository: str | None,
                 eks_oidc_issuer: str | None, operator_namespace: str) -> dict[str, Any]:
    """Who assumes the deploy role: the repository's GitHub Actions jobs in the shard's own
    GitHub environment (`configplane github-environments` creates it, docs/fleet.md), and
    the shard's own operator workspace account (IRSA)."""
    statements = []
    if github_repository is not None:
        statements.append({
            "Sid": "GitHubActionsDeploy", "Effect": "Allow",
            "Principal": {"Federated": f"arn:aws:iam::{scope.account}:oidc-provider/"
                                       f"{GITHUB_OIDC_HOST}"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
                f"{GITHUB_OIDC_HOST}:sub": github_subject(github_repository, scope.stack)}}})
    if eks_oidc_issuer is not None:
        host = refs.oidc_provider_host(eks_oidc_issuer)
        statements.append({
            "Sid": "OperatorWorkspace", "Effect": "Allow",
            "Principal": {"Federated": refs.oidc_provider_arn(eks_oidc_issuer, scope.account)},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                f"{host}:aud": STS_AUDIENCE,
                f"{host}:sub": ownership.service_account_subject(
                    operator_namespace, ownership.stack_account(scope.stack))}}})
    return {"Version": "2012-10-17", "Statement": statements}


@dataclass(frozen=True)
class VaultMounts:
    kv: str
    auth: str
    pki: str | None = None
    database: str | None = None


def vault_policy_paths(scope: ShardScope, mounts: VaultMounts,
                       others: Sequence[str]) -> dict[str, list[str]]:
    """Vault path -> capabilities for the shard's deployer. Exact names, but for database
    roles (`<service>-<key>`, keys the platform stack does not read): a prefix `<service>-*`,
    with a deny on each service of another shard whose name extends it (`<service>-x` owns
    `<service>-x-*`); in one policy Vault applies the most specific matching path."""
    env = scope.environment
    paths: dict[str, list[str]] = {
        # the provider's own child token (its default): a subset of these policies
        "auth/token/create": ["update"]}
    for s in scope.services:
        for name in (ownership.read_policy_name(env, s), ownership.pki_policy_name(env, s),
                     ownership.database_policy_name(env, s)):
            paths[f"sys/policies/acl/{name}"] = VAULT_WRITE
            paths[f"sys/policy/{name}"] = VAULT_WRITE  # the older endpoint, same policies
        for role in (ownership.vault_role(s), ownership.pki_auth_role(s),
                     ownership.database_auth_role(s)):
            paths[f"auth/{mounts.auth}/role/{role}"] = VAULT_WRITE
        for kind in ("data", "metadata"):
            paths[f"{mounts.kv}/{kind}/{ownership.vault_path(s)}"] = VAULT_WRITE
        if mounts.pki is not None:
            paths[f"{mounts.pki}/roles/{ownership.pki_role(s)}"] = VAULT_WRITE
        if mounts.database is not None:
            paths[f"{mounts.database}/roles/{ownership.database_role_name(s, '*')}"] = VAULT_WRITE
    if mounts.database is not None:
        for other in extending(scope.services, others):
            paths[f"{mounts.database}/roles/{ownership.database_role_name(other, '*')}"] = \
                ["deny"]
    return paths


def extending(own: Sequence[str], others: Sequence[str]) -> list[str]:
    """The names of `others` that extend one of `own` by `-` (`svc-x` extends `svc`), in
    the order of `others`: found by prefix in the sorted names, not by testing each of the
    environment's services against each shard (40 shards of 2,000 services: 230,000 tests)."""
    ordered = sorted(others)
    found: set[str] = set()
    for name in own:
        prefix = f"{name}-"
        at = bisect.bisect_left(ordered, prefix)
        while at < len(ordered) and ordered[at].startswith(prefix):
            found.add(ordered[at])
            at += 1
    return [other for other in others if other in found]


def vault_policy_hcl(paths: Mapping[str, Sequence[str]], stack: str) -> str:
    body = "\n\n".join(f'path "{path}" {{\n  capabilities = {json.dumps(list(caps))}\n}}'
                       for path, caps in paths.items())
    return f"# configplane: what the deployer of {stack} may write (docs/fleet.md)\n{body}\n"


@dataclass(frozen=True)
class ShardDeployRightsArgs:
    scope: ShardScope
    mounts: VaultMounts
    others: tuple[str, ...]  # the environment's services in other shards
    key_arns: Sequence[pulumi.Input[str]] = ()  # the environment's key and its replicas
    github_repository: str | None = None
    eks_oidc_issuer: str | None = None
    operator_namespace: str = "pulumi-operator"
    vault_jwt_path: str = "jwt"  # the platform's JWT auth mount for GitHub's OIDC tokens
    # the Kubernetes auth mount as the platform stack declares it (mounts.auth's value): the
    # operator's login role waits for the mount (`pulumi up` orders by these dependencies)
    auth_backend: pulumi.Input[str] | None = None


def github_login(stack: str, repository: str) -> dict[str, Any]:
    """The JWT auth role a shard's GitHub deploy jobs log in to Vault with (its inputs but
    the mount and the policy): only tokens of `repository` in the shard's GitHub environment."""
    return {
        "role_name": ownership.deploy_login_role(stack), "role_type": "jwt",
        "bound_audiences": [github_audience(repository)],
        "bound_subject": github_subject(repository, stack),
        "bound_claims": {"repository": repository,
                         "environment": ownership.github_deploy_environment(stack)},
        "bound_claims_type": "string", "user_claim": "sub",
        "token_ttl": LOGIN_TOKEN_TTL, "token_max_ttl": LOGIN_TOKEN_MAX_TTL}


def operator_login(stack: str, namespace: str) -> dict[str, Any]:
    """The Kubernetes auth role a shard's operator workspace logs in to Vault with: its own
    account `pulumi-<stack>` in the operator's namespace, a token for Vault's audience."""
    return {
        "role_name": ownership.deploy_login_role(stack),
        "bound_service_account_names": [ownership.stack_account(stack)],
        "bound_service_account_namespaces": [namespace], "audience": VAULT_AUDIENCE,
        "token_ttl": LOGIN_TOKEN_TTL, "token_max_ttl": LOGIN_TOKEN_MAX_TTL}


class ShardDeployRights(pulumi.ComponentResource):
    """One shard's deploy role, its boundary, its Vault policy and its Vault logins (module
    docstring). Each login follows its trust: the GitHub one with
    `platform.shards.github_repository`, the operator's with `aws.eks_oidc_issuer` (the
    operator runs in the environment's cluster, whose tokens its Kubernetes auth mount and
    IRSA both verify). Without either no role and no login is planned: the boundary and the
    Vault policy still are."""

    def __init__(self, name: str, args: ShardDeployRightsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("configplane:deploy:ShardDeployRights", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        scope = args.scope
        aws.iam.Policy(f"{name}-boundary", name=ownership.deploy_boundary_name(scope.stack),
                       description=f"configplane: the most a role deployed by {scope.stack} "
                                   "may do", policy=json.dumps(boundary_policy(scope)),
                       opts=child)
        trust = trust_policy(scope, github_repository=args.github_repository,
                             eks_oidc_issuer=args.eks_oidc_issuer,
                             operator_namespace=args.operator_namespace)
        if trust["Statement"]:
            role = aws.iam.Role(
                f"{name}-role", name=ownership.deploy_role_name(scope.stack),
                description=f"configplane: deploys the shard stack {scope.stack}",
                assume_role_policy=json.dumps(trust), max_session_duration=3600, opts=child)
            aws.iam.RolePolicy(
                f"{name}-policy", name="deploy-own-shard", role=role.id,
                policy=pulumi.Output.all(*args.key_arns).apply(
                    lambda keys: json.dumps(deployer_policy(scope, keys))), opts=child)
        policy = vault.Policy(
            f"{name}-vault-policy", name=ownership.deploy_policy_name(scope.stack),
            policy=vault_policy_hcl(vault_policy_paths(scope, args.mounts, args.others),
                                    scope.stack), opts=child)
        if args.github_repository is not None:
            vault.jwt.AuthBackendRole(
                f"{name}-vault-login-github", backend=args.vault_jwt_path,
                token_policies=[policy.name], opts=child,
                **github_login(scope.stack, args.github_repository))
        if args.eks_oidc_issuer is not None:
            vault.kubernetes.AuthBackendRole(
                f"{name}-vault-login-operator",
                backend=args.auth_backend if args.auth_backend is not None else args.mounts.auth,
                token_policies=[policy.name], opts=child,
                **operator_login(scope.stack, args.operator_namespace))
        self.register_outputs({})
