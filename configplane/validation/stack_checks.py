"""Checks `validate` makes beyond the schemas, so that it decides everything that does not need
the program: plaintext secrets anywhere in the inputs, names that collide once normalised,
rotation settings as the component checks them, sizes, and the stack/environment agreement.

Each check returns problems as (key path, file, message); messages never contain a value.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from configplane.contract import MAX_CONFIGMAP_BYTES
from configplane.inputs import NAMESPACE, StackInputs, dotted
from configplane.model import (
    DATABASE_NETWORK,
    ENVIRONMENT_NAME,
    MASTER_SECRET_MISSING,
    MASTER_SECRET_UNUSED,
    SCHEDULE_CODES,
    RenderedConfigMap,
    rotated_secrets,
    rotation_problems,
)
from configplane.ownership import secret_resource_name
from configplane.redaction import (
    PROVIDER_CREDENTIALS,
    SPEC_METADATA,
    Detector,
    detect_name,
    detector_for,
    is_name_slot,
    plaintext_rules,
    url_userinfo,
)

Problem = tuple[str, str, str]
# The configplane:* keys a project or stack may set; anything else is a typo (or a secure key
# declared in Pulumi.yaml, which counts as known).
KNOWN_KEYS = frozenset({f"{NAMESPACE}:{k}" for k in ("defaults", "platform", "services",
                                                    "parity")})
_PASSPHRASE = re.compile(r"v1:([A-Za-z0-9+/]+={0,2}):([A-Za-z0-9+/]+={0,2})")
_MIN_CIPHERTEXT_BYTES = 16  # AES-GCM's tag alone; every provider's ciphertext is longer
_ROTATE = "and rotate the exposed value"


def normalised_key(key: str) -> str:
    """How the program names a secret's resources (components/secret_values.py, aws_secrets.py)."""
    return secret_resource_name(key)


# --- inputs: the files as written ------------------------------------------------------


def input_problems(inputs: StackInputs, layers: Iterable[Any] = (),
                   detector: Detector | None = None) -> list[Problem]:
    """Checks over the files as written (they need no valid document): run first, always.
    `detector`: the run's; None, the pack of the inputs' own project."""
    detector = detector or detector_for(inputs.project_dir or None)
    problems: list[Problem] = []
    for layer in layers:
        problems += _plaintext_in_layer(layer.file, layer.document, detector)
    problems += _secure_values(inputs)
    problems += _secret_declarations(inputs)
    problems += _plain_config(inputs, detector)
    problems += _unknown_keys(inputs)
    return problems


def looks_like_ciphertext(raw: Any) -> bool:
    """A `secure:` value as a secrets provider writes it: the passphrase provider's
    `v1:<nonce>:<ciphertext>`, or base64 (cloud KMS, Pulumi Cloud) of at least a tag's size."""
    if not isinstance(raw, str) or raw != raw.strip() or not raw:
        return False
    m = _PASSPHRASE.fullmatch(raw)
    blob = m.group(2) if m else raw
    try:
        decoded = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(decoded) >= _MIN_CIPHERTEXT_BYTES and (m is not None or len(decoded) >= 24)


def _secure_values(inputs: StackInputs) -> list[Problem]:
    problems = []
    for key, raw in sorted(getattr(inputs, "secure_raw", {}).items()):
        if looks_like_ciphertext(raw):
            continue
        what = ("nothing" if raw in (None, "") else "a number" if isinstance(raw, int | float)
                and not isinstance(raw, bool) else "a mapping or list" if isinstance(
                    raw, Mapping | list) else "text that is not a ciphertext")
        problems.append((f"config.{key}", inputs.stack_file,
                         f"`{key}` is under `secure:` but holds {what}: `secure:` values are "
                         "written by `pulumi config set --secret`, encrypted by the stack's "
                         "secrets provider; this one is not encrypted. Fix: run `pulumi config "
                         f"set --secret {key} --stack {inputs.stack}` {_ROTATE}."))
    return problems


def _secret_declarations(inputs: StackInputs) -> list[Problem]:
    return [
        (f"config.{key}", inputs.project_file,
         f"`{key}` is declared `secret: true` but {inputs.project_file} gives it a `value` or "
         "`default`: a plaintext secret in the project file, for every stack. Fix: remove it "
         f"and set it per stack with `pulumi config set --secret {key}` {_ROTATE}.")
        for key, declared in sorted(inputs.declarations.items())
        if declared.secret and key in inputs.project_values
    ]


def _plain_config(inputs: StackInputs, detector: Detector) -> list[Problem]:
    """Provider credentials and secret-looking values among the plain (non-secure) config."""
    problems = []
    layers = [(inputs.stack_file, {k: v.value for k, v in inputs.values.items()
                                   if not v.secure}),
              (inputs.project_file, inputs.project_values)]
    for file, values in layers:
        for key, value in sorted(values.items()):
            declared = inputs.declarations.get(key)
            if key in KNOWN_KEYS or (declared is not None and declared.secret):
                continue  # the configuration document (checked below) or a declared secret
            if key in PROVIDER_CREDENTIALS:
                problems.append((f"config.{key}", file,
                                 f"`{key}` is a provider credential in plaintext. Fix: run "
                                 f"`pulumi config set --secret {key} --stack {inputs.stack}` "
                                 f"(it is then encrypted in the stack file) {_ROTATE}."))
                continue
            for rel, rules in _flagged(key.rsplit(":", 1)[-1], value, detector):
                path = f"config.{key}" + (f".{rel}" if rel else "")
                problems.append((path, file,
                                 f"looks like a plaintext credential ({', '.join(rules)}). Fix: "
                                 f"run `pulumi config set --secret {key} --stack {inputs.stack}` "
                                 f"{_ROTATE}."))
    return problems


def _flagged(key: str, value: Any, detector: Detector,
             rel: str = "") -> Iterable[tuple[str, tuple[str, ...]]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _flagged(str(k), v, detector, f"{rel}.{k}" if rel else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _flagged(key, v, detector, f"{rel}[{i}]" if rel else f"[{i}]")
    elif not is_name_slot(key):
        rules = detector.rules(key, value)
        if not rules and url_userinfo(value):
            rules = ("url-userinfo",)
        if rules:
            yield rel, rules


def _unknown_keys(inputs: StackInputs) -> list[Problem]:
    referenced = set()
    for document in (inputs.defaults, inputs.environment):
        services = document.get("services") if isinstance(document, Mapping) else None
        for svc in (services or {}).values() if isinstance(services, Mapping) else ():
            secrets = svc.get("secrets") if isinstance(svc, Mapping) else None
            for spec in (secrets or {}).values() if isinstance(secrets, Mapping) else ():
                if isinstance(spec, Mapping) and isinstance(spec.get("config_key"), str):
                    referenced.add(f"{NAMESPACE}:{spec['config_key']}")
    known = KNOWN_KEYS | set(inputs.declarations) | referenced
    problems = []
    for file, keys in ((inputs.stack_file, inputs.values), (inputs.project_file,
                                                              inputs.project_values)):
        for key in sorted(keys):
            if not key.startswith(f"{NAMESPACE}:") or key in known:
                continue
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`?" if close else "remove it"
            problems.append((f"config.{key}", file,
                             f"unknown key `{key}`: configplane reads only "
                             f"{', '.join(sorted(KNOWN_KEYS))} and the secure keys declared in "
                             f"{inputs.project_file}. Fix: {hint}"))
    return problems


# --- the merged, typed document ----------------------------------------------------------


def document_problems(inputs: StackInputs, document: Any,
                      flags: Mapping[str, RenderedConfigMap | None],
                      where: Callable[[list[str]], str]) -> list[Problem]:
    """Checks over the validated document and each service's flags ConfigMap as the service
    checks rendered it (`flags`: None where there are none or they are invalid)."""
    problems: list[Problem] = []
    problems += _collisions(document, where)
    problems += _rotation(document, where)
    problems += _sizes(document, flags, where)
    problems += _environment(inputs, document, where)
    problems += _regions(document, where)
    return problems


def _regions(document: Any, where: Callable[[list[str]], str]) -> list[Problem]:
    """Backups and replicas are for the loss of the environment's region: never in it."""
    aws, backup = document.platform.aws, document.platform.backup
    problems: list[Problem] = []
    if backup is not None and backup.region == aws.region:
        path = ["platform", "backup", "region"]
        problems.append((dotted(path), where(path),
                         f"the backup bucket would be in {aws.region}, the environment's own "
                         "region: a regional outage would take the backups with it. Fix: set "
                         "platform.backup.region to another region."))
    seen: set[str] = set()
    for n, region in enumerate(aws.replica_regions):
        path = ["platform", "aws", "replica_regions", str(n)]
        if region == aws.region:
            problems.append((dotted(path), where(path),
                             f"{region} is the environment's own region: Secrets Manager keeps "
                             "the primary there. Fix: list other regions only."))
        elif region in seen:
            problems.append((dotted(path), where(path),
                             f"{region} is listed twice. Fix: list each region once."))
        seen.add(region)
    return problems


def _plaintext_in_layer(file: str, document: Any, detector: Detector) -> list[Problem]:
    """Every string that reaches a resource (config values, descriptions, addresses, database
    coordinates, flags) judged by the detector with its key, and URLs with userinfo."""
    problems = []
    leaves: list[tuple[tuple[str, ...], str, Any]] = []
    names: list[tuple[str, ...]] = []
    _walk(document, (), "", leaves, names)
    for path, key, value in leaves:
        if len(path) >= 4 and path[0] == "services" and path[2] == "secrets":
            rel = path[4:]
            if not rel or rel[0] not in SPEC_METADATA[""]:
                continue  # the secret itself, or an unknown field: the schema reports it
        if is_name_slot(key):  # a name (an owner, a config key): judged as an identifier
            if rules := detect_name(value, detector):
                problems.append((dotted(path), file, _named_like_a_credential(rules)))
            continue
        rules = plaintext_rules(key, value, detector)
        if rules:
            problems.append((dotted(path), file,
                             f"looks like a plaintext credential ({', '.join(rules)}): it would "
                             "be stored and shown in plaintext (ConfigMap, resource description "
                             "or address). Fix: make it a secret of the service (`secrets:` "
                             "with source: secure, or a reference; an address without "
                             f"user:password@) {_ROTATE}."))
    for path in names:
        if rules := detect_name(path[-1], detector):
            problems.append((dotted(path), file, _named_like_a_credential(rules)))
    return problems


def _named_like_a_credential(rules: tuple[str, ...]) -> str:
    return (f"a name that looks like a credential ({', '.join(rules)}): names are shown and "
            "written everywhere (resource names, outputs, CODEOWNERS, logs), so it is not "
            f"shown here. Fix: rename it {_ROTATE}.")


def _walk(value: Any, path: tuple[str, ...], key: str,
          leaves: list[tuple[tuple[str, ...], str, Any]], names: list[tuple[str, ...]]) -> None:
    """Into `leaves`, (path, key, value) of every scalar that is text or a number (a list's
    items have the key of the list); into `names`, the path of every mapping key (a service,
    tenant, flag or secret name, a config key); both in document order. One pass that
    appends, not generators: every layer of every stack is walked."""
    if isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
        leaves.append((path, key, value))
    elif type(value) is dict or isinstance(value, Mapping):
        for k, v in value.items():
            sub = (*path, str(k))
            names.append(sub)
            _walk(v, sub, sub[-1], leaves, names)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk(v, (*path, str(i)), key, leaves, names)


def _collisions(document: Any, where: Callable[[list[str]], str]) -> list[Problem]:
    problems = []
    for name, spec in document.services.items():  # namespaces: configplane.validation.ownership
        seen: dict[str, str] = {}
        for key in spec.secrets:
            norm = normalised_key(key)
            if norm in seen:
                path = ["services", name, "secrets", key]
                problems.append((dotted(path), where(path),
                                 f"secrets `{seen[norm]}` and `{key}` have the same resource "
                                 f"name once normalised (`{norm}`: lowercase, '_' becomes '-'), "
                                 "so the plan would declare one URN twice. Fix: rename one."))
            else:
                seen[norm] = key
        for tenant, tenant_spec in spec.tenants.items():
            for key in sorted(set(tenant_spec.config) & set(spec.secrets)):
                path = ["services", name, "tenants", tenant, "config", key]
                problems.append((dotted(path), where(path),
                                 f"`{key}` is a secret of `{name}` and a config key of tenant "
                                 f"`{tenant}`: the pod would get two values for one variable. "
                                 "Fix: keep it in one place."))
    return problems


# Reported per secret with its own path already (configplane.validation.service_checks).
_REPORTED_PER_SECRET = frozenset({MASTER_SECRET_MISSING, MASTER_SECRET_UNUSED, DATABASE_NETWORK,
                                  ENVIRONMENT_NAME})


def _rotation(document: Any, where: Callable[[list[str]], str]) -> list[Problem]:
    """The rotation component's own rules (configplane.model.rotation_rules) on what the program
    would hand it; the strategy/database/master-secret rules are checked per secret already."""
    owners: dict[str, list[str]] = {}
    rotated = []
    for name, service in document.services.items():
        for key, rname in rotated_secrets(name, service.secrets).items():
            spec = service.secrets[key]
            owners.setdefault(rname, []).append(dotted(["services", name, "secrets", key,
                                                        "rotation"]))
            rotated.append((rname, spec.rotation.strategy,
                            spec.rotation.master_secret_arn is not None))
    if not rotated:
        return []
    settings = document.platform.rotation
    expression = settings.schedule_expression
    found = rotation_problems(document.platform.environment, rotated,
                              None if expression else settings.schedule_days, expression,
                              settings.subnet_ids, settings.security_group_ids)
    problems = []
    reported = set()
    for problem in found:
        if problem.code in _REPORTED_PER_SECRET:
            continue
        message = problem.message
        if problem.secret is not None:
            paths = owners.get(problem.secret, [])[1:] or owners.get(problem.secret, [])[:1]
        elif problem.code in SCHEDULE_CODES:
            paths = ["platform.rotation." + ("schedule_expression" if expression else
                                             "schedule_days")]
        else:
            paths = ["platform.rotation.security_group_ids"]
        for path in paths:
            if (path, message) in reported:
                continue
            reported.add((path, message))
            problems.append((path, where(path.split(".")),
                             f"rotation: {message}. Fix: correct the setting (the rotation "
                             "component refuses it)."))
    return problems


def _sizes(document: Any, rendered_flags: Mapping[str, RenderedConfigMap | None],
           where: Callable[[list[str]], str]) -> list[Problem]:
    problems = []
    for name, service in document.services.items():
        rendered = [("flags", rendered_flags.get(name))]
        for cm_path, cm in rendered:
            if cm is None:
                continue
            size = sum(len(k.encode()) + len(v.encode()) for k, v in cm.data.items())
            if size > MAX_CONFIGMAP_BYTES:
                flags = service.flags
                biggest = max(flags, key=lambda f: len(repr(flags[f])))  # the file that grew it
                path = ["services", name, cm_path, biggest]
                problems.append((dotted(path), where(path),
                                 f"ConfigMap {cm.base_name} would be {size} bytes; Kubernetes "
                                 f"allows {MAX_CONFIGMAP_BYTES}. Fix: remove or shorten flags."))
    return problems


def _environment(inputs: StackInputs, document: Any,
                 where: Callable[[list[str]], str]) -> list[Problem]:
    env = document.platform.environment
    stack = inputs.stack.rsplit("/", 1)[-1]
    if stack == env or stack.startswith(f"{env}-"):
        return []
    path = ["platform", "environment"]
    return [(dotted(path), where(path),
             f"stack `{inputs.stack}` says environment `{env}`: resources would be named and "
             f"labelled for {env}, and could collide with that environment's. Fix: set "
             f"platform.environment to `{stack}` (or name the stack `{env}` or `{env}-<suffix>`).")]
