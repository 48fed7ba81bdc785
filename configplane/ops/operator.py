"""The Pulumi Kubernetes Operator's objects for an environment's stacks (docs/fleet.md).

Per stack (configplane.model.topology: the platform stack, then each shard), in the operator's
namespace:
- a `ServiceAccount` the stack's workspace runs as, annotated with the stack's deploy role (IRSA:
  the role's permissions, not the cluster's, decide what it may change in AWS and Vault): a
  shard's is the role its platform stack plans (components/deploy_rights.py), which trusts
  `pulumi-<stack>` in `platform.shards.operator_namespace` only, so the objects go to that
  namespace; the platform stack's is the environment's bootstrap role, which no stack plans
  (it creates every deploy role), so its ARN is given (`--platform-role-arn`);
- its Kubernetes rights, least privilege: `system:auth-delegator` (the operator v2 requires it
  of every workspace account: the workspace checks the operator's token with a TokenReview);
  a shard's account may create namespaces (RBAC cannot name what is created) and manage only its
  own services' namespaces by name, and inside each of them only the kinds configplane declares
  (`MANAGED`); the platform stack's account likewise manages the Vault snapshot's namespace, when
  the environment has backups, and there only the kinds the backup declares (`BACKUP_MANAGED`);
- the `Stack` (`pulumi.com/v1`): the program from git (repository, branch, directory), the stack
  `<organization>/<stack>`, the secrets provider, the Pulumi access token from a Secret, a refresh
  before every update and a resync every `resync_seconds` even when the commit did not move (the
  drift schedule: the operator refreshes and corrects drift), and for a shard its platform stack
  as a prerequisite (a shard updates only after its platform stack succeeded recently);
- for a shard whose platform stack plans its Vault login (a Kubernetes auth role
  `configplane_deploy_<stack>` bound to its account, audience `vault`:
  components/deploy_rights.py, operator_login), the workspace's way in: a Vault Agent sidecar
  that logs in with a projected token of the account for that audience, and the stack's
  `vault:authLoginTokenFile` config naming the Vault token the agent keeps (VaultLogin).

Nothing is applied: the command prints the objects for review (`kubectl apply -f`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from configplane import ownership, refs
from configplane.inputs import origin_near, read_stack_files, resolve_inputs
from configplane.model import (
    FleetStack,
    StackModel,
    environment_stacks,
    printable,
    service_stacks,
)
from configplane.refs import VAULT_AUDIENCE
from configplane.validation import load_or_issues

DEFAULT_NAMESPACE = "pulumi-operator"  # ShardSettings.operator_namespace's default
NAMESPACE_KEY = ("platform", "shards", "operator_namespace")
ISSUER_KEY = ("platform", "aws", "eks_oidc_issuer")

STACK_API = "pulumi.com/v1"
# What configplane declares in a service's namespace (apiGroup, resource); a test checks this
# against every namespaced kind in the sample plans, so a new kind cannot be left out.
MANAGED: tuple[tuple[str, str], ...] = (
    ("", "configmaps"), ("", "serviceaccounts"),
    ("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "rolebindings"),
    ("external-secrets.io", "externalsecrets"), ("external-secrets.io", "secretstores"),
    ("generators.external-secrets.io", "vaultdynamicsecrets"),
    ("cert-manager.io", "issuers"), ("cert-manager.io", "certificates"),
)
# What the platform stack declares in the Vault snapshot's namespace (platform.backup, docs/dr.md)
BACKUP_MANAGED: tuple[tuple[str, str], ...] = (("", "serviceaccounts"), ("batch", "cronjobs"))
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]
LABELS = {"app.kubernetes.io/managed-by": "configplane",
          "app.kubernetes.io/part-of": "configplane-fleet"}


# The shard's Vault login in the workspace pod. The pinned Vault provider (pulumi-vault 7.14, the
# Terraform provider's schema) has no Kubernetes login (`authLoginKubernetes` does not exist:
# hashicorp/terraform-provider-vault#1656) and reads no JWT from a file, and the operator sets a
# stack's config once per workspace pod (while a projected token rotates): so a Vault Agent
# sidecar logs in with the projected token (re-read at every login, kubelet keeps it fresh) and
# keeps a Vault token in a memory volume, which the provider reads at every run
# (`vault:authLoginTokenFile`). The Pulumi program never sees the account's token.
VAULT_AGENT_IMAGE = "hashicorp/vault:1.19.0"
PROJECTED_TOKEN_DIR = "/var/run/secrets/configplane/vault-login"  # the agent's only
VAULT_TOKEN_DIR = "/var/run/configplane/vault"  # shared: the agent writes, the program reads
AGENT_CONFIG_DIR = "/etc/configplane/vault-agent"
# Kubernetes' minimum: the token is only ever sent to Vault's login, which checks it then
TOKEN_EXPIRATION_SECONDS = 600
WORKSPACE_UID = 1000  # the operator's `restricted` workspace profile runs the pod as 1000:1000


@dataclass(frozen=True)
class VaultLogin:
    """How a shard's workspace logs in: the planned Kubernetes auth role, its mount, Vault."""

    role: str
    mount: str
    address: str
    audience: str = VAULT_AUDIENCE
    image: str = VAULT_AGENT_IMAGE

    @property
    def token_file(self) -> str:
        return f"{PROJECTED_TOKEN_DIR}/token"

    @property
    def vault_token_file(self) -> str:
        return f"{VAULT_TOKEN_DIR}/token"

    def agent_config(self) -> str:
        """Vault Agent's configuration (HCL; JSON strings are valid HCL strings)."""
        q = json.dumps
        return "\n".join([
            "# configplane: the shard's deployer logs in to Vault (docs/fleet.md)",
            f"vault {{\n  address = {q(self.address)}\n}}",
            "auto_auth {",
            '  method "kubernetes" {',
            f"    mount_path = {q('auth/' + self.mount)}",
            f"    config = {{\n      role = {q(self.role)}\n"
            f"      token_path = {q(self.token_file)}\n    }}",
            "  }",
            '  sink "file" {',
            f"    config = {{\n      path = {q(self.vault_token_file)}\n      mode = 0400\n    }}",
            "  }",
            "}", ""])

    def provider_config(self) -> dict[str, Any]:
        return {"vault:authLoginTokenFile": {"filename": self.vault_token_file}}

    def workspace_template(self, account: str) -> dict[str, Any]:
        """The strategic merge patch on the workspace: the projected token (to the agent only),
        the agent as a native sidecar (an init container that keeps running; the program starts
        once its startup probe sees a Vault token), and the token's memory volume."""
        secure = {"runAsNonRoot": True, "runAsUser": WORKSPACE_UID, "runAsGroup": WORKSPACE_UID,
                  "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                  "capabilities": {"drop": ["ALL"]}}
        return {"spec": {"podTemplate": {"spec": {
            "volumes": [
                {"name": "vault-login-token", "projected": {"sources": [{"serviceAccountToken": {
                    "audience": self.audience, "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                    "path": "token"}}]}},
                {"name": "vault-agent-config", "configMap": {"name": agent_config_name(account)}},
                {"name": "vault-token", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}],
            "initContainers": [{
                "name": "vault-agent", "image": self.image, "restartPolicy": "Always",
                "command": ["vault", "agent", f"-config={AGENT_CONFIG_DIR}/agent.hcl"],
                "securityContext": secure,
                "volumeMounts": [
                    {"name": "vault-login-token", "mountPath": PROJECTED_TOKEN_DIR,
                     "readOnly": True},
                    {"name": "vault-agent-config", "mountPath": AGENT_CONFIG_DIR,
                     "readOnly": True},
                    {"name": "vault-token", "mountPath": VAULT_TOKEN_DIR}],
                "startupProbe": {"exec": {"command": ["test", "-s", self.vault_token_file]},
                                 "periodSeconds": 2, "failureThreshold": 150}}],
            "containers": [{"name": "pulumi", "volumeMounts": [
                {"name": "vault-token", "mountPath": VAULT_TOKEN_DIR, "readOnly": True}]}],
        }}}}


def agent_config_name(account: str) -> str:
    """The ConfigMap holding a workspace's Vault Agent configuration, beside its account."""
    return f"{account}-vault-agent"


class OperatorError(Exception):
    """The objects cannot be generated (message names the file or option and the fix)."""


@dataclass(frozen=True)
class Source:
    """Where the operator finds the program and how it runs each stack."""

    repository: str
    branch: str = "refs/heads/main"
    directory: str = ""  # the project's directory in the repository ("" at the top)
    organization: str = "organization"
    # None: the environment's `platform.shards.operator_namespace`; given, it must agree
    namespace: str | None = None
    secrets_provider: str = ""
    access_token_secret: str = "pulumi-api-secret"
    # each shard's deploy role: a template ({account}, {stack}, {environment}); None: the
    # role ownership.deploy_role_name names in the platform's account
    role_arn: str | None = None
    resync_seconds: int = 3600
    # the platform stack's deployer: the environment's bootstrap role (docs/fleet.md)
    platform_role_arn: str | None = None
    vault_agent_image: str = VAULT_AGENT_IMAGE

    def role_of(self, stack: FleetStack, account: str) -> str:
        if stack.kind == "platform":
            if self.platform_role_arn is None:  # operator_objects refuses this first
                raise OperatorError("no --platform-role-arn")
            return self.platform_role_arn
        if self.role_arn is None:
            return refs.iam_role_arn(account, ownership.deploy_role_name(stack.name))
        return self.role_arn.format(account=account, stack=stack.name,
                                    environment=stack.environment)


def role_template_problem(template: str) -> str | None:
    """Why a --role-arn template cannot be filled in (an unknown or unclosed {field})."""
    try:
        template.format(account="", stack="", environment="")
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _meta(name: str, namespace: str | None, stack: FleetStack) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {
        **LABELS, "configplane.io/environment": stack.environment,
        "configplane.io/stack": stack.name}}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def stack_objects(stack: FleetStack, namespaces: Sequence[str], source: Source,
                  account: str, platform: FleetStack | None,
                  kinds: Sequence[tuple[str, str]] = MANAGED,
                  login: VaultLogin | None = None) -> list[dict[str, Any]]:
    """The objects of one stack; `namespaces`: the namespaces it manages (its services', or
    the platform's own), and in them only `kinds`; `login`: its Vault login, if one is planned."""
    sa = ownership.stack_account(stack.name)
    ns = source.namespace or DEFAULT_NAMESPACE
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
            **_meta(sa, ns, stack), "annotations": {"eks.amazonaws.com/role-arn":
                source.role_of(stack, account)}}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": _meta(f"{sa}:auth-delegator", None, stack),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "system:auth-delegator"},
         "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]},
    ]
    if namespaces:
        objects += [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": _meta(f"{sa}:namespaces", None, stack),
             "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create"]},
                       {"apiGroups": [""], "resources": ["namespaces"],
                        "resourceNames": sorted(namespaces),
                        "verbs": ["get", "update", "patch", "delete"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": _meta(f"{sa}:namespaces", None, stack),
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": f"{sa}:namespaces"},
             "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]},
        ]
        rules = [{"apiGroups": [group], "resources": [resource], "verbs": VERBS}
                 for group, resource in kinds]
        for namespace in sorted(namespaces):
            objects += [
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                 "metadata": _meta(sa, namespace, stack), "rules": rules},
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": _meta(sa, namespace, stack),
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
                 "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]},
            ]
    spec: dict[str, Any] = {
        "stack": f"{source.organization}/{stack.name}",
        "projectRepo": source.repository,
        "branch": source.branch,
        "serviceAccountName": sa,
        "secretsProvider": source.secrets_provider,
        "envRefs": {"PULUMI_ACCESS_TOKEN": {"type": "Secret", "secret": {
            "name": source.access_token_secret, "key": "accessToken"}}},
        "refresh": True,
        "continueResyncOnCommitMatch": True,
        "resyncFrequencySeconds": source.resync_seconds,
        "destroyOnFinalize": False,
        "retryOnUpdateConflict": True,
    }
    if source.directory:
        spec["repoDir"] = source.directory
    if login is not None:
        objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": _meta(agent_config_name(sa), ns, stack),
                        "data": {"agent.hcl": login.agent_config()}})
        spec["config"] = login.provider_config()
        spec["workspaceTemplate"] = login.workspace_template(sa)
    if platform is not None:
        spec["prerequisites"] = [{"name": platform.name, "requirement": {
            "succeededWithinDuration": f"{max(source.resync_seconds * 2, 3600)}s"}}]
    objects.append({"apiVersion": STACK_API, "kind": "Stack",
                    "metadata": _meta(stack.name, ns, stack), "spec": spec})
    return objects


def operator_objects(project_dir: Path, environment: str, source: Source
                     ) -> list[dict[str, Any]]:
    """Every object for the environment's stacks: the platform stack's first."""
    model, issues = load_or_issues(Path(project_dir), environment)
    if issues or model is None:
        first = issues[0] if issues else None
        raise OperatorError(f"stack {environment} is not valid"
                            + (f" ({first.where}: {first.path}: {first.message})" if first else "")
                            + ". Fix: `configplane validate --stack " + environment + "`.")
    namespace = operator_namespace(project_dir, model, source.namespace)
    source = replace(source, namespace=namespace)
    platform_role_problem(model, source.platform_role_arn, namespace)
    if model.platform.shards is not None and model.platform.aws.eks_oidc_issuer is None \
            and source.role_arn is None:
        raise OperatorError(
            f"{where_set(project_dir, environment, ISSUER_KEY)}: {'.'.join(ISSUER_KEY)} is not "
            "set, so no shard's deploy role trusts an operator account (IRSA needs the "
            "cluster's OIDC issuer): every shard's workspace would run with no AWS identity. "
            f"Fix: set {'.'.join(ISSUER_KEY)} (`aws eks describe-cluster --query "
            "cluster.identity.oidc.issuer`) and deploy the platform stack, or give --role-arn "
            "for deploy roles made outside configplane.")
    if not source.secrets_provider:
        raise OperatorError("no secrets provider: the operator must decrypt the stack's "
                            "`secure` values. Fix: --secrets-provider (e.g. awskms://alias/"
                            "pulumi-<env>?region=<region>, or the provider the stacks use).")
    elsewhere = (f"Or set {'.'.join(NAMESPACE_KEY)} to another namespace"
                 if model.platform.shards else "Or give the operator another --namespace")
    for name, service in sorted(model.services.items()):
        # the operator's namespace holds every stack's account: no service's objects (nor the
        # Roles its shard gets there) may sit beside them
        clash = ownership.reserved_problems(name, service.namespace, (namespace,))
        if clash:
            raise OperatorError(f"operator namespace {namespace}: service {name}: "
                                f"{clash[0][1]} {elsewhere}.")
    members: dict[str, list[str]] = {}
    for member, stack in service_stacks(project_dir, environment).items():
        if member in model.services:
            members.setdefault(stack.name, []).append(model.services[member].namespace)
    stacks = environment_stacks(project_dir, environment)
    platform = next(s for s in stacks if s.kind == "platform")
    account = model.platform.aws.account_id
    snapshots = model.platform.backup.vault_snapshots if model.platform.backup else None
    # the platform stack plans a shard's Kubernetes login with the cluster's OIDC issuer only
    # (components/deploy_rights.py, ShardDeployRights); the platform stack's own Vault login is
    # the bootstrap identity's, made outside configplane
    plans_login = model.platform.shards is not None \
        and model.platform.aws.eks_oidc_issuer is not None
    objects: list[dict[str, Any]] = []
    for stack in stacks:
        if stack.kind == "platform":
            objects += stack_objects(stack, [snapshots.namespace] if snapshots else [], source,
                                     account, None, BACKUP_MANAGED)
        else:
            login = VaultLogin(ownership.deploy_login_role(stack.name),
                               model.kubernetes_auth_path, model.platform.vault.address,
                               image=source.vault_agent_image) if plans_login else None
            objects += stack_objects(stack, members.get(stack.name, ()), source, account,
                                     platform, login=login)
    return objects


def operator_namespace(project_dir: Path, model: StackModel, given: str | None) -> str:
    """The namespace the objects go to: in a split environment its setting, which each shard's
    deploy role trusts (IRSA `sub` `system:serviceaccount:<namespace>:pulumi-<stack>`), and
    `given` (--namespace) only when it agrees; in an unsplit one, which plans no deploy role,
    `given` or the default."""
    shards = model.platform.shards
    bad = refs.label_problems(given, "it") if given is not None else []
    if bad:
        raise OperatorError(f"--namespace {printable(given or '')!r}: {bad[0]}")
    if shards is None:
        return given or DEFAULT_NAMESPACE
    if given is not None and given != shards.operator_namespace:
        env = model.platform.environment
        raise OperatorError(
            f"--namespace {printable(given)!r}: {where_set(project_dir, env, NAMESPACE_KEY)}: "
            f"{'.'.join(NAMESPACE_KEY)} is "
            f"{shards.operator_namespace!r}, and each shard's deploy role trusts its workspace "
            f"account only there: an operator in {printable(given)!r} would get accounts no "
            f"role trusts. Fix: drop --namespace, or set {'.'.join(NAMESPACE_KEY)}: "
            f"{printable(given)!r} in Pulumi.{env}.yaml and deploy the platform stack "
            "first (its roles then trust the new namespace).")
    return shards.operator_namespace


def where_set(project_dir: Path, environment: str, key: Sequence[str]) -> str:
    """`file:line` of the setting (or of its nearest parent), else the stack file."""
    found = origin_near(resolve_inputs(read_stack_files(project_dir, environment)), list(key))
    return found.where if found else f"Pulumi.{environment}.yaml"


def platform_role_problem(model: StackModel, arn: str | None, namespace: str) -> None:
    """Refuse a missing --platform-role-arn, or one that is not an IAM role of the
    environment's account (the platform stack's provider creates its roles there)."""
    env, account = model.platform.environment, model.platform.aws.account_id
    fix = (f"Fix: --platform-role-arn {refs.iam_role_arn(account, '<bootstrap role>')}: the "
           "environment's bootstrap role, which creates every shard's deploy role and trusts "
           f"`{ownership.service_account_subject(namespace, ownership.stack_account(env))}` "
           "(docs/fleet.md, The platform stack's deployer).")
    if arn is None:
        raise OperatorError(f"no --platform-role-arn: the platform stack {env} deploys with "
                            "the environment's bootstrap role, which configplane does not plan "
                            f"(a stack cannot create the role it deploys with). {fix}")
    problem = refs.iam_role_arn_problem(arn, account)
    if problem:
        raise OperatorError(f"--platform-role-arn {printable(arn)!r}: {problem} {fix}")
