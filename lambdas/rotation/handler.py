"""AWS Secrets Manager rotation function for configplane: one function per environment.

Secrets Manager calls ``lambda_handler`` four times per rotation (createSecret, setSecret,
testSecret, finishSecret) with ``{"Step", "SecretId", "ClientRequestToken"}`` and sometimes
``RotationToken``. The protocol is in DESIGN.md §5; this module implements it and picks a
strategy per secret.

Per-secret configuration
------------------------
Strategy: the tag ``configplane:rotation-strategy`` on the secret, one of
``random``, ``postgres-single-user``, ``postgres-alternating-users``. A tag because one
function serves many secrets, ``describe_secret`` (the guard before every step) already
returns it, it is not secret, and editing a value cannot silently change how it rotates.
A secret without the tag is refused.

Secret value:
- ``random``: a plain string, replaced whole; or a JSON object whose field ``password``
  (or the field named by the tag ``configplane:rotation-field``) is replaced, the other
  fields kept. A JSON object with an ``engine`` key is refused (a database secret rotated
  as ``random`` would lose its credential).
- ``postgres-*``: the JSON AWS's RDS rotation functions use: ``{"engine": "postgres",
  "host", "port" (5432), "username", "password", "dbname" ("postgres"), "ssl" (optional:
  absent = TLS, falling back to plain; true = TLS only; false = plain), "masterarn"
  (alternating users only: the ARN of a secret with a role that may create roles)}``.

Generated values come from ``get_random_password``. Defaults for every secret come from the
function's environment (AWS's own variable names); tags on a secret override them:

==========================  ===============================================  ============
environment                 tag                                              default
==========================  ===============================================  ============
PASSWORD_LENGTH             configplane:rotation-length                      32 (8-4096)
EXCLUDE_CHARACTERS          configplane:rotation-exclude-characters (adds)   ``/@"'\\``
EXCLUDE_NUMBERS             configplane:rotation-exclude-numbers             false
EXCLUDE_PUNCTUATION         configplane:rotation-exclude-punctuation         false
EXCLUDE_UPPERCASE           configplane:rotation-exclude-uppercase           false
EXCLUDE_LOWERCASE           configplane:rotation-exclude-lowercase           false
REQUIRE_EACH_INCLUDED_TYPE  configplane:rotation-require-each-included-type  true
==========================  ===============================================  ============

The tag adds to the environment's excluded characters rather than replacing them: tag values
cannot hold quotes or backslashes, so those can only be set per environment.
Other environment: ``SECRETS_MANAGER_ENDPOINT`` (for a VPC endpoint without private DNS),
``DB_SSL_CA_FILE`` (CA bundle for verifying the database's TLS).

Bookkeeping label: createSecret puts the staging label ``CONFIGPLANE_ROTATING`` on the
version it rotates to and finishSecret removes it (with AWSPENDING). A new rotation that
finds the label on another version that never became AWSCURRENT is refused: that rotation
may already have changed the database, and starting over would lose the only copy of the
password the database now accepts. AWS itself refuses a new rotation while AWSPENDING is on
a version other than AWSCURRENT, but an operator can clear AWSPENDING by hand (and moto
moves it freely); the label survives both.

No secret value, nor the RotationToken, is ever logged or put in an exception message.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

logger = logging.getLogger("configplane.rotation")
logger.setLevel(logging.INFO)
# botocore logs request and response bodies (secret values) at DEBUG; a function-wide DEBUG
# log level must not turn that on.
for _noisy in ("botocore", "boto3", "urllib3"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)

CURRENT, PENDING, PREVIOUS = "AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"
ROTATING = "CONFIGPLANE_ROTATING"
TAG_PREFIX = "configplane:rotation-"
STRATEGY_TAG = TAG_PREFIX + "strategy"
FIELD_TAG = TAG_PREFIX + "field"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


class RotationError(Exception):
    """A refusal or failure with a message that names the secret and never its value."""


# --- password options -------------------------------------------------------------------

DEFAULT_EXCLUDE_CHARACTERS = "/@\"'\\"
_BOOL_OPTIONS = {  # get_random_password parameter -> (environment variable, tag suffix, default)
    "ExcludeNumbers": ("EXCLUDE_NUMBERS", "exclude-numbers", False),
    "ExcludePunctuation": ("EXCLUDE_PUNCTUATION", "exclude-punctuation", False),
    "ExcludeUppercase": ("EXCLUDE_UPPERCASE", "exclude-uppercase", False),
    "ExcludeLowercase": ("EXCLUDE_LOWERCASE", "exclude-lowercase", False),
    "RequireEachIncludedType": ("REQUIRE_EACH_INCLUDED_TYPE", "require-each-included-type", True),
}


def _parse_bool(text: str, where: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise RotationError(f"{where} must be true or false")


def password_request(env: dict[str, str], tags: dict[str, str]) -> dict[str, Any]:
    """The get_random_password arguments for a secret: environment defaults, tags override."""
    request: dict[str, Any] = {}
    length_text, where = env.get("PASSWORD_LENGTH", "32"), "environment PASSWORD_LENGTH"
    if TAG_PREFIX + "length" in tags:
        length_text, where = tags[TAG_PREFIX + "length"], f"tag {TAG_PREFIX}length"
    if not length_text.strip().isdigit() or not 8 <= int(length_text) <= 4096:
        raise RotationError(f"{where} must be a whole number from 8 to 4096")
    request["PasswordLength"] = int(length_text)
    excluded = env.get("EXCLUDE_CHARACTERS", DEFAULT_EXCLUDE_CHARACTERS)
    excluded += tags.get(TAG_PREFIX + "exclude-characters", "")
    if excluded:
        request["ExcludeCharacters"] = "".join(dict.fromkeys(excluded))
    for param, (env_name, tag_suffix, default) in _BOOL_OPTIONS.items():
        value = default
        if env_name in env:
            value = _parse_bool(env[env_name], f"environment {env_name}")
        if TAG_PREFIX + tag_suffix in tags:
            value = _parse_bool(tags[TAG_PREFIX + tag_suffix], f"tag {TAG_PREFIX}{tag_suffix}")
        request[param] = value
    return request


# --- one rotation: the secret, the token, and access to its versions ---------------------


@dataclass
class Rotation:
    client: Any
    step: str
    token: str
    metadata: dict[str, Any]
    rotation_token: str | None = field(default=None, repr=False)

    @property
    def arn(self) -> str:
        return self.metadata["ARN"]

    @property
    def versions(self) -> dict[str, list[str]]:
        return self.metadata.get("VersionIdsToStages", {})

    @property
    def tags(self) -> dict[str, str]:
        return {tag["Key"]: tag["Value"] for tag in self.metadata.get("Tags", [])}

    def value(self, stage: str, version_id: str | None = None, secret_id: str | None = None):
        """The SecretString at a stage (and version), or None when there is none."""
        kwargs = {"SecretId": secret_id or self.arn, "VersionStage": stage}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            response = self.client.get_secret_value(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        if "SecretString" not in response:
            raise RotationError(f"secret {kwargs['SecretId']} is binary; only strings rotate")
        return response["SecretString"]

    def pending(self) -> str | None:
        return self.value(PENDING, self.token)

    def put_pending(self, value: str) -> None:
        kwargs = {
            "SecretId": self.arn,
            "ClientRequestToken": self.token,
            "SecretString": value,
            "VersionStages": [PENDING],
        }
        if self.rotation_token:
            kwargs["RotationToken"] = self.rotation_token
        self.client.put_secret_value(**kwargs)

    def random_password(self) -> str:
        request = password_request(dict(os.environ), self.tags)
        return self.client.get_random_password(**request)["RandomPassword"]

    def fail(self, message: str) -> RotationError:
        return RotationError(f"{self.step} for secret {self.arn} (version {self.token}): {message}")


# --- the random strategy ---------------------------------------------------------------


class RandomStrategy:
    """A generated value; nothing outside Secrets Manager needs to accept it."""

    name = "random"

    def _field(self, rotation: Rotation, value: str, stage: str) -> str | None:
        """The JSON field to replace, or None for a plain string; refuses database secrets."""
        try:
            document = json.loads(value)
        except ValueError:
            return None
        if not isinstance(document, dict):
            return None
        if "engine" in document:
            raise rotation.fail(
                f"the {stage} value has an 'engine' key, so it looks like a database secret; "
                "rotating it as random would change the stored password but not the "
                "database's. Tag the secret with a postgres-* strategy instead."
            )
        name = rotation.tags.get(FIELD_TAG, "password")
        if not isinstance(document.get(name), str):
            raise rotation.fail(
                f"the {stage} value is a JSON object without a string field {name!r}; "
                f"set the tag {FIELD_TAG} to the field to rotate"
            )
        return name

    def new_value(self, rotation: Rotation, current: str) -> str:
        name = self._field(rotation, current, CURRENT)
        if name is None:
            return rotation.random_password()
        document = json.loads(current)
        document[name] = rotation.random_password()
        return json.dumps(document)

    def set_secret(self, rotation: Rotation) -> None:
        logger.info("setSecret: secret %s has no external system to update", rotation.arn)

    def test_secret(self, rotation: Rotation) -> None:
        pending = rotation.pending()
        if not pending:
            raise rotation.fail("there is no AWSPENDING value to test")
        name = self._field(rotation, pending, PENDING)
        if name is not None and not json.loads(pending)[name]:
            raise rotation.fail(f"the AWSPENDING field {name!r} is empty")


STRATEGY_NAMES = ("random", "postgres-single-user", "postgres-alternating-users")


def _strategy(name: str):
    if name == RandomStrategy.name:
        return RandomStrategy()
    import rotation_postgres  # only database strategies load the driver

    return {
        rotation_postgres.SingleUser.name: rotation_postgres.SingleUser,
        rotation_postgres.AlternatingUsers.name: rotation_postgres.AlternatingUsers,
    }[name]()


def strategy_for(rotation: Rotation):
    name = rotation.tags.get(STRATEGY_TAG)
    if name not in STRATEGY_NAMES:
        found = "has no tag" if name is None else "has an unknown value in tag"
        raise rotation.fail(
            f"the secret {found} {STRATEGY_TAG}; set it to one of {', '.join(STRATEGY_NAMES)}"
        )
    return _strategy(name)


# --- the four steps ----------------------------------------------------------------------


def guard(client, secret_id: str, token: str, step: str) -> dict[str, Any] | None:
    """DESIGN §5: the checks before every step. None means: already done, return quietly."""
    metadata = client.describe_secret(SecretId=secret_id)
    arn = metadata["ARN"]
    if "RotationEnabled" in metadata and not metadata["RotationEnabled"]:
        raise RotationError(f"{step}: secret {arn} is not enabled for rotation")
    versions = metadata.get("VersionIdsToStages", {})
    if token not in versions:
        raise RotationError(
            f"{step}: token {token} is not a version of secret {arn}; "
            "start rotations with `aws secretsmanager rotate-secret`"
        )
    if CURRENT in versions[token]:
        logger.info("%s: version %s of secret %s is already AWSCURRENT", step, token, arn)
        return None
    if PENDING not in versions[token]:
        raise RotationError(
            f"{step}: version {token} of secret {arn} is not AWSPENDING, so it is not the "
            "rotation in progress"
        )
    return metadata


def _refuse_concurrent_rotation(rotation: Rotation) -> None:
    for version, stages in rotation.versions.items():
        if version == rotation.token:
            continue
        if PENDING in stages:
            raise rotation.fail(f"version {version} is AWSPENDING too; one rotation at a time")
        if ROTATING in stages and CURRENT not in stages:
            raise rotation.fail(
                f"an earlier rotation to version {version} started and did not finish; its "
                "password may already be the one the database accepts. Finish or abandon it "
                "first (README: 'When a rotation fails')"
            )


def create_secret(rotation: Rotation, strategy) -> None:
    _refuse_concurrent_rotation(rotation)
    current = rotation.value(CURRENT)
    if current is None:
        raise rotation.fail("the secret has no AWSCURRENT value to rotate from")
    # Never put twice for one token: AWS refuses a different value for an existing version
    # (moto would overwrite it), and a retry must not replace a value already in use.
    if rotation.pending() is not None:
        logger.info("createSecret: version %s of %s already has a value", rotation.token,
                    rotation.arn)
    else:
        rotation.put_pending(strategy.new_value(rotation, current))
        logger.info("createSecret: stored a new AWSPENDING version %s for %s", rotation.token,
                    rotation.arn)
    if ROTATING not in rotation.versions[rotation.token]:
        kwargs = {"SecretId": rotation.arn, "VersionStage": ROTATING,
                  "MoveToVersionId": rotation.token}
        holder = next((v for v, s in rotation.versions.items() if ROTATING in s), None)
        if holder:
            kwargs["RemoveFromVersionId"] = holder
        rotation.client.update_secret_version_stage(**kwargs)


def set_secret(rotation: Rotation, strategy) -> None:
    strategy.set_secret(rotation)


def test_secret(rotation: Rotation, strategy) -> None:
    strategy.test_secret(rotation)
    logger.info("testSecret: version %s of %s works", rotation.token, rotation.arn)


def finish_secret(rotation: Rotation, strategy) -> None:
    current = next((v for v, s in rotation.versions.items() if CURRENT in s), None)
    if current is None:
        raise rotation.fail("no version of the secret is AWSCURRENT")
    update = rotation.client.update_secret_version_stage
    update(SecretId=rotation.arn, VersionStage=CURRENT, MoveToVersionId=rotation.token,
           RemoveFromVersionId=current)
    # Leave AWSPENDING on no version (rather than on AWSCURRENT): describe-secret then shows
    # a rotation in progress exactly when one is.
    update(SecretId=rotation.arn, VersionStage=PENDING, RemoveFromVersionId=rotation.token)
    if ROTATING in rotation.versions[rotation.token]:
        update(SecretId=rotation.arn, VersionStage=ROTATING, RemoveFromVersionId=rotation.token)
    logger.info("finishSecret: version %s of %s is AWSCURRENT (was %s)", rotation.token,
                rotation.arn, current)


_STEP_FUNCTIONS = {
    "createSecret": create_secret,
    "setSecret": set_secret,
    "testSecret": test_secret,
    "finishSecret": finish_secret,
}


def _client():
    endpoint = os.environ.get("SECRETS_MANAGER_ENDPOINT") or None
    return boto3.client("secretsmanager", endpoint_url=endpoint)


def lambda_handler(event, context):
    if not isinstance(event, dict) or not all(
        isinstance(event.get(key), str) for key in ("Step", "SecretId", "ClientRequestToken")
    ):
        raise RotationError("the event must carry Step, SecretId and ClientRequestToken strings")
    step, secret_id, token = event["Step"], event["SecretId"], event["ClientRequestToken"]
    if step not in STEPS:
        raise RotationError(f"unknown step {step!r}; expected one of {', '.join(STEPS)}")
    client = _client()
    metadata = guard(client, secret_id, token, step)
    if metadata is None:
        return
    rotation = Rotation(client, step, token, metadata, event.get("RotationToken"))
    try:
        _STEP_FUNCTIONS[step](rotation, strategy_for(rotation))
    except (RotationError, ClientError):
        raise
    except Exception as exc:  # noqa: BLE001 - the handler's boundary: re-raised value-free
        # Other exceptions may carry values in their text (a driver echoing a statement, a
        # parser quoting its input): keep only the type and where it happened.
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}" if tb else "?"
        raise rotation.fail(f"unexpected {type(exc).__name__} at {where}") from None
