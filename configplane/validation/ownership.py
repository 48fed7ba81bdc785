"""Ownership checks: every name a stack derives has one owner, and every reference in a
service's files names something that service owns (configplane/ownership.py says who owns
what). `validate` and the program run these through `load_stack`, before any resource is
declared; the pack judges the same grants on the resources (policies/identities.py).

- Platform names that reach Vault policy text and API paths (mounts, the auth path,
  database connection names) are validated whole, one grammar each.
- A service may not take a platform name or namespace, nor the operator's namespace.
- Each derived name (namespace, Vault roles, policies and paths, IAM role, Lambda function,
  ConfigMap generations) is claimed once: a second claim is refused, naming the first.
- A `source: secure` secret names a secure key the platform granted to its service
  (`platform.grants.secure_keys`); the platform's own settings use only keys granted to
  nobody.
- A certificate lists only names its service owns: names in its own namespace, and names
  outside the cluster the platform granted to it (`platform.grants.dns_names`).

Each problem is (key path, file, message, line); messages name the owner, never a value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from configplane import ownership
from configplane.inputs import NAMESPACE, dotted
from configplane.model import ShardSettings, rotated_secrets, service_namespace

Problem = tuple[str, str, str, int | None]
Where = Callable[[Iterable[Any]], str]
Line = Callable[[Iterable[Any]], int | None]


class _Service(NamedTuple):
    """What ownership reads of a service before its model is built (the builder runs on a
    valid stack only): its spec, its namespace, and whether it has flags."""

    spec: Any
    namespace: str
    flags: Mapping[str, Any] | None


def ownership_problems(document: Any, where: Where, line: Line) -> list[Problem]:
    """Every ownership problem of a typed document."""
    problems: list[Problem] = []
    env = document.platform.environment
    services = {name: _Service(svc, service_namespace(name, svc, env), svc.flags or None)
                for name, svc in document.services.items()}

    def fail(path: list[str], message: str) -> None:
        problems.append((dotted(path), where(path), message, line(path)))

    platform = document.platform
    _platform_names(platform, fail)
    configured = _configured_platform_names(platform)
    for name, svc in services.items():
        for field, message in ownership.reserved_problems(name, svc.namespace, configured):
            fail(["services", name] + (["namespace"] if field == "namespace" else []), message)
        operator_problem(name, svc.namespace, platform, fail)
    _claims(platform.environment, services, fail)
    _grants(platform.grants, fail)
    _secure_keys(platform, services, fail)
    _dns_names(platform, services, fail)
    return problems


def operator_namespace(platform: Any) -> str:
    """The Pulumi Kubernetes Operator's namespace: the setting, or its default in an
    environment that is one stack (where `operator stacks` uses the default too)."""
    shards = platform.shards
    return (shards.operator_namespace if shards is not None
            else ShardSettings.model_fields["operator_namespace"].default)


def operator_problem(service: str, namespace: str, platform: Any,
                     fail: Callable[[list[str], str], None]) -> None:
    """A service in the operator's namespace, or named like it, is refused whether or not the
    environment uses the operator path: every stack's workspace account `pulumi-<stack>` lives
    there, trusted by its deploy role (IRSA) and its Vault login, and a shard's account gets
    Roles in its services' namespaces. One problem per service."""
    operator = operator_namespace(platform)
    if operator not in (namespace, service):
        return
    setting = "platform.shards.operator_namespace" + ("" if platform.shards is not None
                                                      else ", by default")
    where, fix = ((["namespace"], "give the service its own namespace "
                   f"(services.{service}.namespace)") if namespace == operator
                  else ([], "rename the service"))
    fail(["services", service, *where],
         f"service `{service}`: `{operator}` is the Pulumi Kubernetes Operator's namespace "
         f"({setting}), which holds every stack's workspace account `pulumi-<stack>`, trusted "
         "by its deploy role and its Vault login: the service's objects and account would sit "
         f"among them (docs/fleet.md). Fix: {fix}, or set platform.shards.operator_namespace "
         "to another namespace.")


def _configured_platform_names(platform: Any) -> tuple[str, ...]:
    eso = platform.external_secrets
    names = [eso.controller_namespace, eso.controller_service_account]
    if platform.pki is not None:
        names += [platform.pki.cert_manager_namespace, platform.pki.cert_manager_service_account]
    snapshots = platform.backup.vault_snapshots if platform.backup is not None else None
    if snapshots is not None:  # its account is also its Vault role's name
        names += [snapshots.namespace, snapshots.service_account]
    return tuple(names)


def _platform_names(platform: Any, fail: Callable[[list[str], str], None]) -> None:
    env = platform.environment
    mounts = [(["platform", "vault", "mount"], platform.vault.mount)]
    if platform.pki is not None:
        mounts += [(["platform", "pki", "mount"], platform.pki.mount),
                   (["platform", "pki", "root_mount"], platform.pki.root_mount)]
    if platform.database is not None:
        mounts.append((["platform", "database", "mount"], platform.database.mount))
    for path, mount in mounts:
        if mount is not None:
            for message in ownership.mount_problems(mount, env, dotted(path)):
                fail(path, message)
    auth = ["platform", "vault", "kubernetes_auth_path"]
    if platform.vault.kubernetes_auth_path is not None:
        for message in ownership.segment_problems(platform.vault.kubernetes_auth_path,
                                                  dotted(auth)):
            fail(auth, message)
    for name in platform.database.connections if platform.database is not None else ():
        path = ["platform", "database", "connections", name]
        for message in ownership.segment_problems(name, "the connection name"):
            fail(path, message)


def _claims(environment: str, services: Mapping[str, Any],
            fail: Callable[[list[str], str], None]) -> None:
    claims = []
    for name in sorted(services):
        spec = services[name].spec
        secrets = spec.secrets
        keys = sorted(secrets)
        names = ownership.ServiceNames(
            service=name, environment=environment, namespace=services[name].namespace,
            tenants=tuple(spec.tenants),
            dynamic_keys=tuple(k for k in keys if secrets[k].source == "dynamic"),
            tls=spec.tls is not None,
            aws=any(s.store == "aws" for s in secrets.values()),
            rotated=any(s.rotation for s in secrets.values()),
            flags=services[name].flags is not None,
            generated_keys=tuple(k for k in keys if secrets[k].source == "generated"),
            aws_keys=tuple(k for k in keys
                           if secrets[k].store == "aws" and secrets[k].source != "reference"),
            rotated_keys=tuple(rotated_secrets(name, secrets)))
        claims += [(("services", name, *path), kind, derived)
                   for kind, derived, path in names.owned()]
    for path, kind, derived, first in ownership.conflicts(claims):
        if kind.startswith("resource name") and path[:2] == first[:2]:
            continue  # two keys of one service: stack_checks names the normalised clash
        fail(list(path), f"its {kind} would be `{derived}`, the same as for {dotted(first)}: "
             "one would overwrite the other and get its access (a name has one owner). Fix: "
             "rename the service (or the tenant, secret or namespace that derives the name).")


def _owner(owner: str) -> str:
    return "the platform" if owner == ownership.PLATFORM else f"service {owner}"


def _grants(grants: Any, fail: Callable[[list[str], str], None]) -> None:
    """Each key and name is granted to one service at most."""
    for field, what in (("secure_keys", "secure key"), ("dns_names", "DNS name")):
        owners = ownership.granted(getattr(grants, field))
        for service, things in getattr(grants, field).items():
            for i, thing in enumerate(things):
                if owners[thing] != service:
                    fail(["platform", "grants", field, service, str(i)],
                         f"this {what} is granted to service {owners[thing]} already: a grant "
                         "has one owner. Fix: grant it to one service.")
    for service, names in grants.dns_names.items():
        for i, dns in enumerate(names):
            if ownership.cluster_name_namespace(dns) is not None:
                fail(["platform", "grants", "dns_names", service, str(i)],
                     "a name inside the cluster (`.svc`, `.svc.cluster.local`) belongs to its "
                     "namespace's service and cannot be granted. Fix: remove it.")


def _secure_keys(platform: Any, services: Mapping[str, Any],
                 fail: Callable[[list[str], str], None]) -> None:
    grants = ownership.granted(platform.grants.secure_keys)
    fix = ("Fix: use a key the platform granted to this service (platform.grants.secure_keys "
           "in Pulumi.yaml), or ask the platform team to declare and grant one.")
    for name, svc in services.items():
        for key, secret in svc.spec.secrets.items():
            if secret.source != "secure" or not secret.config_key:
                continue
            owner = ownership.secure_key_owner(secret.config_key, grants)
            if owner != name:
                fail(["services", name, "secrets", key, "config_key"],
                     f"`{NAMESPACE}:{secret.config_key}` is {_owner(owner)}'s secure key, not "
                     f"service {name}'s: a service may use only the keys granted to it. {fix}")
    database = platform.database
    for conn_name, conn in (database.connections if database is not None else {}).items():
        owner = ownership.secure_key_owner(conn.password_config_key, grants)
        if owner != ownership.PLATFORM:
            fail(["platform", "database", "connections", conn_name, "password_config_key"],
                 f"`{NAMESPACE}:{conn.password_config_key}` is granted to service {owner}: the "
                 "database engine's root password would be that service's secret too. Fix: "
                 "give the connection a key granted to no service.")


def _dns_names(platform: Any, services: Mapping[str, Any],
               fail: Callable[[list[str], str], None]) -> None:
    grants = ownership.granted(platform.grants.dns_names)
    for name, svc in services.items():
        tls = svc.spec.tls
        for i, dns in enumerate(tls.extra_dns_names if tls is not None else ()):
            owner = ownership.dns_name_owner(dns, name, svc.namespace, grants)
            if owner == name:
                continue
            inside = ownership.cluster_name_namespace(dns) is not None
            fail(["services", name, "tls", "extra_dns_names", str(i)],
                 f"the name is {_owner(owner)}'s, not service {name}'s: its PKI role would let "
                 "it obtain certificates for it. Fix: " + (
                     "list only names in the service's own namespace "
                     f"(`<name>.{svc.namespace}.svc`)." if inside else
                     "remove it, or ask the platform team to grant it to this service "
                     "(platform.grants.dns_names)."))
