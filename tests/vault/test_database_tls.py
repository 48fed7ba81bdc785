"""The planned database connection verifies the server's certificate (sslmode=verify-full)
against the declared CA, on a PostgreSQL server with TLS whose CA is in no trust store, as
RDS's is. The dev stack is planned with that server's CA as `ssl_root_cert`; the file the plan
names on Vault's servers (`ssl_root_cert_file`) is a local file holding the same bundle."""

from __future__ import annotations

import copy
import dataclasses
import itertools

import pytest

from configplane.offline import run_plan
from configplane.redaction import is_secret_wrapper
from tests.catalog_compat import edit_stack
from tests.pki.conftest import SECURE
from tests.projects import copy_project
from tests.vault.applier import Applier, vault_resources
from tests.vault.conftest import new_server

CONNECTION = "vault:database/secretBackendConnection:SecretBackendConnection"
_runs = itertools.count()


@pytest.fixture(scope="module")
def tls_plan(tmp_path_factory, tls_postgres):
    project = copy_project(tmp_path_factory.mktemp("tls") / "project")
    edit_stack(project, "dev", lambda c: c["configplane:platform"]["database"]["connections"][
        "shop"].update(ssl_root_cert=tls_postgres.ca_pem))
    plan = run_plan(project, "dev", one_stack=True, secure_values=SECURE)
    (connection,) = [r for r in plan.resources if r.type == CONNECTION]
    postgresql = connection.inputs["postgresql"]
    settings = postgresql["value"] if is_secret_wrapper(postgresql) else postgresql
    assert "sslmode=verify-full" in settings["connectionUrl"]
    assert settings["tlsCa"] == tls_postgres.ca_pem
    return vault_resources(plan)


def connect(resources, tls_postgres, tmp_path, ca_file_text: str | None):
    """Apply the resources with the planned CA file holding `ca_file_text` (None: no file
    in the URL at all); returns the error Vault answered, or None when it connected."""
    run = next(_runs)
    (tmp_path / "ca.pem").write_text(ca_file_text or "")
    if ca_file_text is None:
        resources = [without_root_cert_file(r) for r in resources]
    server = new_server()
    try:
        applier = Applier(server, database=dataclasses.replace(
            tls_postgres.root_login(f"vault_admin_tls{run}"), host="localhost", tls=True,
            files={"/vault/userconfig/database-ca/shop.pem": str(tmp_path / "ca.pem")}))
        try:
            applier.apply_all(resources)  # verify_connection: Vault connects right away
        except RuntimeError as exc:
            return str(exc)
        creds = server.call("GET", "dev-database/creds/api-reporting-db-password")["data"]
        conn = tls_postgres.connect(creds["username"], creds["password"])
        assert conn.run("SELECT count(*) FROM app.orders") == [[2]]
        conn.close()
        return None
    finally:
        server.stop()


def without_root_cert_file(resource):
    if resource.type != CONNECTION:
        return resource
    inputs = copy.deepcopy(dict(resource.inputs))
    settings = inputs["postgresql"]["value"]
    url = settings["connectionUrl"]
    settings["connectionUrl"] = url[:url.index("&sslrootcert=")]
    return dataclasses.replace(resource, inputs=inputs)


def test_the_planned_connection_verifies_the_server_with_the_declared_ca(tls_plan, tls_postgres,
                                                                         tmp_path):
    assert connect(tls_plan, tls_postgres, tmp_path, tls_postgres.ca_pem) is None


def test_another_ca_is_refused(tls_plan, tls_postgres, tmp_path):
    error = connect(tls_plan, tls_postgres, tmp_path, tls_postgres.other_ca_pem)
    assert error is not None and "x509" in error, error


def test_openbao_ignores_tls_ca_so_the_file_is_needed(tls_plan, tls_postgres, tmp_path):
    """The plan also sends the CA as `tls_ca` (HashiCorp Vault's plugin reads it); OpenBao's
    does not, so without `sslrootcert` it cannot verify the server: why the stacks set
    ssl_root_cert_file."""
    error = connect(tls_plan, tls_postgres, tmp_path, None)
    assert error is not None and "x509" in error, error
