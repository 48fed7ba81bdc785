"""The PostgreSQL strategies against a real server: rotations by hand and through
rotate-secret, role membership, the AWSPREVIOUS fallback, faults with retries, a server
that refuses connections, and refusals that protect a working credential."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import handler
import pg8000.native
import pytest
import rotation_postgres
from rotation_helpers import STEPS, canary

ident, literal = pg8000.native.identifier, pg8000.native.literal
SINGLE, ALTERNATING = "postgres-single-user", "postgres-alternating-users"


@dataclass
class DbSecret:
    arn: str
    user: str
    password: str
    master: str
    group: str
    table: str


@pytest.fixture
def db(aws, pg):
    """Makes a secret for a fresh login role (in a group, granted a table), with a master
    role that may create roles; each test gets its own names."""

    def make(strategy: str, user: str | None = None) -> DbSecret:
        suffix = uuid.uuid4().hex[:8]
        user = user or f"app_{suffix}"
        master, group, table = f"master_{suffix}", f"readers_{suffix}", f"t_{suffix}"
        password, master_password = canary(), canary()
        conn = pg.admin()
        conn.run(f"CREATE ROLE {ident(master)} LOGIN CREATEROLE PASSWORD {literal(master_password)}")
        conn.run(f"CREATE ROLE {ident(group)}")
        conn.run(f"CREATE ROLE {ident(user)} LOGIN PASSWORD {literal(password)} "
                 f"IN ROLE {ident(group)}")
        conn.run(f"GRANT {ident(user)} TO {ident(master)} WITH ADMIN OPTION")
        conn.run(f"CREATE TABLE {ident(table)} (x int)")
        conn.run(f"GRANT SELECT ON {ident(table)} TO {ident(user)}")
        conn.close()
        master_arn = aws.create_secret(json.dumps({
            "engine": "postgres", "host": pg.host, "port": pg.port, "username": master,
            "password": master_password}))
        document = {"engine": "postgres", "host": pg.host, "port": pg.port, "username": user,
                    "password": password, "dbname": "postgres"}
        if strategy == ALTERNATING:
            document["masterarn"] = master_arn
        return DbSecret(aws.create_secret(json.dumps(document), strategy), user, password,
                        master, group, table)

    return make


def creds(aws, arn: str, stage: str = "AWSCURRENT") -> tuple[str, str]:
    document = json.loads(aws.value(arn, stage))
    return document["username"], document["password"]


def memberships(pg, role: str) -> set[str]:
    conn = pg.admin()
    rows = conn.run("SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
                    "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = :role", role=role)
    conn.close()
    return {row[0] for row in rows}


def role_exists(pg, role: str) -> bool:
    conn = pg.admin()
    found = bool(conn.run("SELECT 1 FROM pg_roles WHERE rolname = :role", role=role))
    conn.close()
    return found


def set_password_as_admin(pg, role: str, password: str) -> None:
    conn = pg.admin()
    conn.run(f"ALTER ROLE {ident(role)} PASSWORD {literal(password)}")
    conn.close()


def assert_db_agrees(aws, pg, arn: str) -> None:
    assert pg.can_login(*creds(aws, arn)), "the database refuses AWSCURRENT"


# --- single user ---------------------------------------------------------------------------


def test_single_user_by_hand(aws, pg, db):
    secret = db(SINGLE)
    first = aws.current_version(secret.arn)
    token = aws.start(secret.arn)
    aws.run_steps(secret.arn, token)

    assert aws.stages(secret.arn) == {first: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    user, password = creds(aws, secret.arn)
    assert user == secret.user and password != secret.password
    assert pg.can_login(user, password)
    assert not pg.can_login(secret.user, secret.password)


def test_single_user_by_rotate_secret_twice_with_a_quoted_name(aws, pg, db):
    secret = db(SINGLE, user=f"o'brien \"{uuid.uuid4().hex[:6]}\"; DROP ROLE x; --")
    first = aws.current_version(secret.arn)
    second = aws.rotate(secret.arn)
    third = aws.rotate(secret.arn)
    assert aws.errors == []
    assert aws.stages(secret.arn) == {second: ["AWSPREVIOUS"], third: ["AWSCURRENT"]}
    assert first not in aws.stages(secret.arn)
    assert_db_agrees(aws, pg, secret.arn)
    for old in (secret.password, creds(aws, secret.arn, "AWSPREVIOUS")[1]):
        assert not pg.can_login(secret.user, old)


def test_single_user_falls_back_to_previous(aws, pg, db):
    """The database went back to the AWSPREVIOUS password (a restore): rotation still works."""
    secret = db(SINGLE)
    aws.rotate(secret.arn)
    set_password_as_admin(pg, secret.user, secret.password)  # AWSPREVIOUS again
    assert not pg.can_login(*creds(aws, secret.arn))
    token = aws.rotate(secret.arn)
    assert aws.errors == []
    assert aws.current_version(secret.arn) == token
    assert_db_agrees(aws, pg, secret.arn)
    assert not pg.can_login(secret.user, secret.password)


def test_password_never_reaches_the_server_in_plaintext(aws, pg, db):
    """The server logs every statement here (log_statement=all); the leak check reads its
    log after each test. This test makes the point explicit for the ALTER ROLE."""
    secret = db(SINGLE)
    aws.rotate(secret.arn)
    _, password = creds(aws, secret.arn)
    log = pg.log.read_text(errors="replace")
    assert f"ALTER ROLE {ident(secret.user)} WITH PASSWORD 'SCRAM-SHA-256$4096:" in log
    assert password not in log


# --- alternating users ---------------------------------------------------------------------


def test_alternating_users_two_rotations(aws, pg, db):
    secret = db(ALTERNATING)
    clone = secret.user + "_clone"
    first = aws.current_version(secret.arn)
    token = aws.start(secret.arn)
    aws.run_steps(secret.arn, token)

    assert aws.stages(secret.arn) == {first: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    user, password = creds(aws, secret.arn)
    assert user == clone and pg.can_login(clone, password)
    assert pg.can_login(secret.user, secret.password)  # AWSPREVIOUS still works
    assert memberships(pg, clone) == {secret.user}
    assert memberships(pg, secret.user) == {secret.group}
    conn = pg.connect(clone, password)  # the clone holds the user's privileges
    assert conn.run(f"SELECT count(*) FROM {ident(secret.table)}") == [[0]]
    assert conn.run("SELECT pg_has_role(:g, 'USAGE')", g=secret.group) == [[True]]
    conn.close()

    third = aws.rotate(secret.arn)
    assert aws.errors == []
    assert aws.stages(secret.arn) == {token: ["AWSPREVIOUS"], third: ["AWSCURRENT"]}
    user, new_password = creds(aws, secret.arn)
    assert user == secret.user and pg.can_login(user, new_password)
    assert not pg.can_login(secret.user, secret.password)
    assert pg.can_login(clone, password)  # AWSPREVIOUS, the clone, still works
    assert memberships(pg, clone) == {secret.user}


def test_alternating_refuses_when_current_does_not_log_in(aws, pg, db, leaks):
    """The master's power is used only for a secret that holds a working credential."""
    secret = db(ALTERNATING)
    set_password_as_admin(pg, secret.user, canary())
    token = aws.start(secret.arn)
    aws.step(secret.arn, token, "createSecret")
    leaks.refused(aws.step, secret.arn, token, "setSecret",
                  match=r"cannot log in as .* with AWSCURRENT \(SQLSTATE 28P01\); "
                        "nothing was changed")
    assert not role_exists(pg, secret.user + "_clone")


def test_alternating_refuses_a_master_on_another_server(aws, pg, db, leaks):
    secret = db(ALTERNATING)
    document = json.loads(aws.value(secret.arn))
    aws.sm.put_secret_value(SecretId=document["masterarn"], SecretString=json.dumps({
        "engine": "postgres", "host": "10.0.0.9", "port": pg.port, "username": secret.master,
        "password": canary()}))
    token = aws.start(secret.arn)
    aws.step(secret.arn, token, "createSecret")
    leaks.refused(aws.step, secret.arn, token, "setSecret",
                  match="names another server than AWSCURRENT")
    assert not role_exists(pg, secret.user + "_clone")


def test_pending_for_another_database_is_refused(aws, pg, db, leaks):
    secret = db(SINGLE)
    token = aws.start(secret.arn)
    document = json.loads(aws.value(secret.arn))
    document.update(host="localhost", password=canary())
    aws.sm.put_secret_value(SecretId=secret.arn, ClientRequestToken=token,
                            SecretString=json.dumps(document), VersionStages=["AWSPENDING"])
    leaks.add(json.dumps(document))
    aws.step(secret.arn, token, "createSecret")
    leaks.refused(aws.step, secret.arn, token, "setSecret",
                  match="AWSPENDING names another database than AWSCURRENT")
    assert pg.can_login(secret.user, secret.password)


@pytest.mark.parametrize(("document", "message"), [
    ({"engine": "mysql"}, 'must have "engine": "postgres"'),
    ({"password": None}, "lacks password"),
    ({"port": "5432x"}, "has a port that is not a number"),
    ({"ssl": "maybe"}, 'has an "ssl" that is not true or false'),
])
def test_malformed_database_secrets_are_refused(aws, pg, db, leaks, document, message):
    secret = db(SINGLE)
    value = {**json.loads(aws.value(secret.arn)), **document}
    aws.sm.put_secret_value(SecretId=secret.arn, SecretString=json.dumps(value))
    token = aws.start(secret.arn)
    leaks.refused(aws.step, secret.arn, token, "createSecret", match=message)


def test_alternating_needs_masterarn(aws, pg, db, leaks):
    secret = db(SINGLE)
    aws.sm.tag_resource(SecretId=secret.arn,
                        Tags=[{"Key": handler.STRATEGY_TAG, "Value": ALTERNATING}])
    token = aws.start(secret.arn)
    leaks.refused(aws.step, secret.arn, token, "createSecret", match="lacks masterarn")


def test_clone_name_too_long_is_refused(aws, pg, db, leaks):
    secret = db(ALTERNATING, user="u" * 58 + uuid.uuid4().hex[:4])
    token = aws.start(secret.arn)
    leaks.refused(aws.step, secret.arn, token, "createSecret",
                  match="exceeds PostgreSQL's 63-byte name limit")


# --- faults and retries --------------------------------------------------------------------


def _crash(monkeypatch, target, name: str, *, run_first: bool) -> None:
    """Make ``target.name`` (or ``target[name]``) raise, after doing its work or instead."""
    original = target[name] if isinstance(target, dict) else getattr(target, name)

    def crash(*args, **kwargs):
        if run_first:
            original(*args, **kwargs)
        raise RuntimeError("the function was stopped")
    if isinstance(target, dict):
        monkeypatch.setitem(target, name, crash)
    else:
        monkeypatch.setattr(target, name, crash)


# The function dies after a step's work (the test's Lambda runtime, Aws.crash_after).
AFTER_STEP = "the Lambda runtime"

# (strategy, where the crash hits, what it patches, whether the patched call completes first)
FAULTS = [
    *[(strategy, f"after {step}", AFTER_STEP, step, True)
      for strategy in (SINGLE, ALTERNATING) for step in STEPS],
    (SINGLE, "after ALTER ROLE, before setSecret returns", rotation_postgres, "set_password",
     True),
    (ALTERNATING, "after COMMIT, before setSecret returns", rotation_postgres,
     "ensure_login_role", True),
    (ALTERNATING, "after CREATE ROLE, before GRANT and COMMIT", rotation_postgres,
     "grant_membership", False),
]


@pytest.mark.parametrize(("strategy", "fault", "target", "name", "run_first"), FAULTS,
                         ids=[f"{s}-{f}" for s, f, *_ in FAULTS])
def test_fault_then_retry_ends_with_a_working_credential(aws, pg, db, monkeypatch, strategy,
                                                         fault, target, name, run_first):
    secret = db(strategy)
    first = aws.current_version(secret.arn)
    with monkeypatch.context() as patch:
        if target is AFTER_STEP:
            aws.crash_after = name
        else:
            _crash(patch, target, name, run_first=run_first)
        token = aws.rotate(secret.arn)
        aws.crash_after = None
    messages = [str(e) for e in aws.new_errors]
    if target is AFTER_STEP:
        assert messages == ["the function was stopped"]
    else:  # inside the handler: its boundary reports the type and the place, no value
        assert [m.rsplit(": ", 1)[1] for m in messages] == [
            "unexpected RuntimeError at test_rotation_postgres.py:"
            f"{_crash.__code__.co_firstlineno + 7}"]
    # Whatever happened, a credential in the secret still opens the database.
    if name == "finishSecret":
        assert aws.current_version(secret.arn) == token
        assert_db_agrees(aws, pg, secret.arn)
    else:
        assert aws.current_version(secret.arn) == first  # not promoted before it worked
        pending = json_creds(aws.value(secret.arn, "AWSPENDING", token))
        assert pg.can_login(*creds(aws, secret.arn)) or pg.can_login(*pending)
    if name == "grant_membership":  # the transaction was rolled back
        assert not role_exists(pg, secret.user + "_clone")

    aws.run_steps(secret.arn, token)  # the retry Secrets Manager makes

    assert aws.stages(secret.arn) == {first: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    assert_db_agrees(aws, pg, secret.arn)
    if strategy == SINGLE:
        assert not pg.can_login(secret.user, secret.password)
    else:
        assert pg.can_login(secret.user, secret.password)  # AWSPREVIOUS keeps working
        assert memberships(pg, secret.user + "_clone") == {secret.user}


def json_creds(value: str) -> tuple[str, str]:
    document = json.loads(value)
    return document["username"], document["password"]


@pytest.mark.parametrize("strategy", [SINGLE, ALTERNATING])
def test_database_refusing_connections_leaves_current_untouched(aws, pg, db, leaks, strategy):
    secret = db(strategy)
    first = aws.current_version(secret.arn)
    token = aws.start(secret.arn)
    aws.step(secret.arn, token, "createSecret")
    pg.stop()
    try:
        error = leaks.refused(aws.step, secret.arn, token, "setSecret",
                              match=r"cannot log in .*cannot connect.*nothing was changed")
        assert "AWSCURRENT" in str(error)
        assert aws.stages(secret.arn) == {first: ["AWSCURRENT"],
                                          token: ["AWSPENDING", handler.ROTATING]}
        assert aws.value(secret.arn) == aws.value(secret.arn, "AWSCURRENT", first)
    finally:
        pg.start()
    assert pg.can_login(secret.user, secret.password)
    aws.run_steps(secret.arn, token)  # Secrets Manager's retry, once the database is back
    assert aws.stages(secret.arn) == {first: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    assert_db_agrees(aws, pg, secret.arn)


def test_scram_verifier_is_what_postgres_stores(pg):
    """A verifier made here logs in like a password PostgreSQL hashed itself."""
    role, password = f"v_{uuid.uuid4().hex[:8]}", canary()
    conn = pg.admin()
    conn.run(f"CREATE ROLE {ident(role)} LOGIN PASSWORD "
             f"{literal(rotation_postgres.scram_verifier(password))}")
    stored = conn.run("SELECT rolpassword FROM pg_authid WHERE rolname = :r", r=role)[0][0]
    conn.close()
    assert stored.startswith("SCRAM-SHA-256$4096:")
    assert pg.can_login(role, password) and not pg.can_login(role, password + "x")
