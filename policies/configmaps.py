"""ConfigMaps: immutable, named by their content hash, within size, labelled
(configmap-hygiene), and their data valid against the schema they name (configmap-schema).

Flags ConfigMaps change live and follow flags_live.py instead of the name and immutability
rules; their data is checked against flagd's own schema (vendored under schemas/vendor)."""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import re2
import service_schema
from contract import (
    FLAGS_DATA_KEY,
    FLAGS_SCHEMA,
    MAX_CONFIGMAP_BYTES,
    REQUIRED_LABELS,
    SCHEMA_ANNOTATION,
    SCHEMA_ANNOTATION_VALUE,
    SCHEMA_SECRET_KEYS,
    SERVICE_LABEL,
)
from flags_live import is_flags_configmap, vendored_registry
from packlib import (
    UNKNOWN,
    Reporter,
    config_schema,
    for_types,
    get,
    kustomize_hash,
    num,
    plain,
    resource_label,
)
from plaintext_secrets import decoded
from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy
from resource_types import CONFIGMAP
from schema_messages import deepest, drop_required, pack_message
from secret_detector import key_kind

WHY_FIX_MUTABLE = ("Why: a mutable ConfigMap changes under running pods and cannot be rolled "
                   "back by name. Fix: set immutable: true and give each content a new hashed "
                   "name.")
WHY_FIX_NO_NAME = ("Why: Pulumi would append a random suffix, not the content hash, so the name "
                   "would not change with the content. Fix: name it "
                   "`<base>-<kustomize hash of the data>`.")
WHY_FIX_STALE_NAME = ("Why: immutable ConfigMaps roll forward by name; a stale suffix means "
                      "changed data under an old name. Fix: derive the name from the data "
                      "(kustomize's hash, as configplane's renderer does).")
WHY_FIX_TOO_BIG = ("Why: Kubernetes rejects objects over 1 MiB and large ConfigMaps slow every "
                   "watcher. Fix: move large content out of configuration.")
WHY_FIX_LABELS = ("Why: they say which service, system and environment own it and that "
                  "configplane manages it. Fix: add them (ServiceModel.labels).")
WHY_FIX_NO_SCHEMA = ("Why: its data cannot be validated. Fix: annotate it with the service's "
                     "app schema, one of: {available}.")
FIX_UNKNOWN_SCHEMA = "Fix: use one of: {available} (or add schemas/{schema}.schema.json)."
WHY_FIX_SCHEMA = ("Why: the service would start with configuration it does not understand. "
                  "Fix: correct the service's config in the stack file (`configplane validate` "
                  "shows the file and key).")
WHY_FIX_SERVICE_SCHEMA = ("Why: the service's own schema extends its kind within the "
                          "platform's limits (configplane/service_schema.py). Fix: run "
                          "`configplane validate`, which names each problem and its fix.")
SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"  # a symlink to the project's schemas/
CATALOG_DIR = SCHEMAS_DIR.resolve().parent / "services"  # the catalog beside those schemas

# --- configmap-hygiene ----------------------------------------------------------------------------


@for_types(CONFIGMAP)
def configmap_hygiene(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("configmap-hygiene", cfg, report_violation)
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    live = is_flags_configmap(props)  # flags-configmap-live: stable name, mutable
    if props.get("immutable") is not True and not live:
        report(args.name, f"{label} is not immutable. {WHY_FIX_MUTABLE}")
    if props.get("metadata") is UNKNOWN:
        return  # preview: name and labels are computed; checked again during `pulumi up`
    data = props.get("data") or {}
    binary = props.get("binaryData") or {}
    name = get(props, "metadata", "name")
    if live:
        pass
    elif UNKNOWN in (data, binary, name) or UNKNOWN in data.values() or UNKNOWN in binary.values():
        pass  # the hash needs every value: checked again during `pulumi up`
    elif not isinstance(name, str) or not name:
        report(args.name, f"{label} has no metadata.name. {WHY_FIX_NO_NAME}")
    else:
        expected = kustomize_hash(data, binary)
        if not name.endswith(f"-{expected}"):
            report(args.name, f'{label}: its name "{name}" does not end with the content hash '
                   f'"-{expected}". {WHY_FIX_STALE_NAME}')
    if data is not UNKNOWN and binary is not UNKNOWN:
        size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in data.items())
        size += sum(len(str(k).encode()) + len(decoded(v) or str(v)) for k, v in binary.items())
        limit = cfg["maxSizeBytes"]
        if size > limit:
            report(args.name, f"{label} holds {size} bytes of data; at most {num(limit)} "
                   f"allowed. {WHY_FIX_TOO_BIG}")
    labels = get(props, "metadata", "labels", default={}) or {}
    if labels is not UNKNOWN:
        missing = [k for k in cfg["requiredLabels"] if not labels.get(k)]
        if missing:
            report(args.name, f"{label} lacks the label(s) {', '.join(missing)}. "
                   f"{WHY_FIX_LABELS}")


# --- configmap-schema -----------------------------------------------------------------------------


@cache
def _schema_validator(name: str) -> Any:
    schema = json.loads((SCHEMAS_DIR / f"{name}.schema.json").read_text())
    # Keys an app schema takes from secrets reach the pod from its Secret, not the ConfigMap.
    schema = drop_required(schema, schema.get(SCHEMA_SECRET_KEYS, []))
    cls = jsonschema.validators.validator_for(schema)
    # flags.schema.json is a $ref to flagd's own schema, vendored under schemas/vendor
    return cls(schema, format_checker=cls.FORMAT_CHECKER, registry=vendored_registry())


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


@cache
def _re2(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error:
        return None


def _re2_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    # as configplane/inputs/schemafiles.py: a service's patterns run in linear time
    compiled = _re2(pattern)
    if compiled is None:
        yield from jsonschema.Draft202012Validator.VALIDATORS["pattern"](validator, pattern,
                                                                     instance, schema)
    elif validator.is_type(instance, "string") and not compiled.search(instance):
        yield jsonschema.ValidationError(f"does not match {pattern!r}")


def _with_service_schema(kind: Any, kind_name: str, service: str) -> tuple[Any, list[str]]:
    """The kind's validator composed with services/<service>/schema.json when the service has
    one (as `validate` composes it), or None and what is wrong with that file."""
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", service):
        return kind, []  # not a catalog directory's name: nothing to compose
    directory = CATALOG_DIR / service
    path = directory / service_schema.SERVICE_SCHEMA_FILE
    if not os.path.lexists(path):
        return kind, []
    resolved = path.resolve()
    if not resolved.is_relative_to(directory.resolve()) or not resolved.is_file():
        return None, ["not a regular file inside the service's directory"]
    with resolved.open("rb") as handle:
        return _service_validator(kind_name, handle.read(service_schema.MAX_BYTES + 1))


@cache
def _service_validator(kind_name: str, data: bytes) -> tuple[Any, list[str]]:
    kind = json.loads((SCHEMAS_DIR / f"{kind_name}.schema.json").read_text())
    document, problems = service_schema.parse(data)
    effective = None
    if not problems:
        effective, problems = service_schema.compose(
            kind, document, lambda key: key_kind(key).secret_slot,
            lambda pattern: _re2(pattern) is not None)
    if effective is None:
        return None, [f"{'.'.join(p.path) or '(root)'}: {p.message}" for p in problems]
    effective = drop_required(effective, effective.get(SCHEMA_SECRET_KEYS, []))
    cls = jsonschema.validators.validator_for(effective)
    try:
        cls.check_schema(effective)
    except jsonschema.SchemaError:
        return None, ["not a valid JSON Schema once composed with its kind"]
    validator = jsonschema.validators.extend(cls, {"pattern": _re2_pattern})(
        effective, format_checker=cls.FORMAT_CHECKER)
    return validator, []


def _typed(data: dict[str, str], validator: Any) -> dict[str, Any]:
    """ConfigMap strings back to the typed values the renderer wrote (8080, true, [..]) where
    the schema wants them typed."""
    instance: dict[str, Any] = dict(data)
    for key, text in data.items():
        try:
            parsed = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            continue
        if isinstance(parsed, str):
            continue

        def errors_at(candidate: dict[str, Any], key: str = key) -> list[str]:
            return [e.validator for e in validator.iter_errors(candidate)
                    if list(e.absolute_path)[:1] == [key]]

        # typed when the schema rejects the string and accepts the type (maybe not the value)
        if errors_at(instance) and "type" not in errors_at({**instance, key: parsed}):
            instance[key] = parsed
    return instance


@for_types(CONFIGMAP)
def configmap_schema(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    report = Reporter("configmap-schema", args.get_config(), report_violation)
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    schema = get(props, "metadata", "annotations", SCHEMA_ANNOTATION)
    available = ", ".join([FLAGS_SCHEMA] + sorted(
        f"services/{p.name.removesuffix('.schema.json')}"
        for p in (SCHEMAS_DIR / "services").glob("*.schema.json")))
    if schema is UNKNOWN:
        return
    if not schema:
        report(args.name, f"{label} names no schema (annotation {SCHEMA_ANNOTATION}). "
               f"{WHY_FIX_NO_SCHEMA.format(available=available)}")
        return
    if not re.fullmatch(SCHEMA_ANNOTATION_VALUE, str(schema)) \
            or not (SCHEMAS_DIR / f"{schema}.schema.json").is_file():
        report(args.name, f'{label} names the unknown schema "{schema}". '
               f"{FIX_UNKNOWN_SCHEMA.format(available=available, schema=schema)}")
        return
    data = props.get("data") or {}
    if data is UNKNOWN or UNKNOWN in data.values():
        return
    validator = _schema_validator(str(schema))
    service = get(props, "metadata", "labels", SERVICE_LABEL)
    if schema != FLAGS_SCHEMA and isinstance(service, str):
        validator, problems = _with_service_schema(validator, str(schema), service)
        if validator is None:
            report(args.name, f"{label}: services/{service}/{service_schema.SERVICE_SCHEMA_FILE} "
                   f"cannot be used: {'; '.join(problems)}. {WHY_FIX_SERVICE_SCHEMA}")
            return
    if schema == FLAGS_SCHEMA:
        problems = _flags_problems(data, validator)
    else:
        problems = [pack_message(e, "data") for e in validator.iter_errors(_typed(data, validator))]
        problems += [f"data.{key}: comes from the service's Secret, never its ConfigMap"
                     for key in sorted(set(data) & set(validator.schema.get(SCHEMA_SECRET_KEYS, [])))]
    if problems:
        report(args.name, f"{label} does not satisfy schema {schema}: "
               f"{'; '.join(sorted(problems))}. {WHY_FIX_SCHEMA}")


def _flags_problems(data: dict[str, str], validator: Any) -> list[str]:
    extra = sorted(set(data) - {FLAGS_DATA_KEY})
    problems = [f"data: unexpected key(s) {', '.join(extra)}"] if extra else []
    if FLAGS_DATA_KEY not in data:
        return problems + [f"data: missing key {FLAGS_DATA_KEY}"]
    try:
        document = json.loads(data[FLAGS_DATA_KEY])
    except json.JSONDecodeError as e:
        return problems + [f"data.{FLAGS_DATA_KEY}: not valid JSON (line {e.lineno})"]
    problems += [pack_message(deepest(e), f"data.{FLAGS_DATA_KEY}") + " (flagd's schema)"
                 for e in validator.iter_errors(document)]
    flags = document.get("flags") if isinstance(document, dict) else None
    for flag, spec in (flags or {}).items() if isinstance(flags, dict) else ():
        if isinstance(spec, dict) and isinstance(spec.get("variants"), dict) \
                and spec.get("defaultVariant") not in spec["variants"]:
            problems.append(f"data.{FLAGS_DATA_KEY}.flags.{flag}.defaultVariant: names no variant")
    return problems


POLICIES = [
    ResourceValidationPolicy(
        name="configmap-hygiene",
        description="ConfigMaps are immutable, named by their content hash, within size "
                    "and carry the required labels.",
        validate=configmap_hygiene,
        config_schema=config_schema({
            "maxSizeBytes": {"type": "integer", "minimum": 1, "maximum": MAX_CONFIGMAP_BYTES,
                             "default": MAX_CONFIGMAP_BYTES},
            "requiredLabels": {"type": "array", "items": {"type": "string"},
                               "default": list(REQUIRED_LABELS)},
        }, waivable=True),
    ),
    ResourceValidationPolicy(
        name="configmap-schema",
        description="ConfigMap data is valid against the schema the ConfigMap names.",
        validate=configmap_schema,
        config_schema=config_schema(waivable=True),
    ),
]
