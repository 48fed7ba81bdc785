"""What `configplane explain` shows of a secret: where its value comes from and whether it is
there, which Kubernetes Secret key delivers it, and which spec field a delivered key names.
Never the value itself: a `secure` value is looked at only to say whether it is encrypted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from configplane.inputs import NAMESPACE, StackInputs
from configplane.model import (
    DATABASE_FIELDS,
    URL_SUFFIX,
    ServiceModel,
    delivered_keys,
    delivers_whole,
    prefix_of,
)
from configplane.validation import looks_like_ciphertext


def both_config_and_secret(view: Mapping[str, Any], parts: list[str]) -> bool:
    config, secrets = view.get("config") or {}, view.get("secrets") or {}
    return (len(parts) >= 2 and isinstance(config, Mapping) and isinstance(secrets, Mapping)
            and parts[1] in config and parts[1] in secrets)


def value_state(inputs: StackInputs, spec: Mapping[str, Any]) -> dict[str, str]:
    """Where a secret's value comes from and whether it is there (never the value itself)."""
    source = spec.get("source")
    if source == "secure":
        key = f"{NAMESPACE}:{spec.get('config_key')}"
        found = inputs.values.get(key)
        if found is None:
            state = (f"missing: no value in {inputs.stack_file}. Fix: run `pulumi config set "
                     f"--secret {key} --stack {inputs.stack}`.")
        elif found.secure and key in inputs.secure_raw and not looks_like_ciphertext(
                inputs.secure_raw[key]):
            state = (f"NOT ENCRYPTED: under `secure:` in {inputs.stack_file} but not a ciphertext. "
                     f"Fix: run `pulumi config set --secret {key} --stack {inputs.stack}` and "
                     "rotate the exposed value.")
        elif found.secure:
            state = f"set, encrypted in {inputs.stack_file}"
        else:
            state = (f"PLAINTEXT in {inputs.stack_file}. Fix: remove it, run `pulumi config set "
                     f"--secret {key} --stack {inputs.stack}` and rotate the exposed value.")
        return {"source": "secure", "config_key": key, "state": state}
    if source == "generated":
        return {"source": "generated", "state": "generated at deploy (pulumi_random); nobody "
                "needs to know it"}
    if source == "reference":
        return {"source": "reference", "ref": str(spec.get("ref")),
                "state": "read from the store when External Secrets syncs; not checked offline"}
    if source == "dynamic":
        return {"source": "dynamic", "state": "a new short-lived login from Vault's database "
                "engine each time External Secrets refreshes; no value exists before that"}
    return {"source": str(source), "state": "unknown source"}


def delivered_path(view: Mapping[str, Any], key: str) -> str | None:
    """`DATABASE_HOST` -> `secrets.DATABASE_PASSWORD.database.host` (and so on) where a
    Secrets Manager secret with `database` delivers that key."""
    for name, spec in (view.get("secrets") or {}).items():
        if not (isinstance(spec, Mapping) and spec.get("store") == "aws" and spec.get("database")):
            continue
        prefix = prefix_of(name)
        if key in (name, prefix + URL_SUFFIX):
            return f"secrets.{name}"
        for suffix, json_field in DATABASE_FIELDS:
            if key == prefix + suffix:
                return f"secrets.{name}.database.{json_field}"
    return None


def secret_delivery(plan: ServiceModel, name: str) -> dict[str, Any]:
    spec = plan.spec.secrets[name]
    dynamic = next((d for d in plan.dynamic if d.key == name), None)  # the model's, as built
    if dynamic is not None:
        return {"secret_name": dynamic.secret_name,
                "key": f"{name} (login name in {dynamic.username_key})",
                "stored_in": f"vault database engine, role {dynamic.role_name}"}
    if spec.store == "vault":
        stored = f"vault {plan.vault_mount}/{spec.ref or f'{plan.vault_path}#{name}'}"
    else:
        stored = f"aws secretsmanager {spec.ref or plan.aws_secret_name(name)}"
    delivery: dict[str, Any] = {"secret_name": plan.secret_name, "key": name, "stored_in": stored}
    if delivers_whole(spec):
        delivery["keys"] = delivered_keys(name, spec)  # all from one read of AWSCURRENT
    return delivery
