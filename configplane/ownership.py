"""Who owns what. Every name, path and key configplane derives has exactly one owner: the
platform or one service, and each comes from one function of its owner, here.

Standard library only and free of imports from configplane: the policy pack reads this file
through the symlink `policies/ownership.py` (pinned by tests/test_architecture.py), so the
program, `validate` and the pack derive and attribute names with the same functions. The
rotation Lambda ships standalone and derives no names.

- The platform owns Pulumi.yaml, the stack files, services/defaults.yaml, the environment's
  mounts, auth path, KMS key and engine, and the namespaces and service accounts of the
  platform's components (`PLATFORM_NAMESPACES`, `PLATFORM_ACCOUNTS`, plus the ones a stack
  configures). A service may not take any of them as its name or namespace.
- A service owns its directory, namespace, service account, Vault role, policies and KV path,
  Secrets Manager names, IAM role, rotation function, PKI and database roles, DNS names, the
  secure config keys the platform grants it, its flags, tenants and ConfigMaps.
- `ServiceNames.owned()` lists what one service derives; two owners of one name is a conflict
  (`conflicts`), whatever feature added the name.
- The `*_owners` functions answer the other way round, for what a resource grants: the
  services a Secrets Manager resource pattern, a Vault path or a DNS name can reach, judged
  by what the pattern matches (globs included), never by a name prefix alone.

Over 400 lines on purpose: one small function per derived name, so that each name has one
home; splitting the catalogue would split the one place a reviewer reads to know who owns what.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PLATFORM = "platform"  # the owner of everything that is not one service's
EVERY = "*"  # "every service": a pattern not limited to one owner

# RFC 1123 label (service, namespace and tenant names): contract.DNS_LABEL, unanchored
# (tests/test_architecture.py pins the copy; a linked fact imports no other module).
LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
MAX_LABEL = 63

# --- the platform: components, namespaces and accounts no service may take ----------------

# Namespaces Kubernetes itself uses, and those of the platform components configplane relies
# on (the operator, cert-manager, Vault); a stack adds the ones it configures.
PLATFORM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease",
                       "external-secrets", "cert-manager", "vault")
# Service accounts of those components: a service named like one would get an account (and a
# Vault role) with the component's name.
PLATFORM_ACCOUNTS = ("external-secrets", "cert-manager", "cert-manager-cainjector",
                     "cert-manager-webhook", "vault", "vault-agent-injector", "default")


# The files: each service owns its directory of the catalog; the platform owns everything
# else (the project, the stack files, the pack, the program, the fleet defaults and all that
# CI runs), through one catch-all so that a file added later is never left unowned
# (CODEOWNERS is generated from this: configplane/ops/owners.py; its last match wins).
CATALOG_DIR = "services"
PLATFORM_PATHS = ("*",)


def service_directory(service: str) -> str:
    """The catalog directory a service owns (`services/<name>/`)."""
    return f"{CATALOG_DIR}/{service}/"


def is_service_name(name: str) -> bool:
    """Whether a name can be a service's (an RFC 1123 label, matched whole)."""
    return len(name) <= MAX_LABEL and re.fullmatch(LABEL, name) is not None


def reserved_names(configured: Iterable[str] = ()) -> frozenset[str]:
    """Names no service may take: the platform's namespaces and accounts, plus the ones a
    stack configures (the operator's and cert-manager's namespace and account)."""
    return frozenset((*PLATFORM_NAMESPACES, *PLATFORM_ACCOUNTS, *configured))


def is_reserved_namespace(namespace: str, configured: Iterable[str] = ()) -> bool:
    return namespace.startswith("kube-") or namespace in reserved_names(configured)


def reserved_problems(service: str, namespace: str, configured: Iterable[str] = ()
                      ) -> list[tuple[str, str]]:
    """(field, problem) for a service that would take a platform name: `name` when the
    service is named like a platform namespace or account, `namespace` when its namespace is
    the platform's."""
    out = []
    if service in reserved_names(configured) or service.startswith("kube-"):
        out.append(("name", f"`{service}` is a platform name (a namespace or service account of "
                    "Kubernetes or of a platform component: the External Secrets Operator, "
                    "cert-manager, Vault): the service's account and Vault roles would be "
                    "mistaken for the component's. Fix: rename the service."))
    if is_reserved_namespace(namespace, configured):
        out.append(("namespace", f"`{namespace}` is a platform namespace (Kubernetes' own or a "
                    "platform component's): the service's objects would sit beside the "
                    "component's credentials. Fix: give the service its own namespace."))
    return out


# --- names of the environment (owned by the platform) -------------------------------------

def vault_mount(environment: str, configured: str | None = None) -> str:
    """The environment's KV v2 mount."""
    return configured or f"{environment}-kv"


def kubernetes_auth_path(environment: str, configured: str | None = None) -> str:
    return configured or f"kubernetes-{environment}"


def pki_mount(environment: str, configured: str | None = None) -> str:
    """The environment's intermediate CA mount."""
    return configured or f"{environment}-pki"


def pki_root_mount(environment: str, configured: str | None = None) -> str:
    return configured or f"{environment}-pki-root"


def database_mount(environment: str, configured: str | None = None) -> str:
    return configured or f"{environment}-database"


def ca_issuer_name(environment: str, role: str) -> str:
    """A CA issuer in the environment's PKI mounts (`root` or `intermediate`)."""
    return f"{environment}-{role}"


def kms_alias(environment: str) -> str:
    return f"alias/configplane-{environment}-secrets"


def stack_account(stack: str) -> str:
    """The service account a stack's workspace runs as under the Pulumi Kubernetes Operator,
    in the operator's namespace (`configplane operator stacks`)."""
    return f"pulumi-{stack}"


def deploy_role_name(stack: str) -> str:
    """The IAM role a stack deploys with (its operator workspace's IRSA role, by default)."""
    return f"configplane-deploy-{stack}"


def deploy_policy_name(stack: str) -> str:
    """The Vault policy of a shard's deployer (docs/fleet.md, Per-shard deploy rights): no
    `<environment>-` prefix, so it is never taken for a service's policy."""
    return f"configplane-deploy-{stack}"


def deploy_shard(name: object, environment: str) -> str | None:
    """The shard a deploy role or deploy policy name (`configplane-deploy-<env>-<shard>`)
    belongs to, or None: the inverse of deploy_role_name and deploy_policy_name for a shard
    stack. The pack knows the platform's deployers by it."""
    prefix = deploy_role_name(shard_stack_name(environment, ""))
    text = str(name or "")
    shard = text[len(prefix):] if text.startswith(prefix) else ""
    return shard if is_shard_name(shard) else None


def deploy_login_role(stack: str) -> str:
    """The Vault auth role a shard's deployer logs in with (a JWT role on the GitHub JWT mount,
    a Kubernetes auth role for its operator workspace): `configplane_deploy_<stack>`. The `_`
    no RFC 1123 label holds keeps it apart from every service's role on the shared mounts
    (`<svc>`, `<svc>-pki`, `<svc>-database`)."""
    return f"configplane_deploy_{stack}"


def deploy_login_shard(name: object, environment: str) -> str | None:
    """The shard a deployer's login role name belongs to, or None: the inverse of
    deploy_login_role for a shard stack of `environment` (the pack's)."""
    prefix = deploy_login_role(shard_stack_name(environment, ""))
    text = str(name or "")
    shard = text[len(prefix):] if text.startswith(prefix) else ""
    return shard if is_shard_name(shard) else None


# The GitHub environments the workflows use per environment besides its deploy environment
# `<env>` (docs/ci.md): read-only previews and the approval gate. A shard's own deploy
# environment must never be one of them (`validate`: topology_problems).
GITHUB_SHARED_SUFFIXES = ("-preview", "-approval")


def github_deploy_environment(stack: str) -> str:
    """The GitHub environment a stack's `pulumi up` runs in, and the only one its deploy role
    and Vault login trust: the stack's name (`<env>` for the platform stack, `<env>-<shard>`
    for a shard), so a job in one shard's environment gets no other shard's credentials."""
    return stack


def github_shared_environments(environment: str) -> tuple[str, ...]:
    """The GitHub environments every stack of `environment` shares: previews, approval."""
    return tuple(f"{environment}{suffix}" for suffix in GITHUB_SHARED_SUFFIXES)


def deploy_boundary_name(stack: str) -> str:
    """The IAM permissions boundary every role a shard's deployer creates must carry."""
    return f"configplane-boundary-{stack}"


ROLE_AUTONAME = "???????"  # the 7 hex characters Pulumi appends to an auto-named resource


def rotation_component_name(environment: str, service: str) -> str:
    """The program's name of a service's rotation (the SecretRotator and its children)."""
    return f"rotation-{environment}-{service}"


def rotation_role_pattern(environment: str, service: str) -> str:
    """The auto-named role of a service's rotation function, as an IAM glob (`?`: one
    character): `<component>-role-` and Pulumi's 7 characters, exactly, so no other
    service's role (`rotation-<env>-<service>-role-role-...`) matches."""
    return f"{rotation_component_name(environment, service)}-role-{ROLE_AUTONAME}"


def rotation_log_group(environment: str, service: str) -> str:
    """The log group of a service's rotation function (Lambda's own convention)."""
    return f"/aws/lambda/{rotation_function_name(environment, service)}"


# --- the fleet's stacks (docs/fleet.md): the platform stack keeps the environment's name ----

UNOWNED_SHARD = "unowned"  # the shard of services when neither they nor the platform name an owner
MAX_SHARD = 40  # a shard's name: an RFC 1123 label short enough for `<env>-<shard>`


def shard_stack_name(environment: str, shard: str) -> str:
    """The Pulumi stack of one shard of an environment."""
    return f"{environment}-{shard}"


def shard_of_stack(stack: str, environment: str) -> str | None:
    """The shard a stack name `<environment>-<shard>` names, or None: the inverse of
    shard_stack_name (the shard is checked by is_shard_name, not here)."""
    prefix = shard_stack_name(environment, "")
    return stack[len(prefix):] if stack.startswith(prefix) and len(stack) > len(prefix) else None


def is_shard_name(name: str) -> bool:
    return len(name) <= MAX_SHARD and is_service_name(name)


def team_shard(owners: Iterable[str]) -> str:
    """The shard of a service owned by `owners`: the first owner's team (`@org/team` -> team,
    `@user` -> user, `name@domain` -> name-domain), as an RFC 1123 label (`owner-<hash>` when
    the owner has no letter or digit to keep). Teams of one name in two organisations share
    a shard: a bigger shard, never a service in two."""
    for owner in owners:
        team = owner.rsplit("/", 1)[-1].lstrip("@")
        label = re.sub(r"[^a-z0-9]+", "-", team.lower()).strip("-")[:MAX_SHARD].strip("-")
        return label or f"owner-{hashlib.sha256(owner.encode()).hexdigest()[:10]}"
    return UNOWNED_SHARD


def mount_problems(mount: str, environment: str, what: str) -> list[str]:
    """A mount configplane writes into policy text and API paths: one segment, an RFC 1123
    label that starts with `<environment>-` (the pack knows an environment's mounts by it)."""
    if len(mount) > MAX_LABEL or not re.fullmatch(LABEL, mount):  # the pack reads one segment
        return [f"{what} is one path segment of lowercase letters, digits and '-' (no `/`, "
                "quotes, braces, spaces or newlines: it is written into Vault policy text and "
                f"API paths). Fix: use a name such as `{environment}-kv`."]
    if not mount.startswith(f"{environment}-"):
        return [f"{what} does not start with `{environment}-`: the environment's policies "
                f"and the pack know its mounts by that prefix. Fix: name it "
                f"`{environment}-<name>`."]
    return []


def segment_problems(name: str, what: str) -> list[str]:
    """A platform name that becomes one segment of a Vault API path (a database
    connection): an RFC 1123 label, so no `/`, `..` or policy syntax reaches the path."""
    if len(name) > MAX_LABEL or not re.fullmatch(LABEL, name):
        return [f"{what} is not an RFC 1123 label (lowercase letters, digits and '-'; it "
                "becomes one segment of a Vault API path). Fix: rename it."]
    return []


# --- names of one service ------------------------------------------------------------------

READ_POLICY_SUFFIX = "-read"
PKI_POLICY_SUFFIX = "-pki"
DATABASE_POLICY_SUFFIX = "-database"


def default_namespace(service: str, environment: str) -> str:
    return f"{service}-{environment}"


def service_account(service: str) -> str:
    return service


def kubernetes_secret_name(service: str) -> str:
    """The Kubernetes Secret the service's ExternalSecret writes."""
    return f"{service}-secrets"


def secret_store_name(service: str, store: str) -> str:
    """The service's SecretStore for one store (`vault` or `aws`), in its namespace."""
    return f"{service}-vault" if store == "vault" else f"{service}-aws-secretsmanager"


def external_secret_name(service: str) -> str:
    return service


def config_reader_role(service: str) -> str:
    """The Kubernetes Role (and binding) that lets the service's account read its config."""
    return f"{service}-config-reader"


def vault_path(service: str) -> str:
    """The service's KV v2 secret inside the environment's mount (and the root of the paths
    its policy reads)."""
    return service


def vault_role(service: str) -> str:
    """The Kubernetes auth role the service's SecretStore signs in with."""
    return service


def pki_auth_role(service: str) -> str:
    """The Kubernetes auth role cert-manager logs in with, as the service's account."""
    return f"{service}-pki"


def database_auth_role(service: str) -> str:
    """The Kubernetes auth role the service's dynamic-credential generators log in with."""
    return f"{service}-database"


def pki_role(service: str) -> str:
    """The service's PKI role in the environment's intermediate mount."""
    return service


def read_policy_name(environment: str, service: str) -> str:
    """The Vault policy that lets one service read its own KV secrets."""
    return f"{environment}-{service}{READ_POLICY_SUFFIX}"


def pki_policy_name(environment: str, service: str) -> str:
    """The Vault policy that lets one service's Issuer sign its own certificates."""
    return f"{environment}-{service}{PKI_POLICY_SUFFIX}"


def database_policy_name(environment: str, service: str) -> str:
    """The Vault policy that lets one service read its own dynamic database credentials."""
    return f"{environment}-{service}{DATABASE_POLICY_SUFFIX}"


def policy_service(name: object, environment: str, suffix: str) -> str | None:
    """The service a Vault policy name `<environment>-<service><suffix>` belongs to, or None:
    the inverse of read_policy_name, pki_policy_name and database_policy_name."""
    m = re.fullmatch(rf"{re.escape(environment)}-(?P<svc>{LABEL}){re.escape(suffix)}",
                     str(name or ""))
    return m.group("svc") if m else None


def issuer_name(service: str) -> str:
    return f"{service}-vault"


def tls_secret_name(service: str) -> str:
    """The certificate and the Kubernetes Secret cert-manager writes it to."""
    return f"{service}-tls"


def cluster_dns_names(service: str, namespace: str) -> tuple[str, str]:
    """The names a service answers to inside the cluster: its own without a platform grant."""
    return f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"


def secret_resource_name(key: str) -> str:
    """How a secret's key names its resources: `DATABASE_URL` -> `database-url`."""
    return key.lower().replace("_", "-")


def slug(key: str) -> str:
    """A dynamic secret's key in the names of its Vault role and Kubernetes Secret: the secret
    resource name, with '.' also made '-' (kept as it was: these names already exist)."""
    return secret_resource_name(key).replace(".", "-")


def database_role_name(service: str, key: str) -> str:
    """The Vault database role of one dynamic secret."""
    return f"{service}-{slug(key)}"


def dynamic_secret_name(service: str, key: str) -> str:
    """The Kubernetes Secret ESO writes for one dynamic secret (and its generator)."""
    return f"{service}-dynamic-{slug(key)}"


def rotated_name(service: str, key: str) -> str:
    """The rotation's name for one secret: the program names resources after it."""
    return f"{service}-{secret_resource_name(key)}"


def configmap_base(service: str) -> str:
    return f"{service}-config"


def tenant_configmap_base(service: str, tenant: str) -> str:
    return f"{service}-{tenant}-config"


def flags_configmap_name(service: str) -> str:
    return f"{service}-flags"


def secret_prefix(environment: str, service: str) -> str:
    """Where configplane keeps a service's Secrets Manager secrets."""
    return f"configplane/{environment}/{service}/"


def aws_secret_name(environment: str, service: str, key: str) -> str:
    return f"{secret_prefix(environment, service)}{key}"


def iam_role_name(environment: str, service: str) -> str:
    """The per-service IAM role ESO assumes (IRSA) to read the service's Secrets Manager secrets."""
    return f"configplane-{environment}-{service}-secrets"


def rotation_function_name(environment: str, service: str | None = None) -> str:
    """The rotation Lambda of one service (or, without a service, of the environment)."""
    return f"configplane-rotation-{environment}" + (f"-{service}" if service else "")


# --- backups (the platform's; docs/dr.md) ----------------------------------------------------

def backup_bucket_name(part_of: str, environment: str, account_id: str) -> str:
    """The environment's backup bucket (S3 names are global: the account makes it unique)."""
    return f"{part_of}-{environment}-backups-{account_id}"


def vault_snapshot_prefix(environment: str) -> str:
    """Where the snapshot CronJob writes in the backup bucket (and all its IAM role may write)."""
    return f"vault/{environment}/"


def vault_snapshot_policy_name(environment: str) -> str:
    """The Vault policy of the snapshot CronJob: read on sys/storage/raft/snapshot only."""
    return f"{environment}-vault-snapshot"


def vault_snapshot_role_name(environment: str) -> str:
    """The IAM role the snapshot CronJob assumes (IRSA) to upload."""
    return f"configplane-{environment}-vault-snapshot"


IAM_ROLE_NAME_MAX = 64  # AWS's limit on a role name
LAMBDA_NAME_MAX = 64  # and on a function name


def name_length_problems(environment: str, service: str, *, aws: bool,
                         rotated: bool) -> list[str]:
    """The service's AWS names that would exceed AWS's limits."""
    problems = []
    for wanted, what, name, limit in (
            (aws, "IAM role", iam_role_name(environment, service), IAM_ROLE_NAME_MAX),
            (rotated, "rotation function", rotation_function_name(environment, service),
             LAMBDA_NAME_MAX)):
        if wanted and len(name) > limit:
            problems.append(f"the service's {what} name `{name}` would be {len(name)} "
                            f"characters; AWS allows {limit}. Fix: shorten the service name.")
    return problems


def owner_of_secret_name(name: str, environment: str) -> str | None:
    """The service a Secrets Manager secret name belongs to, by configplane's layout."""
    prefix = f"configplane/{environment}/"
    if not name.startswith(prefix):
        return None
    service = name[len(prefix):].split("/", 1)[0]
    return service or None


def service_account_subject(namespace: str, account: str) -> str:
    """The `sub` claim of a projected service account token (IRSA's trust condition)."""
    return f"system:serviceaccount:{namespace}:{account}"


def config_key_for(service: str, key: str) -> str:
    """The secure config key `import` proposes: billing + STRIPE_API_KEY ->
    billingStripeApiKey. A proposal only: the platform grants a key to its owner."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", f"{service} {key}") if w]
    return words[0].lower() + "".join(w[:1].upper() + w[1:].lower() for w in words[1:])


Claim = tuple[str, str, tuple[str, ...]]  # (kind, name, the key path that derives it)


@dataclass(frozen=True)
class ServiceNames:
    """What one service derives in one environment, for the ownership index."""

    service: str
    environment: str
    namespace: str
    tenants: tuple[str, ...] = ()
    dynamic_keys: tuple[str, ...] = ()
    tls: bool = False
    aws: bool = False  # keeps secrets in Secrets Manager (its own IAM role)
    rotated: bool = False  # has its own rotation function
    flags: bool = False
    generated_keys: tuple[str, ...] = ()  # the program generates their values
    aws_keys: tuple[str, ...] = ()  # it declares them in Secrets Manager (not references)
    rotated_keys: tuple[str, ...] = ()

    def owned(self) -> list[Claim]:
        """Every name the service takes where the whole stack shares one namespace of names
        (Vault, AWS, cluster namespaces, the program's resource names), with the key path
        (below `services.<name>`) that derives it. Within a kind, equal names are one object.
        Names inside the service's Kubernetes namespace (ConfigMaps, Secrets, stores) are
        owned through that namespace."""
        s, env = self.service, self.environment
        claims: list[Claim] = [
            ("namespace", self.namespace, ("namespace",)),
            ("Vault KV path", vault_path(s), ()),
            ("Vault Kubernetes auth role", vault_role(s), ()),
            ("Vault policy", read_policy_name(env, s), ()),
            ("Secrets Manager prefix", secret_prefix(env, s), ())]
        if self.tls:
            claims += [("Vault Kubernetes auth role", pki_auth_role(s), ("tls",)),
                       ("Vault policy", pki_policy_name(env, s), ("tls",)),
                       ("Vault PKI role", pki_role(s), ("tls",))]
        if self.dynamic_keys:
            first = ("secrets", self.dynamic_keys[0])
            claims += [("Vault Kubernetes auth role", database_auth_role(s), first),
                       ("Vault policy", database_policy_name(env, s), first)]
            claims += [("Vault database role", database_role_name(s, k), ("secrets", k))
                       for k in self.dynamic_keys]
        if self.aws:
            claims.append(("IAM role", iam_role_name(env, s), ()))
        if self.rotated:
            claims.append(("Lambda function", rotation_function_name(env, s), ()))
        return claims + self.resource_names()

    def resource_names(self) -> list[Claim]:
        """The program's resource names (a URN is its type and its name) that carry a name
        the service team chose (a tenant, a secret key), with the fixed ones beside them of
        the same type: `<service>-<component>-<child>` with a tenant or key in `<child>` can
        spell another service's name. The program names children `<parent>-<role>`
        (tests/program/test_ownership.py checks these against the plan)."""
        s, env = self.service, self.environment
        config = f"{s}-config"
        claims: list[Claim] = [("resource name (ConfigMap)", f"{config}-config", ("config",))]
        if self.flags:
            claims.append(("resource name (ConfigMap)", f"{config}-flags", ("flags",)))
        claims += [("resource name (ConfigMap)", f"{config}-tenant-{t}", ("tenants", t))
                   for t in self.tenants]
        claims += [("resource name (generated secret)",
                    f"{s}-secret-values-{secret_resource_name(k)}", ("secrets", k))
                   for k in self.generated_keys]
        claims += [("resource name (Secrets Manager secret)", f"{s}-aws-{secret_resource_name(k)}",
                    ("secrets", k)) for k in self.aws_keys]
        claims += [("resource name (database credentials)", f"{s}-dynamic-{slug(k)}",
                    ("secrets", k)) for k in self.dynamic_keys]
        claims += [("resource name (rotation)",
                    f"rotation-{env}-{s}-rotation-{rotated_name(s, k)}", ("secrets", k))
                   for k in self.rotated_keys]
        return claims


def conflicts(claims: Iterable[tuple[tuple[str, ...], str, str]]
              ) -> list[tuple[tuple[str, ...], str, str, tuple[str, ...]]]:
    """(path, kind, name, first path) for each claim of a name an earlier claim (another
    service's, or another key of the same one) already holds: one name is one object, with
    one owner. `claims`: (key path, kind, name) in the order owners are read."""
    first: dict[tuple[str, str], tuple[str, ...]] = {}
    out = []
    for path, kind, name in claims:
        holder = first.setdefault((kind, name), path)
        if holder != path:
            out.append((path, kind, name, holder))
    return out


# --- secure config keys ------------------------------------------------------------------

def granted(grants: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """A platform grant (service -> the keys or names it is given) read the other way: what
    is granted -> its one owner (the first service that lists it; validation refuses the
    others)."""
    owners: dict[str, str] = {}
    for service, things in grants.items():
        for thing in things:
            owners.setdefault(thing, service)
    return owners


def secure_key_owner(key: str, owners: Mapping[str, str]) -> str:
    """The owner of a secure config key (`owners`: `granted(...)`): the service the platform
    granted it to, else the platform (a key nobody granted is never a service's to take)."""
    return owners.get(key, PLATFORM)


# --- DNS names ---------------------------------------------------------------------------

CLUSTER_SUFFIXES = (".svc", ".svc.cluster.local")


def cluster_name_namespace(name: str) -> str | None:
    """The namespace a cluster DNS name (`<x>.<namespace>.svc[.cluster.local]`, wildcards
    included) lies in, or None for a name outside the cluster."""
    for suffix in CLUSTER_SUFFIXES:
        if name.endswith(suffix):
            labels = name[:-len(suffix)].split(".")
            return labels[-1] if len(labels) >= 2 else EVERY
    return None


def dns_name_owner(name: str, service: str, namespace: str,
                   owners: Mapping[str, str]) -> str:
    """Who owns a name a service's certificate lists: the service for names in its own
    namespace (`<x>.<namespace>.svc[.cluster.local]`), the service a platform grant names, the
    platform otherwise. A name in the cluster belongs to its namespace's owner and cannot be
    granted elsewhere."""
    if name in cluster_dns_names(service, namespace):
        return service
    in_cluster = cluster_name_namespace(name)
    if in_cluster is not None:
        return service if in_cluster == namespace else PLATFORM
    return owners.get(name, PLATFORM)


# --- what a grant reaches: patterns judged by what they match ------------------------------

def globs_intersect(a: str, b: str, wild: str = "*", one: str = "?") -> bool:
    """Whether two glob patterns (`wild`: any run of characters; `one`: one character) match
    at least one common string. Time and memory O(len(a) * len(b)), one row at a time."""
    n, m = len(a), len(b)
    # below[j]: a[i+1:] and b[j:] intersect; filled from the ends of both patterns
    below = [False] * (m + 1)
    below[m] = True
    for j in range(m - 1, -1, -1):
        below[j] = b[j] == wild and below[j + 1]
    for i in range(n - 1, -1, -1):
        row = [False] * (m + 1)
        row[m] = a[i] == wild and below[m]
        for j in range(m - 1, -1, -1):
            if a[i] == wild:
                row[j] = below[j] or row[j + 1]
            elif b[j] == wild:
                row[j] = row[j + 1] or below[j]
            else:
                row[j] = (a[i] == b[j] or one in (a[i], b[j])) and below[j + 1]
        below = row
    return below[0]


def _literal_head(pattern: str) -> str:
    """What a glob matches literally before its first wildcard."""
    return re.split(r"[*?]", pattern, maxsplit=1)[0]


class SecretPatternOwners:
    """The services whose Secrets Manager secrets an IAM resource pattern (`*` and `?` as IAM
    reads them) can match, over one stack's services: each service whose prefix the pattern
    can reach, plus EVERY when it can match a configplane secret outside those prefixes
    (another environment's, or a service this stack does not declare). Empty: no configplane
    secret.

    Built once per stack and called once per pattern, so that a stack of N roles over N
    services costs about N, not N * N glob intersections: the prefixes are indexed, a pattern
    is judged only against the prefixes its literal head agrees with (every other prefix
    differs from each string it matches before its first wildcard), and each distinct pattern
    is judged once. A prefix that itself holds `*` or `?` (a name no plan derives) is judged
    as a glob, against every pattern."""

    def __init__(self, environment: str, services: Iterable[str]):
        self._environment = environment
        self._literal: dict[str, str] = {}  # prefix -> its service
        self._wild: dict[str, str] = {}
        for service in services:
            prefix = secret_prefix(environment, service)
            (self._wild if _has_wildcard(prefix) else self._literal)[prefix] = service
        self._sorted = sorted(self._literal)
        self._judged: dict[str, frozenset[str]] = {}

    def __call__(self, pattern: str) -> set[str]:
        if pattern not in self._judged:
            self._judged[pattern] = frozenset(self._judge(pattern))
        return set(self._judged[pattern])

    def _judge(self, pattern: str) -> set[str]:
        name = _secret_name_glob(pattern)
        if name is None:
            return set()
        head = _literal_head(name)
        owners = {self._literal[p] for p in self._literal_reached(name, head)}
        owners |= {s for p, s in self._wild.items() if globs_intersect(name, p + "*")}
        inside = any(head.startswith(secret_prefix(self._environment, s)) for s in owners)
        if not inside and globs_intersect(name, "configplane/*"):
            owners.add(EVERY)
        return owners

    def _literal_reached(self, name: str, head: str) -> Iterable[str]:
        """The literal prefixes `name` (whose literal head is `head`) can match a string of."""
        # a prefix of the head: every string the pattern matches starts with it
        yield from (head[:i] for i in range(len(head) + 1) if head[:i] in self._literal)
        # a prefix longer than the head: the glob decides, past the head both share
        rest = name[len(head):]
        for prefix in self._sorted[bisect.bisect_right(self._sorted, head):]:
            if not prefix.startswith(head):
                break
            if globs_intersect(rest, prefix[len(head):] + "*"):
                yield prefix


def _has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


def _secret_name_glob(pattern: str) -> str | None:
    """The secret name an IAM resource pattern can match, as a glob (`*` for a glob over
    whole ARNs), or None when it can match no Secrets Manager secret."""
    parts = pattern.split(":", 5)
    if len(parts) == 6:
        if not globs_intersect(parts[2], "secretsmanager"):
            return None
        resource = parts[5]
        if not globs_intersect(resource, "secret:*"):
            return None
        return resource[len("secret:"):] if resource.startswith("secret:") else "*"
    return "*" if "*" in pattern else None


def secret_pattern_owners(pattern: str, environment: str, services: Iterable[str]) -> set[str]:
    """SecretPatternOwners for one pattern (a stack judging many builds the index once)."""
    return SecretPatternOwners(environment, services)(pattern)


KV_KINDS = frozenset({"data", "metadata", "subkeys", "delete", "undelete", "destroy"})


def vault_path_owner(path: str, mount: str | None = None) -> str | None:
    """The service a KV v2 policy path (`<mount>/<kind>/<service>/...`) belongs to, EVERY for
    a glob that reaches past one service (Vault: `+` one segment, a trailing `*` any suffix),
    None for a path outside any KV secret (or outside `mount`, when given)."""
    segments = path.split("/")
    glob = ("*" in segments[0] or "+" in segments[0]
            or (len(segments) > 1 and ("*" in segments[1] or "+" in segments[1])))
    if glob:
        return EVERY
    if mount is not None and segments[0] != mount:
        return None
    if len(segments) < 3 or segments[1] not in KV_KINDS:
        return None
    owner = segments[2]
    if owner in ("", ".", "..") or "*" in owner or "+" in owner:
        return EVERY
    return owner

