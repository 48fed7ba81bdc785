"""The planned database role's SQL against a real PostgreSQL server, run as Vault runs it.

Vault does not run here. What stands in for it: the planned `creation_statements` and
`revocation_statements` (taken from the plan's SecretBackendRole inputs), templated as Vault's
postgresql-database-plugin does (`{{name}}`, `{{password}}`, `{{expiration}}` replaced,
split on `;`, run in one transaction by the connection's root login), with a username and
password of the shape Vault's default templates make. The server is the throwaway cluster of
tests/rotation (CI must run these; they never skip when CI=true).
"""

from __future__ import annotations

import datetime
import itertools
import secrets
import string
import time

import pg8000.native
import pytest

from configplane.model import Grant, creation_statements, revocation_statements
from tests.conftest import REPO
from tests.pki.conftest import APP_TABLES, by_name, plan_of

DB = "shop"
INSUFFICIENT_PRIVILEGE = "42501"


def vault_username(role: str) -> str:
    """Vault's default postgres username template:
    v-{{.DisplayName | truncate 8}}-{{.RoleName | truncate 8}}-{{random 20}}-{{unix_time}},
    truncated to 63 characters."""
    rand = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(20))
    return f"v-kubernet-{role[:8]}-{rand}-{int(time.time())}"[:63]


def vault_password() -> str:
    """Vault's default password policy: 20 characters, letters, digits and '-'."""
    alphabet = string.ascii_letters + string.digits + "-"
    return "A1a-" + "".join(secrets.choice(alphabet) for _ in range(16))


def vault_expiration(ttl: int) -> str:
    """Go's "2006-01-02 15:04:05-0700", as the plugin formats the lease's expiry."""
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=ttl)
    return moment.strftime("%Y-%m-%d %H:%M:%S%z")


def render(statements: list[str], name: str, password: str, expiration: str) -> list[str]:
    out = []
    for statement in statements:
        text = (statement.replace("{{name}}", name).replace("{{username}}", name)
                .replace("{{password}}", password).replace("{{expiration}}", expiration))
        out += [q.strip() for q in text.split(";") if q.strip()]
    return out


def connect(server, user: str, password: str, database: str = DB) -> pg8000.native.Connection:
    return pg8000.native.Connection(user=user, password=password, host=server.host,
                                    port=server.port, database=database, ssl_context=False,
                                    timeout=5)


ROOT_USER = "vault_admin"
ROOT_PASSWORD = "root-" + secrets.token_urlsafe(18)


def run_as_vault(server, queries: list[str]) -> None:
    """The plugin runs a role's statements in one transaction as the connection's root login
    (here, as documented: CREATEROLE, not a superuser)."""
    conn = connect(server, ROOT_USER, ROOT_PASSWORD)
    try:
        conn.run("BEGIN")
        for query in queries:
            conn.run(query)
        conn.run("COMMIT")
    finally:
        conn.close()


def denied(conn, query: str) -> bool:
    try:
        conn.run(query)
    except pg8000.native.DatabaseError as e:  # autocommit: nothing to roll back
        return e.args[0].get("C") == INSUFFICIENT_PRIVILEGE
    return False


@pytest.fixture(scope="module")
def shop(postgres_server):
    """The sample `shop` database: the granted tables and one that is not granted."""
    admin = postgres_server.admin()
    admin.run(f'DROP DATABASE IF EXISTS "{DB}"')
    admin.run(f"DROP ROLE IF EXISTS {ROOT_USER}")
    admin.run(f'CREATE DATABASE "{DB}"')
    admin.close()
    conn = connect(postgres_server, postgres_server.superuser, postgres_server.superpassword)
    conn.run("SET log_statement = 'none'")  # the root login's password is set below
    for statement in (
        *APP_TABLES,
        # Vault's root login as docs/certificates.md asks for it: no superuser
        f"CREATE ROLE {ROOT_USER} WITH LOGIN CREATEROLE NOSUPERUSER PASSWORD '{ROOT_PASSWORD}'",
        f'GRANT CONNECT ON DATABASE "{DB}" TO {ROOT_USER} WITH GRANT OPTION',
        f"GRANT USAGE ON SCHEMA app TO {ROOT_USER} WITH GRANT OPTION",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA app TO {ROOT_USER} "
        "WITH GRANT OPTION",
        f"GRANT pg_signal_backend TO {ROOT_USER}",
        # CREATE ROLE ... PASSWORD must not reach the server log (log_statement = all here)
        f"ALTER ROLE {ROOT_USER} SET log_statement = 'none'",
    ):
        conn.run(statement)
    conn.close()
    yield postgres_server
    admin = postgres_server.admin()
    admin.run(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    admin.run(f"DROP ROLE IF EXISTS {ROOT_USER}")
    admin.close()


def planned_role() -> dict:
    return by_name(plan_of(REPO, "prod"))["api-dynamic-reporting-db-password-db-role"].inputs


def test_planned_login_does_exactly_what_was_granted_then_is_revoked(shop):
    role = planned_role()
    name, password = vault_username(role["name"]), vault_password()
    expiration = vault_expiration(int(role["defaultTtl"]))
    run_as_vault(shop, render(role["creationStatements"], name, password, expiration))

    conn = connect(shop, name, password)
    # what was granted: SELECT on app.orders and app.order_items
    assert conn.run("SELECT id FROM app.orders ORDER BY id") == [[1], [2]]
    assert conn.run("SELECT sku FROM app.order_items") == [["sku-1"]]
    # nothing more: other tables, writes, DDL, roles, databases
    assert denied(conn, "SELECT * FROM app.customers")
    assert denied(conn, "INSERT INTO app.orders VALUES (3, 1)")
    assert denied(conn, "UPDATE app.orders SET total = 0")
    assert denied(conn, "DELETE FROM app.order_items")
    assert denied(conn, "TRUNCATE app.orders")
    assert denied(conn, "CREATE TABLE app.mine (x int)")
    assert denied(conn, "CREATE TABLE public.mine (x int)")
    assert denied(conn, "CREATE ROLE intruder")
    assert denied(conn, "CREATE DATABASE intruder")
    assert denied(conn, "SELECT pg_read_file('PG_VERSION')")
    attributes = conn.run(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, "
        "rolinherit, rolvaliduntil FROM pg_roles WHERE rolname = current_user")
    *flags, valid_until = attributes[0]
    assert flags == [False] * 6
    assert valid_until == datetime.datetime.strptime(expiration, "%Y-%m-%d %H:%M:%S%z")
    assert conn.run("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = "
                    "m.member WHERE r.rolname = current_user") == [[0]]

    # revocation while the login is connected: its session ends, the login is gone
    run_as_vault(shop, render(role["revocationStatements"], name, password, expiration))
    # the server ended the session (57P01, admin shutdown), or closed the socket first
    with pytest.raises((pg8000.native.InterfaceError, pg8000.native.DatabaseError,
                        ConnectionError)) as ended:
        conn.run("SELECT 1 FROM app.orders")
    if isinstance(ended.value, pg8000.native.DatabaseError):
        assert ended.value.args[0]["C"] == "57P01"
    with pytest.raises(pg8000.native.DatabaseError) as info:
        connect(shop, name, password)
    assert info.value.args[0]["C"] == "28P01"  # password authentication failed
    admin = shop.admin()
    assert admin.run("SELECT count(*) FROM pg_roles WHERE rolname = :n", n=name) == [[0]]
    admin.close()
    log = shop.log.read_text()
    assert password not in log and ROOT_PASSWORD not in log


def test_an_expired_login_is_refused_even_if_never_revoked(shop):
    """VALID UNTIL '{{expiration}}': if revocation never ran, the server still says no."""
    role = planned_role()
    name, password = vault_username(role["name"]), vault_password()
    past = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)).strftime(
        "%Y-%m-%d %H:%M:%S%z")
    run_as_vault(shop, render(role["creationStatements"], name, password, past))
    with pytest.raises(pg8000.native.DatabaseError) as info:
        connect(shop, name, password)
    assert info.value.args[0]["C"] == "28P01"
    run_as_vault(shop, render(role["revocationStatements"], name, password, past))


PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
IDS = itertools.count(1000)
# Each probe needs its privilege only (no column is read by the writes).
PROBES = {
    "SELECT": lambda: "SELECT id FROM app.orders WHERE id = 1",
    "INSERT": lambda: f"INSERT INTO app.orders VALUES ({next(IDS)}, 1)",
    "UPDATE": lambda: "UPDATE app.orders SET total = 0 WHERE false",
    "DELETE": lambda: "DELETE FROM app.orders WHERE false",
}


SUBSETS = [c for n in range(1, len(PRIVILEGES) + 1)
           for c in itertools.combinations(PRIVILEGES, n)]


@pytest.mark.parametrize("granted", SUBSETS, ids=lambda g: "+".join(g))
def test_each_privilege_works_exactly_when_granted(shop, granted):
    grants = [Grant.model_validate({"schema": "app", "tables": ["orders"],
                                    "privileges": list(granted)})]
    name, password = vault_username("probe"), vault_password()
    expiration = vault_expiration(600)
    run_as_vault(shop, render(creation_statements(DB, grants), name, password, expiration))
    conn = connect(shop, name, password)
    try:
        for privilege in PRIVILEGES:
            refused = denied(conn, PROBES[privilege]())
            assert refused == (privilege not in granted), privilege
        assert denied(conn, "SELECT * FROM app.order_items")  # another table
    finally:
        conn.close()
        run_as_vault(shop, render(revocation_statements(DB, grants), name, password, expiration))
    with pytest.raises(pg8000.native.DatabaseError):
        connect(shop, name, password)
