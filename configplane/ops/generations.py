"""Config generations in the cluster, read from what kubectl lists.

A config change gives a service's ConfigMap a new content-hashed name; the program retains the
old one on delete, so the cluster holds the service's previous generations. The history lives
there, and every generation vouches for itself: labelled managed-by configplane with the
ConfigMap it is a generation of, named `<base>-<hash>`, and its data hashes (kustomize's
algorithm, configplane.hashing) to that hash. The stack's model gives the current generation.
Order is the API server's `metadata.creationTimestamp` (then the name), never the program's clock:
the program stays deterministic and an offline plan diffs nothing.

Inputs are `kubectl ... -o json` documents (ConfigMaps; workloads, ReplicaSets and
ControllerRevisions). This module reads them; configplane.ops.prune says which generations go,
configplane.ops.rollback what to run to point a workload back. None of them calls kubectl.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from configplane.contract import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    ENVIRONMENT_LABEL,
    FLAGS_SCHEMA,
    GENERATION_OF_LABEL,
    HASH_ANNOTATION,
    HASH_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MAX_NAME_LENGTH,
    SCHEMA_ANNOTATION,
    SERVICE_LABEL,
)
from configplane.hashing import configmap_hash

HASH_PATTERN = re.compile(r"[a-z0-9]{10}")  # configmap_hash's suffix: fullmatch only
_KIND = re.compile(r"[A-Z][A-Za-z0-9]{0,62}")  # a Kubernetes kind: safe to quote back
LISTING_COMMAND = (
    f"kubectl get configmaps -A -l {MANAGED_BY_LABEL}={MANAGED_BY} -o json"
)
WORKLOADS_COMMAND = (
    "kubectl get deployments,replicasets,statefulsets,daemonsets,controllerrevisions,"
    "cronjobs,jobs -A -o json"
)


class ListingError(Exception):
    """A kubectl document that cannot be used: the message names the file, key path and fix."""


def is_object_name(value: object) -> bool:
    """A Kubernetes object name (RFC 1123 subdomain), matched whole: what may reach a command."""
    return (isinstance(value, str) and len(value) <= MAX_NAME_LENGTH
            and re.fullmatch(DNS_SUBDOMAIN, value) is not None)


def is_namespace(value: object) -> bool:
    """A Kubernetes namespace name (RFC 1123 label), matched whole."""
    return isinstance(value, str) and len(value) <= 63 and re.fullmatch(DNS_LABEL, value) is not None


@dataclass(frozen=True)
class Generation:
    namespace: str
    name: str
    base: str
    hash: str
    service: str
    environment: str
    created: str  # RFC 3339, as the API server wrote it
    intact: bool  # the data hashes to the name's hash

    @property
    def group(self) -> tuple[str, str]:
        return self.namespace, self.base

    def as_dict(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "configmap": self.name, "hash": self.hash,
                "created": self.created}


def newest_first(generations: Iterable[Generation]) -> list[Generation]:
    return sorted(generations, key=lambda g: (g.created, g.name), reverse=True)


# ---------------------------------------------------------------------------------------------
# Reading kubectl documents


def _items(text: str, source: str, fix: str) -> list[tuple[str, dict[str, Any]]]:
    """The objects of a `kubectl get -o json` document (a List, or one object), with paths."""
    try:
        document = json.loads(text)
    except RecursionError:
        raise ListingError(f"{source}: nested too deeply to read. Fix: {fix}") from None
    except json.JSONDecodeError as exc:
        raise ListingError(f"{source}: not JSON ({exc.msg} at line {exc.lineno} column "
                           f"{exc.colno}). Fix: {fix}") from None
    if not isinstance(document, dict):
        raise ListingError(f"{source}: (root): expected a JSON object (a kubectl List). Fix: {fix}")
    if "items" not in document:
        if "kind" in document and "metadata" in document:
            return [("(root)", document)]
        raise ListingError(f"{source}: items: missing (not a kubectl List). Fix: {fix}")
    items = document["items"]
    if not isinstance(items, list):
        raise ListingError(f"{source}: items: expected a list. Fix: {fix}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ListingError(f"{source}: items[{i}]: expected an object. Fix: {fix}")
        out.append((f"items[{i}]", item))
    return out


def _require_str(obj: Mapping[str, Any], key: str, where: str, source: str, fix: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ListingError(f"{source}: {where}.{key}: missing or not a string. Fix: {fix}")
    return value


def _mapping(obj: Mapping[str, Any], key: str, where: str, source: str, fix: str) -> dict:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ListingError(f"{source}: {where}.{key}: expected an object. Fix: {fix}")
    return value


def parse_configmaps(text: str, source: str) -> list[Generation]:
    """The config generations in a ConfigMap listing; other ConfigMaps (flags, not configplane's)
    are left out. Raises ListingError for a document that is not such a listing."""
    fix = f"pass the output of `{LISTING_COMMAND}` (a file, or - for stdin)."
    generations = []
    for where, item in _items(text, source, fix):
        kind = item.get("kind", "ConfigMap")
        if kind != "ConfigMap":
            shown = f"{kind!r} is" if isinstance(kind, str) and _KIND.fullmatch(kind) else "it is"
            raise ListingError(f"{source}: {where}.kind: {shown} not a ConfigMap. Fix: {fix}")
        meta = _mapping(item, "metadata", where, source, fix)
        if not meta:
            raise ListingError(f"{source}: {where}.metadata: missing. Fix: {fix}")
        at = f"{where}.metadata"
        name = _require_str(meta, "name", at, source, fix)
        namespace = _require_str(meta, "namespace", at, source, fix)
        labels = _mapping(meta, "labels", at, source, fix)
        annotations = _mapping(meta, "annotations", at, source, fix)
        data = _mapping(item, "data", where, source, fix)
        binary = _mapping(item, "binaryData", where, source, fix)
        config_hash = annotations.get(HASH_ANNOTATION) or labels.get(HASH_LABEL)
        if (labels.get(MANAGED_BY_LABEL) != MANAGED_BY or not isinstance(config_hash, str)
                or annotations.get(SCHEMA_ANNOTATION) == FLAGS_SCHEMA
                or not name.endswith(f"-{config_hash}") or not HASH_PATTERN.fullmatch(config_hash)):
            continue  # not a content-hashed config generation
        created = _require_str(meta, "creationTimestamp", at, source, fix)
        base = labels.get(GENERATION_OF_LABEL)
        if not isinstance(base, str) or not base:
            base = name[: -len(config_hash) - 1]
        # what reaches a printed command is checked whole: no API server lists other names
        if not is_object_name(name) or not is_object_name(base) or name != f"{base}-{config_hash}":
            raise ListingError(f"{source}: {at}.name: not the Kubernetes name of a config "
                               f"generation (`<ConfigMap>-<hash>`, RFC 1123, the "
                               f"{GENERATION_OF_LABEL} label's value before the hash). Fix: {fix}")
        if not is_namespace(namespace):
            raise ListingError(f"{source}: {at}.namespace: not a Kubernetes namespace name "
                               f"(RFC 1123 label). Fix: {fix}")
        generations.append(Generation(
            namespace=namespace, name=name, base=base, hash=config_hash,
            service=str(labels.get(SERVICE_LABEL, "")),
            environment=str(labels.get(ENVIRONMENT_LABEL, "")),
            created=created,
            intact=configmap_hash(data, binary or None) == config_hash,
        ))
    return generations


@dataclass(frozen=True)
class ConfigMapRef:
    """A pod template's reference to a ConfigMap, as a JSON pointer into its workload."""

    pointer: str
    name: str


def pod_template_path(kind: str) -> list[str] | None:
    """Where an object of this kind keeps its pod template (None: it has none)."""
    return {
        "Deployment": ["spec", "template"], "ReplicaSet": ["spec", "template"],
        "StatefulSet": ["spec", "template"], "DaemonSet": ["spec", "template"],
        "Job": ["spec", "template"], "CronJob": ["spec", "jobTemplate", "spec", "template"],
        "ControllerRevision": ["data", "spec", "template"], "Pod": [],
    }.get(kind)


def configmap_refs(obj: Mapping[str, Any]) -> Iterator[ConfigMapRef]:
    """Every ConfigMap an object's pod template uses: envFrom, env valueFrom, volumes and
    projected volumes, in containers and init containers."""
    path = pod_template_path(str(obj.get("kind", "")))
    if path is None:
        return
    template: Any = obj
    for key in path:
        template = _dict(template).get(key)
    spec = _dict(_dict(template).get("spec"))  # a pod template's spec, or a Pod's own
    spec_ptr = "".join(f"/{key}" for key in path) + "/spec"
    # A listing is foreign: any field may have another shape; such a field holds no reference.
    for group in ("initContainers", "containers"):
        for i, container in enumerate(_list(spec.get(group))):
            yield from _container_refs(_dict(container), f"{spec_ptr}/{group}/{i}")
    for k, volume in enumerate(_list(spec.get("volumes"))):
        yield from _volume_refs(_dict(volume), f"{spec_ptr}/volumes/{k}")


def _container_refs(container: Mapping[str, Any], at: str) -> Iterator[ConfigMapRef]:
    for j, source in enumerate(_list(container.get("envFrom"))):
        name = _dict(_dict(source).get("configMapRef")).get("name")
        if isinstance(name, str):
            yield ConfigMapRef(f"{at}/envFrom/{j}/configMapRef/name", name)
    for j, var in enumerate(_list(container.get("env"))):
        ref = _dict(_dict(_dict(var).get("valueFrom")).get("configMapKeyRef"))
        if isinstance(ref.get("name"), str):
            yield ConfigMapRef(f"{at}/env/{j}/valueFrom/configMapKeyRef/name", ref["name"])


def _volume_refs(volume: Mapping[str, Any], at: str) -> Iterator[ConfigMapRef]:
    name = _dict(volume.get("configMap")).get("name")
    if isinstance(name, str):
        yield ConfigMapRef(f"{at}/configMap/name", name)
    for m, source in enumerate(_list(_dict(volume.get("projected")).get("sources"))):
        name = _dict(_dict(source).get("configMap")).get("name")
        if isinstance(name, str):
            yield ConfigMapRef(f"{at}/projected/sources/{m}/configMap/name", name)


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def parse_workloads(text: str, source: str) -> list[dict[str, Any]]:
    """The objects of a workload listing (or one workload), checked enough to be walked."""
    fix = (f"pass the output of `{WORKLOADS_COMMAND}` or of `kubectl get deployment/<name> "
           "-n <namespace> -o json`.")
    objects = []
    for where, item in _items(text, source, fix):
        _require_str(item, "kind", where, source, fix)
        meta = _mapping(item, "metadata", where, source, fix)
        _require_str(meta, "name", f"{where}.metadata", source, fix)
        objects.append(item)
    return objects


def in_use(workloads: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """(namespace, ConfigMap name) of everything the given workloads and their histories use."""
    used = set()
    for obj in workloads:
        namespace = str(_dict(obj.get("metadata")).get("namespace", ""))
        used |= {(namespace, ref.name) for ref in configmap_refs(obj)}
    return used
