"""Property values as the engine hands them to an analyzer: Python values (and the SDK's
secrets, unknowns, assets and resource references) to protobuf Structs with the engine's
signature objects; a resource's options and provider as `AnalyzeRequest` carries them.

The signature key and the secret signature have one home, configplane.redaction.redactor (the plan
and the redaction boundary read the same two strings)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pulumi
from google.protobuf import struct_pb2
from pulumi.runtime.proto import analyzer_pb2

from configplane.offline.results import AnalyzedResource, PolicyPackError
from configplane.redaction import MIN_SECRET_LEN, SECRET_SIG_KEY, SECRET_SIG_VALUE, marked_strings

SIG_KEY = SECRET_SIG_KEY  # the key of every signature object (secret, asset, archive, ...)
ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"
RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def secret(value: Any) -> dict[str, Any]:
    """Wrap a value the way the engine marks a secret."""
    return {SIG_KEY: SECRET_SIG_VALUE, "value": value}


def marshal_properties(props: Mapping[str, Any], *, skip_internal_keys: bool = True
                       ) -> struct_pb2.Struct:
    """Marshal properties into a protobuf Struct as the engine does for analyzers
    (`MarshalProperties` with KeepSecrets, KeepUnknowns, SkipInternalKeys, no resource
    references, no output values)."""
    result = struct_pb2.Struct()
    result.update(_engine_map(props, skip_internal_keys, ""))
    return result


def _engine_map(props: Mapping[str, Any], skip_internal: bool, path: str) -> dict[str, Any]:
    return {
        str(k): _engine_value(v, skip_internal, f"{path}.{k}" if path else str(k))
        for k, v in props.items()
        if not (skip_internal and str(k).startswith("__"))
    }


def _engine_value(value: Any, skip_internal: bool, path: str) -> Any:
    if value is None or isinstance(value, bool | str | int | float):
        return value
    if isinstance(value, Mapping):
        sig = value.get(SIG_KEY)
        if sig is None:
            return _engine_map(value, skip_internal, path)
        if sig == SECRET_SIG_VALUE:
            return {SIG_KEY: SECRET_SIG_VALUE, "value": _engine_value(value.get("value"),
                                                                 skip_internal, path)}
        if sig in (ASSET_SIG, ARCHIVE_SIG):
            return _engine_map(value, False, path)
        if sig == RESOURCE_SIG:  # the engine sends a reference as its ID, else its URN
            if "id" in value:
                return UNKNOWN if value["id"] == "" else value["id"]
            return value.get("urn", "")
        if sig == OUTPUT_SIG:
            inner = _engine_value(value["value"], skip_internal, path) \
                if "value" in value else UNKNOWN
            return secret(inner) if value.get("secret") else inner
        raise PolicyPackError(f"property {path}: unrecognised signature {sig!r}")
    if isinstance(value, list | tuple):
        return [_engine_value(v, skip_internal, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, pulumi.output.Unknown):
        return UNKNOWN
    if isinstance(value, pulumi.Asset | pulumi.Archive):
        return _asset(value, path)
    if isinstance(value, pulumi.Resource):
        return _resource_reference(value)
    raise PolicyPackError(
        f"property {path}: cannot marshal a value of type {type(value).__name__}")


def _asset(value: Any, path: str) -> dict[str, Any]:
    sig = ASSET_SIG if isinstance(value, pulumi.Asset) else ARCHIVE_SIG
    if isinstance(value, pulumi.AssetArchive):
        return {SIG_KEY: sig, "assets": {k: _asset(v, f"{path}.{k}")
                                         for k, v in value.assets.items()}}
    for attr in ("path", "text", "uri"):
        if hasattr(value, attr):
            return {SIG_KEY: sig, attr: getattr(value, attr)}
    raise PolicyPackError(f"property {path}: unsupported asset {type(value).__name__}")


def _resource_reference(res: Any) -> Any:
    """A resource object in mock inputs: its ID if custom and known, else its URN, else
    unknown, matching the engine's marshalling without resource references."""
    for out in ((res.id,) if isinstance(res, pulumi.CustomResource) else ()) + (res.urn,):
        fut = getattr(out, "_future", None)
        if fut is not None and fut.done() and not fut.cancelled() and fut.exception() is None:
            resolved = fut.result()
            if resolved not in (None, ""):
                return resolved
    return UNKNOWN


def secret_strings(values: Iterable[Any]) -> set[str]:
    """Every string inside a secret-marked value, for redaction."""
    return {text for value in values for _, text, marked in marked_strings(value)
            if marked and len(text) >= MIN_SECRET_LEN}


def struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(dict(values))
    return s


def resource_options(r: AnalyzedResource) -> analyzer_pb2.AnalyzerResourceOptions:
    o = r.options
    create, update, delete = o.custom_timeouts
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=o.protect, ignoreChanges=list(o.ignore_changes),
        deleteBeforeReplace=bool(o.delete_before_replace),
        deleteBeforeReplaceDefined=o.delete_before_replace is not None,
        additionalSecretOutputs=list(o.additional_secret_outputs), aliases=list(o.aliases),
        customTimeouts=analyzer_pb2.AnalyzerResourceOptions.CustomTimeouts(
            create=create, update=update, delete=delete),
        parent=r.parent or "")


def provider_resource(r: AnalyzedResource, by_urn: Mapping[str, AnalyzedResource]
              ) -> analyzer_pb2.AnalyzerProviderResource | None:
    # A provider reference is "<provider urn>::<provider id>"; URNs themselves contain "::".
    prov = by_urn.get(r.provider.rsplit("::", 1)[0]) if r.provider else None
    if prov is None:
        return None
    return analyzer_pb2.AnalyzerProviderResource(
        urn=prov.urn, type=prov.type, name=prov.urn_name,
        properties=marshal_properties(prov.inputs))
