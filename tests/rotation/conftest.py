"""Fixtures for the rotation tests: Secrets Manager under moto with the handler run
in-process, a throwaway PostgreSQL server, and a leak check around every test."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import traceback
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend

REPO = Path(__file__).resolve().parents[2]
for _path in (REPO / "lambdas" / "rotation", REPO):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import handler  # noqa: E402
from rotation_helpers import STEPS, canary  # noqa: E402

from tests.ci import missing  # noqa: E402
from tests.rotation.pgserver import remove_server, server_binaries, start_server  # noqa: E402

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
        # A step after which the function dies (a timeout, the runtime killed) once its work
        # is done: Secrets Manager sees that invocation fail.
        self.crash_after: str | None = None
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
            if event["Step"] == self.crash_after:
                raise RuntimeError("the function was stopped")
        except Exception as exc:  # noqa: BLE001 - as Lambda: any failure fails the invocation
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
                # (a staged version that never got a value has none to add)
                with contextlib.suppress(self.sm.exceptions.ResourceNotFoundException):
                    self.leaks.add(self.sm.get_secret_value(
                        SecretId=secret["ARN"], VersionId=version)["SecretString"])


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


# --- a throwaway PostgreSQL server (tests/rotation/pgserver.py) --------------------------------


@pytest.fixture(scope="session")
def postgres_server():
    if server_binaries() is None:
        missing("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; "
                "install the postgresql package (.ci/run does)")
    try:
        server = start_server(superpassword=canary("SUPER"))
    except Exception as exc:  # noqa: BLE001 - any start failure is the same test failure
        pytest.fail(f"could not start the test PostgreSQL server: {exc}", pytrace=False)
    yield server
    remove_server(server)


@pytest.fixture
def pg(postgres_server, leaks):
    leaks.canaries.add(postgres_server.superpassword)
    yield postgres_server
    leaks.texts.append(postgres_server.log.read_text(errors="replace"))
