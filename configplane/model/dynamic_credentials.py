"""Short-lived PostgreSQL logins from Vault's database secrets engine: names, the SQL Vault
runs for a service's role, the ESO objects that deliver a login, and the checks `source:
dynamic` and `platform.database` must pass. Plain Python, no resources.

Vault fills in `{{name}}`, `{{password}}` and `{{expiration}}` each time it creates a login; a
login can do what its grants list (a closed set of table privileges) and nothing else, and
Vault drops it when its lease ends.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from configplane import ownership
from configplane.contract import MAX_NAME_LENGTH
from configplane.durations import eso_interval, seconds
from configplane.model.document import DatabaseEngineSettings, Grant, Platform, SecretSpec, Service

GENERATORS_API = "generators.external-secrets.io/v1alpha1"
AUDIENCE = "vault"  # the token audience ESO asks for, and the only one the role accepts
# Role attributes a generated login must never carry (the pack checks the same list:
# policies/dynamic_credentials.py; tests/pki/test_dynamic_plan.py pins the copy).
ROLE_ATTRIBUTES = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"
MAX_TTL_CEILING = 768 * 3600  # Vault's own default system max lease (32 days)
MIN_TTL = 300


def database_mount(environment: str, settings: DatabaseEngineSettings) -> str:
    return ownership.database_mount(environment, settings.mount)


def _ident(name: str) -> str:
    """A double-quoted identifier (the model allows only [a-z0-9_] names, quoting is for
    Vault's `{{name}}`, which contains '-')."""
    return '"' + name.replace('"', '""') + '"'


def _tables(grant: Grant) -> str:
    return ", ".join(f"{_ident(grant.schema_)}.{_ident(t)}" for t in grant.tables)


def creation_statements(dbname: str, grants: Sequence[Grant]) -> list[str]:
    """A login role that expires with its lease, with exactly the declared privileges."""
    statements = [
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
        f"VALID UNTIL '{{{{expiration}}}}' {ROLE_ATTRIBUTES};",
        f'GRANT CONNECT ON DATABASE {_ident(dbname)} TO "{{{{name}}}}";',
    ]
    for schema in dict.fromkeys(g.schema_ for g in grants):
        statements.append(f'GRANT USAGE ON SCHEMA {_ident(schema)} TO "{{{{name}}}}";')
    for grant in grants:
        privileges = ", ".join(dict.fromkeys(grant.privileges))
        statements.append(f'GRANT {privileges} ON TABLE {_tables(grant)} TO "{{{{name}}}}";')
    return statements


def revocation_statements(dbname: str, grants: Sequence[Grant]) -> list[str]:
    """End the login's sessions, take back what was granted, drop the role."""
    statements = [
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';"
    ]
    for grant in grants:
        statements.append(f'REVOKE ALL PRIVILEGES ON TABLE {_tables(grant)} FROM "{{{{name}}}}";')
    for schema in dict.fromkeys(g.schema_ for g in grants):
        statements.append(f'REVOKE USAGE ON SCHEMA {_ident(schema)} FROM "{{{{name}}}}";')
    statements.append(f'REVOKE CONNECT ON DATABASE {_ident(dbname)} FROM "{{{{name}}}}";')
    statements.append('DROP ROLE IF EXISTS "{{name}}";')
    return statements


@dataclass(frozen=True)
class DynamicModel:
    """One `source: dynamic` secret of one service."""

    service: str
    key: str
    environment: str
    namespace: str
    mount: str
    connection: str
    dbname: str
    username_key: str
    grants: tuple[Grant, ...]
    default_ttl: int
    max_ttl: int
    refresh_interval: str

    @property
    def role_name(self) -> str:
        """The Vault database role."""
        return ownership.database_role_name(self.service, self.key)

    @property
    def creds_path(self) -> str:
        return f"{self.mount}/creds/{self.role_name}"

    @property
    def secret_name(self) -> str:
        """The Kubernetes Secret ESO writes (username and password)."""
        return ownership.dynamic_secret_name(self.service, self.key)

    @property
    def generator_name(self) -> str:
        return self.secret_name

    def creation_statements(self) -> list[str]:
        return creation_statements(self.dbname, self.grants)

    def revocation_statements(self) -> list[str]:
        return revocation_statements(self.dbname, self.grants)

    def generator_spec(self, vault_address: str, kubernetes_auth_path: str, auth_role: str,
                       service_account: str) -> dict:
        return {
            "path": self.creds_path,
            "method": "GET",
            "resultType": "Data",
            "provider": {
                "server": vault_address,
                "auth": {"kubernetes": {
                    "mountPath": kubernetes_auth_path,
                    "role": auth_role,
                    "serviceAccountRef": {"name": service_account, "audiences": [AUDIENCE]},
                }},
            },
        }

    def external_secret_spec(self, labels: Mapping[str, str]) -> dict:
        return {
            # A new login each interval; the previous one lives on until its lease ends, so
            # pods that re-read the mounted Secret have at least half the TTL to switch.
            "refreshInterval": self.refresh_interval,
            "target": {
                "name": self.secret_name,
                "creationPolicy": "Owner",
                "template": {
                    "metadata": {"labels": dict(labels)},
                    "data": {self.username_key: "{{ .username }}", self.key: "{{ .password }}"},
                },
            },
            "dataFrom": [{"sourceRef": {"generatorRef": {
                "apiVersion": GENERATORS_API, "kind": "VaultDynamicSecret",
                "name": self.generator_name,
            }}}],
        }


def policy_hcl(plans: Sequence[DynamicModel]) -> str:
    """Read the service's own creds endpoints, nothing else."""
    return "\n".join(f'path "{p.creds_path}" {{\n  capabilities = ["read"]\n}}\n' for p in plans)


def refresh_interval(settings: DatabaseEngineSettings) -> str:
    if settings.refresh_interval:
        return settings.refresh_interval
    return eso_interval(max(60, seconds(settings.default_ttl) // 3 // 60 * 60))


def dynamic_models(service: str, namespace: str, platform: Platform,
                  secrets: Mapping[str, SecretSpec]) -> list[DynamicModel]:
    settings = platform.database
    plans = []
    for key, spec in sorted(secrets.items()):
        if spec.source != "dynamic" or spec.dynamic is None or settings is None:
            continue
        connection = settings.connections[spec.dynamic.connection]
        plans.append(DynamicModel(
            service=service, key=key, environment=platform.environment, namespace=namespace,
            mount=database_mount(platform.environment, settings),
            connection=spec.dynamic.connection, dbname=connection.dbname,
            username_key=spec.dynamic.username_key, grants=tuple(spec.dynamic.grants),
            default_ttl=seconds(settings.default_ttl), max_ttl=seconds(settings.max_ttl),
            refresh_interval=refresh_interval(settings),
        ))
    return plans


# --- validation ---------------------------------------------------------------------------


def problems(platform: Platform, services: Mapping[str, Service]) -> Iterator[tuple[list[str], str]]:
    """(key path, message with its fix) for `platform.database` and `source: dynamic`."""
    settings = platform.database
    if settings is not None:
        yield from _engine_problems(settings)
    for name, svc in services.items():
        for key, spec in svc.secrets.items():
            path = ["services", name, "secrets", key]
            if spec.source != "dynamic":
                if spec.dynamic is not None:
                    yield [*path, "dynamic"], ("`dynamic` is only for source dynamic. Fix: "
                                               "remove it or set source: dynamic.")
                continue
            yield from _secret_problems(path, name, key, svc, spec, settings)


def _engine_problems(settings: DatabaseEngineSettings) -> Iterator[tuple[list[str], str]]:
    base = ["platform", "database"]
    try:
        default, maximum = seconds(settings.default_ttl), seconds(settings.max_ttl)
    except ValueError:
        return
    if default < MIN_TTL:
        yield [*base, "default_ttl"], ("under 5m a login expires before pods can use it. Fix: "
                                       "use at least 5m (1h is usual).")
    if default > maximum:
        yield [*base, "default_ttl"], (f"default_ttl {settings.default_ttl} exceeds max_ttl "
                                       f"{settings.max_ttl}. Fix: shorten it.")
    if maximum > MAX_TTL_CEILING:
        yield [*base, "max_ttl"], ("longer than Vault's system maximum (768h); a login this "
                                   "long-lived is a static password. Fix: shorten it.")
    if settings.refresh_interval and seconds(settings.refresh_interval) * 2 >= default:
        yield [*base, "refresh_interval"], (
            f"refresh_interval {settings.refresh_interval} is not under half of default_ttl "
            f"{settings.default_ttl}: pods would hold logins about to expire. Fix: shorten it "
            "or remove it (default: a third of default_ttl).")


def _secret_problems(path: list[str], service: str, key: str, svc: Service, spec: SecretSpec,
                     settings: DatabaseEngineSettings | None) -> Iterator[tuple[list[str], str]]:
    if spec.store != "vault":
        yield [*path, "store"], ("dynamic logins come from Vault's database engine. Fix: set "
                                 "store: vault.")
    for attr in ("database", "rotation"):
        if getattr(spec, attr) is not None:
            yield [*path, attr], (f"`{attr}` is for static passwords rotated in Secrets "
                                  "Manager; a dynamic login is never rotated, it expires. Fix: "
                                  "remove it.")
    if spec.dynamic is None:
        yield [*path, "dynamic"], ("source dynamic needs `dynamic` (connection, grants). Fix: "
                                   "add it.")
        return
    if settings is None:
        yield [*path, "dynamic", "connection"], (
            "this environment has no database engine. Fix: add platform.database with the "
            "connection, or use another source here.")
    elif spec.dynamic.connection not in settings.connections:
        known = ", ".join(sorted(settings.connections)) or "none"
        yield [*path, "dynamic", "connection"], (
            f"unknown connection `{spec.dynamic.connection}`. Fix: use one of {known} or add it "
            "to platform.database.connections.")
    username_key = spec.dynamic.username_key
    if username_key == key or username_key in svc.secrets or username_key in svc.config:
        yield [*path, "dynamic", "username_key"], (
            f"`{username_key}` is already used by this service. Fix: choose another key.")
    if len(ownership.dynamic_secret_name(service, key)) > MAX_NAME_LENGTH:
        yield path, (f"the Secret name would exceed {MAX_NAME_LENGTH} characters. Fix: shorten "
                     "the key.")
    seen: set[tuple[str, str]] = set()
    for i, grant in enumerate(spec.dynamic.grants):
        for table in grant.tables:
            if (grant.schema_, table) in seen:
                yield [*path, "dynamic", "grants", str(i), "tables"], (
                    f"{grant.schema_}.{table} appears in more than one grant. Fix: merge the "
                    "grants.")
            seen.add((grant.schema_, table))
