"""What a service's pod receives from its secrets, and the ExternalSecret fields that deliver it.

Plain Python (no resource declarations): the validator uses `delivered_keys` to keep config
and secrets apart, `components/external_secrets.py` puts `external_secret_sources` into the
ExternalSecret, and the life-cycle test interprets that same spec the way the External
Secrets Operator does.

A plain secret `K` reaches the pod as the key `K`. A Secrets Manager secret with `database`
(its value is the JSON AWS's rotation functions read: username, password, host, port,
dbname, ...) must be named `<P>_PASSWORD` and reaches the pod whole, from ONE read of its
current version (`dataFrom[].extract`), as

    <P>_USER, <P>_PASSWORD, <P>_HOST, <P>_PORT, <P>_NAME and <P>_URL (a PostgreSQL DSN).

Alternating-users rotation changes the username with the password; one extract is one
`GetSecretValue` of AWSCURRENT, so the pod never gets the user of one version with the
password of another. The ExternalSecret's template (engine v2, mergePolicy Replace) writes
exactly these keys into the Kubernetes Secret and nothing else (not `engine`, not
`masterarn`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from configplane.model.document import SecretSpec, Service

PASSWORD_SUFFIX = "_PASSWORD"
# env key suffix -> field of the AWS database secret JSON
DATABASE_FIELDS: tuple[tuple[str, str], ...] = (
    ("_USER", "username"),
    ("_PASSWORD", "password"),
    ("_HOST", "host"),
    ("_PORT", "port"),
    ("_NAME", "dbname"),
)
URL_SUFFIX = "_URL"
TEMPLATE_ENGINE = "v2"


def delivers_whole(spec: SecretSpec) -> bool:
    """A database secret kept in Secrets Manager: delivered field by field from one read."""
    return spec.store == "aws" and spec.database is not None


def prefix_of(key: str) -> str:
    return key.removesuffix(PASSWORD_SUFFIX)


def delivered_keys(key: str, spec: SecretSpec) -> list[str]:
    """The pod's keys that the secret `key` provides."""
    if not delivers_whole(spec):
        return [key]
    prefix = prefix_of(key)
    return [prefix + suffix for suffix, _ in DATABASE_FIELDS] + [prefix + URL_SUFFIX]


def service_delivered_keys(service: Service) -> dict[str, str]:
    """pod key -> the secret that provides it (the first, if two claim one key)."""
    keys: dict[str, str] = {}
    for key in sorted(service.secrets):
        for env_key in delivered_keys(key, service.secrets[key]):
            keys.setdefault(env_key, key)
    return keys


def _var(key: str, field: str) -> str:
    """The template variable a database secret's field becomes (via dataFrom rewrite)."""
    return f"{key}_{field}"


def dsn_template(key: str) -> str:
    """A libpq URI from the same read: user and password percent-encoded (Go's urlquery
    escapes all but A-Z a-z 0-9 - _ . ~, and a space as `+`: rotated and generated
    passwords have no spaces)."""
    v = {field: _var(key, field) for _, field in DATABASE_FIELDS}
    return (f"postgresql://{{{{ .{v['username']} | urlquery }}}}:{{{{ .{v['password']} | urlquery }}}}"
            f"@{{{{ .{v['host']} }}}}:{{{{ .{v['port']} }}}}/{{{{ .{v['dbname']} | urlquery }}}}")


def external_secret_sources(secrets: Mapping[str, SecretSpec], *, vault_key: str,
                            aws_name: Callable[[str], str], aws_store_ref: Any) -> dict[str, Any]:
    """`data`, `dataFrom` and `template.data` of a service's ExternalSecret.

    `vault_key` is the service's KV v2 secret, `aws_name(key)` a Secrets Manager secret's
    name (this module stays free of naming rules); `aws_store_ref` is the `storeRef` of the Secrets
    Manager store (Vault is the ExternalSecret's default `secretStoreRef`). Store references
    are the caller's business: only `aws_store_ref` passes through.
    """
    data: list[dict[str, Any]] = []
    data_from: list[dict[str, Any]] = []
    template: dict[str, str] = {}
    for key in sorted(secrets):
        spec = secrets[key]
        if spec.store == "vault":
            path, prop = spec.ref.split("#", 1) if spec.ref else (vault_key, key)
            data.append({"secretKey": key, "remoteRef": {"key": path, "property": prop}})
            template[key] = f"{{{{ .{key} }}}}"
            continue
        remote_key = spec.ref or aws_name(key)
        source = {"storeRef": aws_store_ref}
        if not delivers_whole(spec):
            data.append({"secretKey": key, "remoteRef": {"key": remote_key}, "sourceRef": source})
            template[key] = f"{{{{ .{key} }}}}"
            continue
        data_from.append({
            "extract": {"key": remote_key},
            "sourceRef": source,
            # every field of the JSON becomes `<KEY>_<field>`: two database secrets never collide
            "rewrite": [{"regexp": {"source": "^(.+)$", "target": _var(key, "$1")}}],
        })
        prefix = prefix_of(key)
        for suffix, field in DATABASE_FIELDS:
            template[prefix + suffix] = f"{{{{ .{_var(key, field)} }}}}"
        template[prefix + URL_SUFFIX] = dsn_template(key)
    return {"data": data, "dataFrom": data_from, "template": dict(sorted(template.items()))}
