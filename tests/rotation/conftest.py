"""Fixtures for the rotation tests: Secrets Manager under moto with the handler run
in-process, a throwaway PostgreSQL server, and a leak check around every test."""

from __future__ import annotations

import io
import json
import logging
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import traceback
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pg8000.native
import pytest
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend

REPO = Path(__file__).resolve().parents[2]
for _path in (REPO / "lambdas" / "rotation", REPO):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import handler  # noqa: E402
from rotation_helpers import STEPS, canary  # noqa: E402

REGION = "eu-west-1"
SECRET_FIELDS = ("password", "token")
PASSWORD_ENV = ("PASSWORD_LENGTH", "EXCLUDE_CHARACTERS", "EXCLUDE_NUMBERS", "EXCLUDE_PUNCTUATION",
                "EXCLUDE_UPPERCASE", "EXCLUDE_LOWERCASE", "REQUIRE_EACH_INCLUDED_TYPE")


# --- leak check ---------------------------------------------------------------------------


@dataclass
class LeakWatch:
    """Secret values seen in a test, and texts that must not contain any of them."""

    canaries: set[str] = field(default_factory=set)
    exceptions: list[BaseException] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def add(self, value: str | None) -> None:
        """Register a secret value: a JSON object's secret fields, else the whole string."""
        if not value:
            return
        try:
            document = json.loads(value)
        except ValueError:
            document = None
        if isinstance(document, dict):
            for key in SECRET_FIELDS:
                if isinstance(document.get(key), str) and len(document[key]) >= 8:
                    self.canaries.add(document[key])
        elif len(value) >= 8:
            self.canaries.add(value)

    def refused(self, fn, *args, match: str, error=handler.RotationError, **kwargs):
        with pytest.raises(error, match=match) as info:
            fn(*args, **kwargs)
        self.exceptions.append(info.value)
        return info.value


@pytest.fixture(autouse=True)
def leaks(caplog, capfd):
    caplog.set_level(logging.DEBUG)
    watch = LeakWatch()
    yield watch
    out, err = capfd.readouterr()
    texts = [out, err, *watch.texts]
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    for record in records:
        texts.append(record.getMessage())
        if record.exc_info:
            texts.append("".join(traceback.format_exception(*record.exc_info)))
    texts += ["".join(traceback.format_exception(exc)) for exc in watch.exceptions]
    leaked = sorted(c for c in watch.canaries if any(c in text for text in texts))
    assert not leaked, f"{len(leaked)} secret value(s) leaked into logs or exceptions"


# --- Secrets Manager under moto ------------------------------------------------------------


class Aws:
    """A moto Secrets Manager whose rotation Lambda is the handler, run in-process."""

    def __init__(self, leaks: LeakWatch):
        self.leaks = leaks
        self.sm = boto3.client("secretsmanager", region_name=REGION)
        self.run_handler = True  # False: rotate_secret only stages AWSPENDING
        self.events: list[dict] = []
        self.errors: list[BaseException] = []
        self._failed = False
        role = boto3.client("iam", region_name=REGION).create_role(
            RoleName="rotation", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("handler.py", "")
        self.function_arn = boto3.client("lambda", region_name=REGION).create_function(
            FunctionName="rotation", Runtime="python3.13", Role=role,
            Handler="handler.lambda_handler", Code={"ZipFile": code.getvalue()})["FunctionArn"]

    def invoke(self, backend, function_name, qualifier, body, headers, response_headers):
        """Stands in for Lambda's invoke: like Secrets Manager, stop at the first failure."""
        event = json.loads(body)
        self.events.append(event)
        if not self.run_handler:
            return b""
        if event["Step"] == "createSecret":
            self._failed = False
        if self._failed:
            return b""
        try:
            handler.lambda_handler(event, None)
        except Exception as exc:
            self._failed = True
            self.errors.append(exc)
            self.leaks.exceptions.append(exc)
            return json.dumps({"errorType": type(exc).__name__}).encode()
        return b""

    def create_secret(self, value: str, strategy: str | None = None,
                      tags: dict[str, str] | None = None, kms_key_id: str | None = None) -> str:
        self.leaks.add(value)
        all_tags = dict(tags or {})
        if strategy:
            all_tags[handler.STRATEGY_TAG] = strategy
        kwargs = {"Name": f"secret-{uuid.uuid4().hex[:8]}", "SecretString": value,
                  "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()]}
        if kms_key_id:
            kwargs["KmsKeyId"] = kms_key_id
        return self.sm.create_secret(**kwargs)["ARN"]

    def _rotate(self, arn: str, token: str | None = None) -> str:
        kwargs = {"SecretId": arn, "RotationLambdaARN": self.function_arn,
                  "RotationRules": {"AutomaticallyAfterDays": 30}}
        if token:
            kwargs["ClientRequestToken"] = token
        return self.sm.rotate_secret(**kwargs)["VersionId"]

    def rotate(self, arn: str) -> str:
        """rotate-secret, with the handler run for each step; returns the token."""
        self.run_handler, errors_before = True, len(self.errors)
        token = self._rotate(arn)
        self.new_errors = self.errors[errors_before:]
        return token

    def start(self, arn: str) -> str:
        """rotate-secret without running the handler: AWSPENDING staged, steps left to us."""
        self.run_handler = False
        try:
            return self._rotate(arn)
        finally:
            self.run_handler = True

    def step(self, arn: str, token: str, step: str, **extra) -> None:
        handler.lambda_handler({"Step": step, "SecretId": arn, "ClientRequestToken": token,
                                **extra}, None)

    def run_steps(self, arn: str, token: str, steps=STEPS, **extra) -> None:
        for step in steps:
            self.step(arn, token, step, **extra)

    def stages(self, arn: str) -> dict[str, list[str]]:
        """Staging labels of the labelled versions (AWS lists no others)."""
        versions = self.sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
        return {version: sorted(stages) for version, stages in versions.items() if stages}

    def value(self, arn: str, stage: str = "AWSCURRENT", version: str | None = None) -> str:
        kwargs = {"SecretId": arn, "VersionStage": stage}
        if version:
            kwargs["VersionId"] = version
        return self.sm.get_secret_value(**kwargs)["SecretString"]

    def current_version(self, arn: str) -> str:
        return next(v for v, s in self.stages(arn).items() if "AWSCURRENT" in s)

    def register_all_values(self) -> None:
        """Every value any secret ever held becomes a canary for the leak check."""
        for secret in self.sm.list_secrets()["SecretList"]:
            versions = self.sm.describe_secret(SecretId=secret["ARN"])["VersionIdsToStages"]
            for version in versions:
                try:
                    self.leaks.add(self.sm.get_secret_value(
                        SecretId=secret["ARN"], VersionId=version)["SecretString"])
                except self.sm.exceptions.ResourceNotFoundException:
                    pass  # a staged version that never got a value


@pytest.fixture
def aws(monkeypatch, leaks):
    for name, value in {"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}.items():
        monkeypatch.setenv(name, value)
    for name in (*PASSWORD_ENV, "SECRETS_MANAGER_ENDPOINT", "DB_SSL_CA_FILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        env = Aws(leaks)
        monkeypatch.setattr(LambdaSimpleBackend, "invoke",
                            lambda backend, *args, **kwargs: env.invoke(backend, *args, **kwargs))
        yield env
        env.register_all_values()


# --- a throwaway PostgreSQL server ----------------------------------------------------------


def _server_binaries() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(re.sub(r"\D", "", p.parent.parent.name) or 0))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    bindir: Path
    root: Path
    run_as: str | None  # an unprivileged user when the tests run as root
    port: int = field(default_factory=_free_port)
    superuser: str = "configplane_admin"
    superpassword: str = field(default_factory=lambda: canary("SUPER"), repr=False)
    host: str = "127.0.0.1"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        result = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{Path(command[0]).name} failed:\n{result.stdout}{result.stderr}")

    def init(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.superpassword + "\n")
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            for path in (self.root, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        pwfile.chmod(0o600)
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.superuser,
                  f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--locale=C",
                  "--no-sync")
        pwfile.unlink()

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses={self.host} "
                   "-c fsync=off -c full_page_writes=off -c synchronous_commit=off "
                   "-c log_statement=all -c log_connections=on")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-o", options, "-w", "-t", "30", "start")

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def connect(self, user: str, password: str) -> pg8000.native.Connection:
        return pg8000.native.Connection(user=user, password=password, host=self.host,
                                        port=self.port, database="postgres", ssl_context=False,
                                        timeout=5)

    def can_login(self, user: str, password: str) -> bool:
        try:
            conn = self.connect(user, password)
        except pg8000.native.DatabaseError:
            return False
        conn.run("SELECT 1")
        conn.close()
        return True

    def admin(self) -> pg8000.native.Connection:
        """A superuser session that keeps its statements (and their passwords) out of the log."""
        conn = self.connect(self.superuser, self.superpassword)
        conn.run("SET log_statement = 'none'")
        return conn


@pytest.fixture(scope="session")
def postgres_server():
    bindir = _server_binaries()
    if bindir is None:
        message = ("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; "
                   "install the postgresql package (.ci/run does)")
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the PostgreSQL rotation tests: {message}", pytrace=False)
        pytest.skip(message)
    run_as = None
    if os.geteuid() == 0:  # initdb refuses root
        run_as = next((u for u in ("postgres", "nobody") if _user_exists(u)), None)
        if run_as is None:
            pytest.fail("running as root and no 'postgres' or 'nobody' user to run PostgreSQL",
                        pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="configplane-pg-"))
    server = PostgresServer(bindir, root, run_as)
    try:
        server.init()
        server.start()
    except Exception as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start the test PostgreSQL server: {exc}", pytrace=False)
    yield server
    try:
        server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture
def pg(postgres_server, leaks):
    leaks.canaries.add(postgres_server.superpassword)
    yield postgres_server
    leaks.texts.append(postgres_server.log.read_text(errors="replace"))
