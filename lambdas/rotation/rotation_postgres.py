"""PostgreSQL strategies for the rotation function, after AWS's RDS PostgreSQL rotation
functions (SingleUser and MultiUser), with the pure-Python driver pg8000.

Where this differs from AWS's functions, and why:
- The new password reaches the server as a SCRAM-SHA-256 verifier computed here (what psql's
  ``\\password`` does), never as plaintext: a server that logs DDL (``log_statement = ddl``)
  or a failing statement (``log_min_error_statement``) then logs no password, and the
  quoted literal is plain base64, whatever the password's characters.
- TLS falls back to plain only when TLS itself fails (the server refuses it, the handshake
  fails), not after an unreachable host or a wrong password: retrying those cannot help and
  would double the time spent against the function's timeout.
- The host and port of AWSPENDING (and of AWSPREVIOUS when it is tried) must match
  AWSCURRENT's; for alternating users the master secret must name the same host and port
  (AWS also accepts an RDS read replica, which needs RDS API access this function lacks).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
from dataclasses import dataclass, field

import pg8000.native
import scramp
from handler import CURRENT, PENDING, PREVIOUS, Rotation, logger

ENGINE = "postgres"
CLONE_SUFFIX = "_clone"
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1
CONNECT_TIMEOUT = 5  # seconds; three logins must fit the function's timeout


@dataclass(frozen=True)
class Credentials:
    host: str
    port: int
    dbname: str
    username: str
    password: str = field(repr=False)
    ssl: bool | None = None  # None: try TLS, fall back to plain

    @property
    def target(self) -> tuple[str, int, str]:
        return self.host, self.port, self.dbname

    def __str__(self) -> str:
        return f"{self.username}@{self.host}:{self.port}/{self.dbname}"


def parse(rotation: Rotation, value: str | None, label: str, *, need_master: bool = False,
          is_master: bool = False) -> tuple[dict, Credentials]:
    """The JSON document of a database secret and its credentials; clear errors, no values."""
    if value is None:
        raise rotation.fail(f"the {label} has no value")
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise rotation.fail(f"the {label} is not a JSON object")
    if document.get("engine", ENGINE if is_master else None) != ENGINE:
        raise rotation.fail(f'the {label} must have "engine": "postgres"')
    missing = [key for key in ("host", "username", "password")
               if not isinstance(document.get(key), str) or not document[key]]
    if need_master and not (isinstance(document.get("masterarn"), str) and document["masterarn"]):
        missing.append("masterarn")
    if missing:
        raise rotation.fail(f"the {label} lacks {', '.join(missing)}")
    port = document.get("port", 5432)
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise rotation.fail(f"the {label} has a port that is not a number from 1 to 65535")
    dbname = document.get("dbname") or "postgres"
    use_ssl = document.get("ssl")
    if isinstance(use_ssl, str) and use_ssl.lower() in ("true", "false"):
        use_ssl = use_ssl.lower() == "true"
    if use_ssl is not None and not isinstance(use_ssl, bool):
        raise rotation.fail(f'the {label} has an "ssl" that is not true or false')
    return document, Credentials(document["host"], port, str(dbname), document["username"],
                                 document["password"], use_ssl)


# --- connections and statements -----------------------------------------------------------


def _reason(exc: BaseException) -> str:
    """Why a login failed, from codes only: server messages may quote what they were sent."""
    if isinstance(exc, pg8000.native.DatabaseError) and exc.args and isinstance(exc.args[0], dict):
        return f"SQLSTATE {exc.args[0].get('C', '?')}"
    if isinstance(exc, ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, pg8000.native.InterfaceError) and str(exc) == "Server refuses SSL":
        return "server refuses TLS"
    if isinstance(exc, OSError) or isinstance(exc.__cause__, OSError):
        return "cannot connect"
    return type(exc).__name__


def _tls_failed(exc: BaseException) -> bool:
    return isinstance(exc, ssl.SSLError) or (
        isinstance(exc, pg8000.native.InterfaceError) and str(exc) == "Server refuses SSL"
    )


def connect(creds: Credentials) -> tuple[pg8000.native.Connection | None, str]:
    """A connection, or None and the reason; never raises for a refused login."""
    contexts: list[ssl.SSLContext | bool] = []
    if creds.ssl is not False:
        contexts.append(ssl.create_default_context(cafile=os.environ.get("DB_SSL_CA_FILE") or None))
    if creds.ssl is not True:
        contexts.append(False)
    reason = ""
    for context in contexts:
        try:
            return pg8000.native.Connection(
                user=creds.username, password=creds.password, host=creds.host, port=creds.port,
                database=creds.dbname, ssl_context=context, timeout=CONNECT_TIMEOUT,
                application_name="configplane-rotation",
            ), ""
        except Exception as exc:  # noqa: BLE001 - every failure to log in is an answer, not a crash
            reason = _reason(exc)
            if not (context is not False and _tls_failed(exc)):
                break
    return None, reason


def close(conn) -> None:
    with contextlib.suppress(Exception):
        conn.close()


def scram_verifier(password: str) -> str:
    """PostgreSQL's stored form of a SCRAM-SHA-256 password (as psql's \\password makes it)."""
    salt, stored_key, server_key, iterations = scramp.ScramMechanism(
        "SCRAM-SHA-256").make_auth_info(password)
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
            f"${b64(stored_key).decode()}:{b64(server_key).decode()}")


@contextlib.contextmanager
def database_errors(rotation: Rotation, doing: str):
    """Turn driver errors into RotationError with the SQLSTATE only."""
    try:
        yield
    except (pg8000.native.DatabaseError, pg8000.native.InterfaceError, OSError) as exc:
        raise rotation.fail(f"{doing} failed ({_reason(exc)}); AWSCURRENT is unchanged") from None


def set_password(conn, role: str, password: str) -> None:
    ident, literal = pg8000.native.identifier, pg8000.native.literal
    conn.run(f"ALTER ROLE {ident(role)} WITH PASSWORD {literal(scram_verifier(password))}")


def grant_membership(conn, role: str, member: str) -> None:
    conn.run(f"GRANT {pg8000.native.identifier(role)} TO {pg8000.native.identifier(member)}")


def ensure_login_role(conn, role: str, password: str, member_of: str) -> None:
    """Set ``role``'s password, creating it as a member of ``member_of`` when missing.

    One transaction: an interruption leaves either the old state or the whole change.
    """
    ident, literal = pg8000.native.identifier, pg8000.native.literal
    conn.run("START TRANSACTION")
    if conn.run("SELECT 1 FROM pg_roles WHERE rolname = :role", role=role):
        set_password(conn, role, password)
    else:
        conn.run(f"CREATE ROLE {ident(role)} WITH LOGIN PASSWORD "
                 f"{literal(scram_verifier(password))}")
        grant_membership(conn, member_of, role)
    conn.run("COMMIT")


# --- the strategies -----------------------------------------------------------------------


class SingleUser:
    """Change the user's own password, logging in with AWSCURRENT, else AWSPREVIOUS."""

    name = "postgres-single-user"
    need_master = False

    def load(self, rotation: Rotation, stage: str, version: str | None = None):
        label = f"{stage} value" if version is None else f"{stage} value of version {version}"
        return parse(rotation, rotation.value(stage, version), label, need_master=self.need_master)

    def new_username(self, rotation: Rotation, username: str) -> str:
        return username

    def new_value(self, rotation: Rotation, current: str) -> str:
        document, creds = parse(rotation, current, "AWSCURRENT value", need_master=self.need_master)
        document["username"] = self.new_username(rotation, creds.username)
        document["password"] = rotation.random_password()
        return json.dumps(document)

    def check_pending(self, rotation: Rotation, current: Credentials, pending: Credentials):
        if pending.target != current.target:
            raise rotation.fail("AWSPENDING names another database than AWSCURRENT")
        if pending.username != self.new_username(rotation, current.username):
            raise rotation.fail(
                f"AWSPENDING names user {pending.username!r}, AWSCURRENT {current.username!r}")

    def set_secret(self, rotation: Rotation) -> None:
        _, pending = self.load(rotation, PENDING, rotation.token)
        conn, pending_reason = connect(pending)
        if conn is not None:
            close(conn)
            logger.info("setSecret: the database already accepts AWSPENDING of %s", rotation.arn)
            return
        current_document, current = self.load(rotation, CURRENT)
        self.check_pending(rotation, current, pending)
        self.apply(rotation, current_document, current, pending, pending_reason)
        logger.info("setSecret: %s now has the AWSPENDING password of %s", pending, rotation.arn)

    def apply(self, rotation: Rotation, current_document: dict, current: Credentials,
              pending: Credentials, pending_reason: str) -> None:
        reasons = [f"AWSPENDING: {pending_reason}"]
        conn, reason = connect(current)
        reasons.append(f"AWSCURRENT: {reason}")
        if conn is None:
            previous_value = rotation.value(PREVIOUS)
            if previous_value is None:
                reasons.append("AWSPREVIOUS: none")
            else:
                _, previous = parse(rotation, previous_value, "AWSPREVIOUS value")
                if (previous.target, previous.username) != (current.target, current.username):
                    reasons.append("AWSPREVIOUS: another user or database, not tried")
                else:
                    conn, reason = connect(previous)
                    reasons.append(f"AWSPREVIOUS: {reason}")
        if conn is None:
            raise rotation.fail(
                f"cannot log in to {current.host}:{current.port}/{current.dbname} as "
                f"{current.username!r} ({'; '.join(reasons)}); nothing was changed")
        try:
            with database_errors(rotation, f"ALTER ROLE {pending.username!r}"):
                set_password(conn, pending.username, pending.password)
        finally:
            close(conn)

    def test_secret(self, rotation: Rotation) -> None:
        _, pending = self.load(rotation, PENDING, rotation.token)
        conn, reason = connect(pending)
        if conn is None:
            raise rotation.fail(f"cannot log in as {pending} with AWSPENDING ({reason})")
        try:
            with database_errors(rotation, "SELECT 1 with AWSPENDING"):
                conn.run("SELECT 1")
        finally:
            close(conn)


class AlternatingUsers(SingleUser):
    """Alternate between ``<user>`` and ``<user>_clone``; the master secret sets passwords and
    creates the clone (as a member of the current user, so it holds the same privileges)."""

    name = "postgres-alternating-users"
    need_master = True

    def new_username(self, rotation: Rotation, username: str) -> str:
        if username.endswith(CLONE_SUFFIX):
            return username[: -len(CLONE_SUFFIX)]
        clone = username + CLONE_SUFFIX
        if len(clone.encode()) > MAX_IDENTIFIER_BYTES:
            raise rotation.fail(
                f"user {username!r} plus {CLONE_SUFFIX!r} exceeds PostgreSQL's "
                f"{MAX_IDENTIFIER_BYTES}-byte name limit; use a shorter user name")
        return clone

    def apply(self, rotation: Rotation, current_document: dict, current: Credentials,
              pending: Credentials, pending_reason: str) -> None:
        # Log in with AWSCURRENT first: the secret must hold a working credential before the
        # master's power is used on its behalf (AWS's confused-deputy check).
        conn, reason = connect(current)
        if conn is None:
            raise rotation.fail(f"cannot log in as {current} with AWSCURRENT ({reason}); "
                                "nothing was changed")
        close(conn)
        master_arn = current_document["masterarn"]
        _, master = parse(rotation, rotation.value(CURRENT, secret_id=master_arn),
                          f"master secret {master_arn}", is_master=True)
        if (master.host, master.port) != (current.host, current.port):
            raise rotation.fail(f"master secret {master_arn} names another server than AWSCURRENT")
        master = Credentials(master.host, master.port, current.dbname, master.username,
                             master.password, master.ssl)
        conn, reason = connect(master)
        if conn is None:
            raise rotation.fail(f"cannot log in with master secret {master_arn} ({reason}); "
                                "nothing was changed")
        try:
            with database_errors(rotation, f"setting the password of {pending.username!r}"):
                ensure_login_role(conn, pending.username, pending.password, current.username)
        finally:
            close(conn)
