"""Flags ConfigMaps change live: flagd hot-reloads the mounted file.

A ConfigMap annotated `configplane.io/schema: flags` keeps one stable name and is updated in
place, so it must be mutable (an immutable one cannot be updated; a new name per flip means a
redeploy), must not carry a Reloader match (a flag flip would restart every pod that watches
it) and must not be named by its content hash (that name would change on every flip).
configmap-hygiene's immutable/hashed-name rules do not apply to it.

Also here: the registry of vendored schemas (schemas/vendor, through the `schemas` symlink),
so `flags.schema.json`'s `$ref` to flagd's own flags.json resolves.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from contract import FLAGS_SCHEMA, RELOADER_ANNOTATIONS, SCHEMA_ANNOTATION
from packlib import UNKNOWN, Reporter, for_types, get, kustomize_hash, plain, resource_label
from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy
from referencing import Registry, Resource
from resource_types import CONFIGMAP

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"


WHY_FIX_IMMUTABLE = (
    "Why: flagd hot-reloads the mounted file only if the ConfigMap is updated in place; an "
    "immutable one turns every flag flip into a redeploy. Fix: drop immutable (the program's "
    "flags ConfigMap is mutable with a stable name).")
WHY_FIX_RELOADER = ("Why: Reloader would restart every pod on each flag flip, which flagd "
                    "applies live. Fix: remove the annotation from the flags ConfigMap.")
WHY_FIX_HASHED_NAME = (
    "Why: the name would change on every flag flip, so pods would need a new mount and a "
    "restart. Fix: name it `<service>-flags` and update it in place.")


@cache
def vendored_registry() -> Registry:
    """Every vendored schema (schemas/vendor/**/*.json with an `$id`, test cases excluded)."""
    vendor = SCHEMAS_DIR / "vendor"
    resources = []
    for path in sorted(vendor.rglob("*.json")):
        if "test" in path.relative_to(vendor).parts:
            continue
        contents = json.loads(path.read_text())
        if isinstance(contents, dict) and "$id" in contents:
            resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


def is_flags_configmap(props: Any) -> bool:
    return get(props, "metadata", "annotations", SCHEMA_ANNOTATION) == FLAGS_SCHEMA


@for_types(CONFIGMAP)
def flags_configmap_live(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    props = plain(args.props)
    if not is_flags_configmap(props):
        return
    report = Reporter("flags-configmap-live", args.get_config(), report_violation)
    label = resource_label(args.resource_type, args.name)
    if props.get("immutable") is True:
        report(args.name, f"{label} holds flags but is immutable. {WHY_FIX_IMMUTABLE}")
    annotations = get(props, "metadata", "annotations", default={}) or {}
    if annotations is not UNKNOWN:
        reloading = [a for a in RELOADER_ANNOTATIONS if str(annotations.get(a)) == "true"]
        if reloading:
            report(args.name, f"{label} holds flags but carries {', '.join(reloading)}. "
                   f"{WHY_FIX_RELOADER}")
    name = get(props, "metadata", "name")
    data = props.get("data") or {}
    binary = props.get("binaryData") or {}
    if UNKNOWN in (name, data, binary) or not isinstance(name, str) or not name:
        return
    if UNKNOWN in data.values() or UNKNOWN in binary.values():
        return
    if name.endswith(f"-{kustomize_hash(data, binary)}"):
        report(args.name, f'{label}: its name "{name}" ends with the content hash. '
               f"{WHY_FIX_HASHED_NAME}")


POLICIES = [
    ResourceValidationPolicy(
        name="flags-configmap-live",
        description="Flags ConfigMaps keep a stable name, are mutable and carry no Reloader "
                    "match, so flagd applies a flag flip live without restarting pods.",
        validate=flags_configmap_live,
    ),
]
