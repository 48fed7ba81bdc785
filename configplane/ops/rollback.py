"""What `configplane rollback` prints to point a workload back at an earlier config generation:
an exact JSON patch of its ConfigMap references and `checksum/config` when the workload is
given, else `kubectl rollout undo`; then how to verify it.

Input is configplane.ops.generations' reading of the cluster; this module says what to run and
never calls kubectl.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from configplane.contract import CHANGE_CAUSE_ANNOTATION, CHECKSUM_ANNOTATION
from configplane.ops.generations import (
    HASH_PATTERN,
    LISTING_COMMAND,
    ConfigMapRef,
    Generation,
    configmap_refs,
    is_object_name,
    newest_first,
)
from configplane.projectfiles import shown

ROLLOUT_KINDS = {"Deployment": "deployment", "StatefulSet": "statefulset",
                 "DaemonSet": "daemonset"}


class RollbackError(Exception):
    """The rollback cannot be planned: the message says why and what to do."""


@dataclass(frozen=True)
class Workload:
    kind: str  # deployment, statefulset, daemonset (kubectl's resource name)
    name: str
    namespace: str

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


def rollback_commands(generations: list[Generation], *, base: str, namespace: str,
                      current_hash: str, service: str, to_hash: str | None = None,
                      workload: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What to run to point a workload back at an earlier generation of `base`.

    `generations` is the cluster's listing; `current_hash` the generation the stack declares.
    With a workload document the current generation is the one it references, and the answer
    is an exact JSON patch of its ConfigMap references and `checksum/config`; without, the
    previous generation through `kubectl rollout undo`."""
    group = newest_first(g for g in generations if g.group == (namespace, base))
    known = ", ".join(g.hash for g in group) or "none"
    if not group:
        raise RollbackError(f"no generation of ConfigMap {base} in namespace {namespace} in the "
                            f"listing. Fix: list the right cluster and namespace with "
                            f"`{LISTING_COMMAND}`.")
    target_wl = None
    refs: list[ConfigMapRef] = []
    if workload is not None:
        target_wl, refs = _workload_refs(workload, base, namespace, group)
        referenced = sorted({r.name[len(base) + 1:] for r in refs})
        if len(referenced) != 1:
            raise RollbackError(f"{target_wl.ref} references generations {', '.join(referenced)} "
                                f"of {base} at once. Fix: point them at one generation first.")
        current_hash = referenced[0]
    by_hash = {g.hash: g for g in group}
    current = by_hash.get(current_hash)
    if to_hash is not None:
        target = by_hash.get(to_hash)
        if target is None:
            raise RollbackError(f"generation {to_hash} of {base} is not in the cluster listing "
                                f"(namespace {namespace}). Generations present, newest first: "
                                f"{known}. Fix: pick one of them with --to.")
    else:
        if current is None:
            raise RollbackError(f"the current generation {current_hash} of {base} is not in the "
                                f"listing (not deployed yet, or another cluster). Generations "
                                f"present, newest first: {known}. Fix: pick one with --to.")
        older = group[group.index(current) + 1:]
        if not older:
            raise RollbackError(f"{base} has no generation older than the current {current_hash} "
                                f"in the cluster (pruned, or the first deploy). Nothing to roll "
                                "back to.")
        target = older[0]
    if target.hash == current_hash:
        raise RollbackError(f"{base} is already at generation {target.hash}. Nothing to do.")
    if not target.intact:
        raise RollbackError(f"ConfigMap {target.name} in {namespace}: its data does not hash to "
                            f"{target.hash}, so it is not the generation configplane wrote "
                            "(changed by hand?). Refusing to roll back to it. Fix: pick another "
                            "generation with --to.")
    result: dict[str, Any] = {
        "configmap": base, "namespace": namespace,
        "current": current.as_dict() if current else {"hash": current_hash,
                                                      "configmap": f"{base}-{current_hash}"},
        "target": target.as_dict(),
        "generations": [{**g.as_dict(), "current": g.hash == current_hash,
                         "target": g is target} for g in group],
    }
    if workload is None or target_wl is None:  # (both or neither)
        if to_hash is not None:
            raise RollbackError(f"--to needs --workload: the patch that points a workload at "
                                f"{target.name} names its ConfigMap references. Fix: run "
                                f"`kubectl get deployment/{service} -n {namespace} -o json "
                                f"> {service}.json` and add --workload {service}.json.")
        wl = Workload("deployment", service, namespace)
        result["method"] = "rollout-undo"
        argv = [["kubectl", "rollout", "undo", wl.ref, "-n", namespace]]
        result["caveat"] = ("`rollout undo` restores the previous pod template; when the last "
                            "rollout was not this config change (an image bump), run with "
                            "--workload for an exact patch instead.")
    else:
        wl = target_wl
        patch = [{"op": "replace", "path": r.pointer, "value": target.name} for r in refs]
        patch += _checksum_ops(workload, target.hash)
        result["method"] = "patch"
        result["patch"] = patch
        cause = f"configplane rollback {base} to {target.hash}"
        argv = [
            ["kubectl", "patch", wl.ref, "-n", namespace, "--type=json",
             "-p", json.dumps(patch, separators=(",", ":"))],
            ["kubectl", "annotate", wl.ref, "-n", namespace, "--overwrite",
             f"{CHANGE_CAUSE_ANNOTATION}={cause}"],
        ]
    verify = [
        ["kubectl", "rollout", "status", wl.ref, "-n", namespace, "--timeout=120s"],
        ["kubectl", "get", wl.ref, "-n", namespace, "-o",
         "jsonpath={.spec.template.metadata.annotations.checksum/config}"],
    ]
    # Commands are argv lists (for tools) and the same joined for a shell: every name in
    # them was checked whole (is_object_name, the model's namespace, a listed hash).
    result["workload"] = wl.ref
    result["argv"] = argv
    result["commands"] = [shlex.join(a) for a in argv]
    result["verify_argv"] = verify
    result["verify"] = [shlex.join(a) for a in verify]
    result["verify_prints"] = target.hash  # what the second verify command prints
    return result


def _workload_refs(workload: Mapping[str, Any], base: str, namespace: str,
                   group: list[Generation]) -> tuple[Workload, list[ConfigMapRef]]:
    kind = str(workload.get("kind", ""))
    meta = workload.get("metadata") or {}
    if kind not in ROLLOUT_KINDS:
        raise RollbackError(f"--workload is a {kind or 'document without kind'}; rollback patches "
                            f"a Deployment, StatefulSet or DaemonSet. Fix: `kubectl get "
                            f"deployment/<name> -n {namespace} -o json`.")
    wl = Workload(ROLLOUT_KINDS[kind], str(meta.get("name")), str(meta.get("namespace", "")))
    if not is_object_name(wl.name):
        raise RollbackError("--workload: metadata.name is not a Kubernetes object name (RFC "
                            f"1123). Fix: `kubectl get deployment/<name> -n {namespace} -o json`.")
    if wl.namespace != namespace:
        raise RollbackError(f"--workload {wl.ref} is in namespace {shown(wl.namespace) or '(none)'}, "
                            f"the service's config is in {namespace}. Fix: pass the service's "
                            "workload.")
    names = {g.name for g in group}
    refs = [r for r in configmap_refs(workload)
            if r.name in names or _looks_like_generation(r.name, base)]
    if not refs:
        raise RollbackError(f"{wl.ref} references no generation of {base}; there is nothing to "
                            "point back. Fix: check that --workload is this service's workload.")
    return wl, refs


def _looks_like_generation(name: str, base: str) -> bool:
    return name.startswith(f"{base}-") and bool(HASH_PATTERN.fullmatch(name[len(base) + 1:]))


def _checksum_ops(workload: Mapping[str, Any], config_hash: str) -> list[dict[str, Any]]:
    spec = workload.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    metadata = template.get("metadata") if isinstance(template, dict) else None
    if not isinstance(metadata, dict):
        return [{"op": "add", "path": "/spec/template/metadata",
                 "value": {"annotations": {CHECKSUM_ANNOTATION: config_hash}}}]
    if not isinstance(metadata.get("annotations"), dict):
        return [{"op": "add", "path": "/spec/template/metadata/annotations",
                 "value": {CHECKSUM_ANNOTATION: config_hash}}]
    op = "replace" if CHECKSUM_ANNOTATION in metadata["annotations"] else "add"
    return [{"op": op, "path": f"/spec/template/metadata/annotations/"
             f"{_escape(CHECKSUM_ANNOTATION)}", "value": config_hash}]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
