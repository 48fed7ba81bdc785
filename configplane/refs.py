"""References to secrets and the names that reach policy text, parsed rather than
prefix-matched. Standard library only: the policy pack imports this same file (the symlink
policies/refs.py), so the program and the pack agree on what a ref or an ARN means.

- A Vault ref is `<path>#<property>` inside the environment's KV v2 mount. The path is split
  into segments; `.`, `..`, empty segments and absolute paths are refused (no normalisation
  that could turn `api/../worker` into another service's path), and the first segment must be
  the owning service's own path.
- A Secrets Manager ARN is split into partition, service, region, account and resource
  (`secret:<name>`), each checked on its own.
- Every string that is written into Vault policy HCL, a Vault path or a role name is checked
  against what that syntax allows, so no quote, newline, brace or glob reaches policy text.

Functions return problems as `Fix:`-ending sentences and never echo the offending value
(it could be a secret pasted into the wrong key).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from dataclasses import dataclass

PARTITIONS = ("aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f",
              "aws-eusc")
# Secrets Manager secret names: ASCII letters, digits and /_+=.@- (AWS's documented set);
# `!` too, for the secrets RDS manages itself (`rds!cluster-...`).
SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@!-]{1,512}")
# The six characters Secrets Manager appends to a secret's name in its ARN.
ARN_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}")
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
ACCOUNT = re.compile(r"\d{12}")
# One segment of a Vault path as configplane writes it: no glob (`*`, `+`), no quote,
# brace, space, newline or backslash, nothing HCL or Vault's path templating would read.
VAULT_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
VAULT_PROPERTY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # contract.DNS_LABEL, unanchored (pinned)
MAX_MOUNT_LENGTH = 128


# --- Vault -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VaultRef:
    segments: tuple[str, ...]
    property: str  # the field's name hides the builtin in this class body: hence builtins.

    @builtins.property
    def path(self) -> str:
        return "/".join(self.segments)


class RefError(ValueError):
    """A reference that cannot be used; the message ends with what would fix it."""


def vault_path_problems(path: str, what: str) -> list[str]:
    """Problems of a relative Vault path (mount, auth path, secret path) as configplane writes
    it into policy HCL and API paths."""
    if not path:
        return [f"{what} is empty. Fix: give a path such as `prod-kv`."]
    if path.startswith("/"):
        return [f"{what} is an absolute path. Fix: drop the leading `/`."]
    if len(path) > MAX_MOUNT_LENGTH:
        return [f"{what} is longer than {MAX_MOUNT_LENGTH} characters. Fix: shorten it."]
    problems = []
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            problems.append(f"{what} has an empty, `.` or `..` segment. Fix: write each segment "
                            "out (no `//`, no trailing `/`, no `.` or `..`).")
            break
        if not VAULT_SEGMENT.fullmatch(segment):
            problems.append(f"{what} may hold only letters, digits, `_`, `.` and `-` between "
                            "`/` (no quotes, spaces, newlines, braces, `*` or `+`: the path is "
                            "written into Vault policy text). Fix: rename it.")
            break
    return problems


def parse_vault_ref(ref: str, service: str) -> VaultRef:
    """`<path>#<property>` whose path is below `service`: the root of the service's own KV
    paths (ownership.vault_path)."""
    path, sep, prop = ref.partition("#")
    if not sep or "#" in prop:
        raise RefError("a Vault reference is `<path>#<property>` with one `#`. Fix: use the "
                       f"form `{service}/<name>#<property>`.")
    problems = vault_path_problems(path, "the reference's path")
    if problems:
        raise RefError(problems[0])
    if not VAULT_PROPERTY.fullmatch(prop):
        raise RefError("the property after `#` may hold only letters, digits, `_`, `.` and "
                       "`-`. Fix: name the key inside the Vault secret.")
    segments = tuple(path.split("/"))
    if segments[0] != service:
        raise RefError(f"the path is not the service's own: its Vault policy reads only "
                       f"`{service}` and `{service}/...` in its environment's mount. Fix: keep "
                       f"the value under `{service}/` in Vault.")
    if len(segments) == 1:
        raise RefError(f"`{service}` itself is the secret configplane writes for the service "
                       "(each write replaces it whole). Fix: keep referenced values in a "
                       f"secret below it, `{service}/<name>#<property>`.")
    return VaultRef(segments, prop)


# --- Secrets Manager ARNs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str

    def __str__(self) -> str:
        return f"arn:{self.partition}:{self.service}:{self.region}:{self.account}:{self.resource}"


@dataclass(frozen=True)
class SecretArn:
    arn: Arn
    name: str  # as written in the ARN: with the random suffix when the ARN is complete

    @property
    def complete(self) -> bool:
        """Whether the ARN ends in Secrets Manager's six-character suffix (a partial ARN
        names the secret without it; IAM then needs `-??????` to match)."""
        return ARN_SUFFIX.fullmatch(self.name[-7:]) is not None

    @property
    def policy_resource(self) -> str:
        """The Resource to grant in IAM for this secret."""
        return str(self.arn) if self.complete else f"{self.arn}-??????"


def secret_name_pattern(region: str, account: str, name: str, partition: str = "aws") -> str:
    """The IAM Resource for a secret known by name: its ARN with `-??????` for the six
    characters Secrets Manager appends (exactly six, so no other secret matches)."""
    return f"arn:{partition}:secretsmanager:{region}:{account}:secret:{name}-??????"


def iam_role_arn(account: str, name: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account}:role/{name}"


# arn:<partition>:iam::<account>:role/<path/><name> (IAM's characters for paths and names)
IAM_ROLE_ARN = re.compile(r"arn:(aws(?:-[a-z]+)*):iam::(\d{12}):role/((?:[\w+=,.@-]+/)*)"
                          r"([\w+=,.@-]{1,64})", re.ASCII)


def iam_role_arn_problem(text: str, account: str) -> str | None:
    """Why `text` is not the ARN of an IAM role in `account`, or None."""
    found = IAM_ROLE_ARN.fullmatch(text)
    if found is None:
        return ("not an IAM role's ARN (`arn:aws:iam::<account>:role/<name>`, as "
                "`aws iam get-role --query Role.Arn` prints it).")
    if found.group(2) != account:
        return f"the role belongs to another AWS account than this environment's ({account})."
    return None


def iam_policy_arn(account: str, name: str, partition: str = "aws") -> str:
    """A customer-managed IAM policy's ARN (a permissions boundary's, say)."""
    return f"arn:{partition}:iam::{account}:policy/{name}"


def parse_arn(text: str) -> Arn:
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise RefError("not an ARN (`arn:<partition>:<service>:<region>:<account>:<resource>`). "
                       "Fix: copy the secret's ARN from `aws secretsmanager describe-secret`.")
    return Arn(*parts[1:])


def parse_secret_arn(text: str, *, account: str, region: str) -> SecretArn:
    """A Secrets Manager secret's ARN in this stack's account and region."""
    arn = parse_arn(text)
    fix = "Fix: use the form `arn:aws:secretsmanager:<region>:<account>:secret:<name>`."
    if arn.partition not in PARTITIONS:
        raise RefError(f"the ARN's partition is not an AWS partition. {fix}")
    if arn.service != "secretsmanager":
        raise RefError(f"the ARN is not a Secrets Manager ARN (service `secretsmanager`). {fix}")
    kind, sep, name = arn.resource.partition(":")
    if kind != "secret" or not sep or not SECRET_NAME.fullmatch(name):
        raise RefError("the ARN's resource is not `secret:<name>` with a valid secret name "
                       f"(letters, digits and /_+=.@-). {fix}")
    if not ACCOUNT.fullmatch(arn.account) or arn.account != account:
        raise RefError(f"the ARN belongs to another AWS account than this environment's "
                       f"({account}). Fix: reference a secret of this environment's account.")
    if not REGION.fullmatch(arn.region) or arn.region != region:
        raise RefError(f"the ARN is in another region than this environment's ({region}). "
                       "Fix: reference a secret in the environment's region (or replicate it "
                       "there).")
    return SecretArn(arn, name)


def check_service_secret_arn(text: str, *, account: str, region: str, prefix: str) -> SecretArn:
    """A reference to a secret that must be the service's own: under its `prefix`
    (ownership.secret_prefix)."""
    secret = parse_secret_arn(text, account=account, region=region)
    if not secret.name.startswith(prefix) or len(secret.name) == len(prefix):
        raise RefError(f"the secret is not the service's own: a service reads only secrets "
                       f"named `{prefix}...`. Fix: keep the secret under `{prefix}` (or declare "
                       "it in the service that owns it).")
    return secret


def check_master_secret_arn(text: str, *, account: str, region: str, service: str,
                            owner_of: Callable[[str], str | None]) -> SecretArn:
    """A rotation's master credential: this stack's account and region, and not another
    service's secret (`owner_of`: the service a secret name belongs to, by ownership)."""
    secret = parse_secret_arn(text, account=account, region=region)
    owner = owner_of(secret.name)
    if owner is not None and owner != service:
        raise RefError(f"the master secret is service {owner}'s secret: the rotation of "
                       f"{service} would read it. Fix: name the database's own master secret "
                       "(for RDS, the `rds!...` secret it manages).")
    return secret


# --- names that reach policy text and role names ----------------------------------------------


def label_problems(value: str, what: str) -> list[str]:
    if len(value) > 63 or not DNS_LABEL.fullmatch(value):
        return [f"{what} is not an RFC 1123 label (lowercase letters, digits and '-', starting "
                "and ending alphanumeric, at most 63 characters). Fix: rename it."]
    return []


EKS_ISSUER = re.compile(r"https://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/[A-Za-z0-9._-]+)*")


# The audience of the service account tokens ESO requests to log in to Vault, and the one the
# service's Vault role accepts: a token minted for Vault is no good to STS or the API server,
# and an IRSA token (audience sts.amazonaws.com) is no good to Vault.
VAULT_AUDIENCE = "vault"


def oidc_provider_host(issuer: str) -> str:
    """The issuer without its scheme: IAM's OIDC provider name and condition-key prefix."""
    return issuer.removeprefix("https://")


def oidc_provider_arn(issuer: str, account: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account}:oidc-provider/{oidc_provider_host(issuer)}"
