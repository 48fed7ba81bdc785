"""The database engine on the real PostgreSQL, KV versions and rollback, and the audit log,
on the sample stacks applied to the real server."""

from __future__ import annotations

import datetime
import json

import pg8000.native
import pytest

from tests.conftest import STACKS
from tests.pki.conftest import ROOT_CANARY
from tests.vault.probes import DB_ROLE, KV_SECRET, login

INSUFFICIENT_PRIVILEGE = "42501"


def db_role(a):
    (role,) = [r for r in a.plan.resources if r.type == DB_ROLE]
    return role


def denied(conn, query: str) -> bool:
    try:
        conn.run(query)
    except pg8000.native.DatabaseError as e:
        return e.args[0].get("C") == INSUFFICIENT_PRIVILEGE
    return False


def login_findings(a, shop_db, creds_path: str, token: str | None) -> list[str]:
    """A login from the engine does exactly the granted SELECTs, expires with its lease, and
    is gone once the lease is revoked."""
    secret = a.server.call("GET", creds_path, token=token)
    username, password = secret["data"]["username"], secret["data"]["password"]
    findings = []
    conn = shop_db.connect(username, password)
    if conn.run("SELECT count(*) FROM app.orders") != [[2]]:
        findings.append("cannot read app.orders")
    for query in ("SELECT * FROM app.customers", "INSERT INTO app.orders VALUES (3, 1)",
                  "CREATE TABLE app.x (id int)"):
        if not denied(conn, query):
            findings.append(f"allowed: {query}")
    conn.close()
    admin = shop_db.admin()
    ((valid_until, superuser, createrole),) = admin.run(
        "SELECT rolvaliduntil, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = :n",
        n=username)
    lease_end = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
        seconds=secret["lease_duration"])
    if valid_until is None or abs((valid_until - lease_end).total_seconds()) > 120:
        findings.append(f"VALID UNTIL {valid_until} is not the lease's end {lease_end}")
    if superuser or createrole:
        findings.append("the login has role attributes")
    a.server.call("PUT", "sys/leases/revoke", {"lease_id": secret["lease_id"]})
    if admin.run("SELECT 1 FROM pg_roles WHERE rolname = :n", n=username):
        findings.append("the login survives the revocation of its lease")
    admin.close()
    try:
        shop_db.connect(username, password).close()
        findings.append("the revoked login still logs in")
    except pg8000.native.DatabaseError:
        pass
    return findings


@pytest.mark.parametrize("stack", STACKS)
def test_the_engine_issues_exactly_the_granted_login(applied, shop_db, stack):
    a = applied[stack]
    role = db_role(a)
    token, _ = login(a, f"kubernetes-{stack}", "api-database")
    creds = f"{role.inputs['backend']}/creds/{role.inputs['name']}"
    lease = a.server.call("GET", creds, token=token)["lease_duration"]
    assert lease == int(role.inputs["defaultTtl"])
    assert login_findings(a, shop_db, creds, token) == []


@pytest.mark.parametrize("stack", STACKS)
def test_vault_rotated_its_root_login(applied, shop_db, stack):
    """rotate-root ran: the planned initial password no longer logs in."""
    with pytest.raises(pg8000.native.DatabaseError):
        shop_db.connect(f"vault_admin_{stack}", ROOT_CANARY)


def test_a_missing_revoke_statement_is_caught(applied, shop_db):
    """Mutation: the planned role without its DROP ROLE statement."""
    a = applied["dev"]
    role = db_role(a)
    settings = a.server.call("GET", f"{role.inputs['backend']}/roles/{role.inputs['name']}")["data"]
    statements = [s for s in settings["revocation_statements"] if "DROP ROLE" not in s]
    assert len(statements) == len(settings["revocation_statements"]) - 1
    a.server.call("POST", f"{role.inputs['backend']}/config/shop", {
        "allowed_roles": [role.inputs["name"], "mutant"]})
    a.server.call("POST", f"{role.inputs['backend']}/roles/mutant",
                  {**settings, "revocation_statements": statements})
    findings = login_findings(a, shop_db, f"{role.inputs['backend']}/creds/mutant", None)
    assert "the login survives the revocation of its lease" in findings


@pytest.mark.parametrize("stack", STACKS)
def test_kv_keeps_the_planned_versions_and_rolls_back(applied, stack):
    """max_versions and cas_required as planned; a rollback (what `bao kv rollback` does:
    the old version's data written as a new version) restores the previous value, and the
    service's own token reads any kept version."""
    a = applied[stack]
    config = next(r for r in a.plan.resources if r.type == "vault:kv/secretBackendV2:SecretBackendV2")
    keep = int(config.inputs["maxVersions"])
    assert a.server.call("GET", f"{stack}-kv/config")["data"]["max_versions"] == keep
    svc = next(r for r in a.plan.resources if r.type == KV_SECRET).inputs["name"]
    # a secret below the service's own path (its policy covers `<svc>/*`), so the planned
    # secret other tests read stays as applied
    path = f"{stack}-kv/data/{svc}/versions-probe"
    for n in range(keep + 2):
        a.server.call("PUT", path, {"data": {"VALUE": f"v{n}"}})
    meta = a.server.call("GET", f"{stack}-kv/metadata/{svc}/versions-probe")["data"]
    assert len(meta["versions"]) == keep
    current = meta["current_version"]
    assert current == keep + 2
    assert a.server.request("GET", f"{path}?version=1").status_code == 404  # beyond max_versions
    token, _ = login(a, f"kubernetes-{stack}", svc)
    previous = a.server.call("GET", f"{path}?version={current - 1}", token=token)["data"]["data"]
    assert previous == {"VALUE": f"v{keep}"}
    a.server.call("PUT", path, {"data": previous, "options": {"cas": current}})  # the rollback
    now = a.server.call("GET", path, token=token)["data"]
    assert now["data"] == previous and now["metadata"]["version"] == current + 1


def test_the_audit_log_holds_only_hmacs_of_values(applied):
    """Every planned secret write is in the audit log, with its values as HMACs only."""
    values = []
    for a in applied.values():
        values += list(a.applier.generated.values()) + [ROOT_CANARY]
        for r in a.plan.resources:
            if r.type == KV_SECRET:
                values += list(json.loads(a.applier.inputs(r)["dataJsonWo"]).values())
    assert values
    for stack, a in applied.items():
        text = a.applier.audit_log(f"file-{stack}").read_text()
        entries = [json.loads(line) for line in text.splitlines()]
        writes = {e["request"]["path"] for e in entries if e["type"] == "request"
                  and e["request"]["operation"] in ("create", "update")}
        for r in a.plan.resources:
            if r.type == KV_SECRET:
                assert f"{stack}-kv/data/{r.inputs['name']}" in writes
        leaked = [v for v in values if v in text]
        assert leaked == [], f"{len(leaked)} value(s) in clear in the {stack} audit log"
        hashed = [e["request"]["data"] for e in entries if e["type"] == "request"
                  and e["request"]["path"].startswith(f"{stack}-kv/data/")
                  and e["request"].get("data")]
        assert hashed and all(json.dumps(d).count("hmac-sha256:") >= 1 for d in hashed)
