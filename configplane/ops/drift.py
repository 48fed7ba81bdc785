"""Drift report: turn `pulumi preview --json` (and its engine event log) into something to act on.

Inputs (read and shape-checked by configplane.ops.drift_input): the `pulumi preview --json`
document, and optionally the engine event log (`--event-log FILE`): its `policyEvent`s, and
the refresh steps' `resOutputsEvent`s, whose metadata carries what refresh found (`diffs`,
`detailedDiff` with `diffKind`, `old`, `new`). This module classifies; the command renders
(configplane.cli.commands.drift_render).

Each changed resource gets one classification:
- `creation`, `deletion`, `replacement`: from the step's op (a replacement's hidden
  create-replacement/delete-replaced steps fold into it);
- `secret-rotated`: an update (or a refresh-only change) of a rotated secret in which every
  changed path is version bookkeeping (`ROTATION_PATHS`): Secrets Manager moved the version
  stages, or someone wrote a new Vault KV version. Expected, reported, never alarmed. A changed
  secret *value* (`secretString`, `dataJson`) is not a rotation: `pulumi up` would write it back;
- `drift`: an update where at least one changed path was changed outside Pulumi. Evidence, in
  order: (1) the event log's refresh step for that resource lists the path; (2) the path's
  `inputDiff` is false (the diff is against the provider's state) and the program's input at that
  path is the same before and after, so the program did not change it; a creation whose refresh
  step found the resource gone is drift too (deleted outside Pulumi). Without the event log,
  providers whose refresh rewrites inputs (the Terraform-bridged ones: aws, vault) make (2)
  impossible to prove, so such a change reads as `config-changed`: pass the event log;
- `config-changed`: any other update: the program's inputs changed (configuration in code).

Exit status: 0 when nothing changes or only secrets rotated (the one exception to
`--expect-no-changes`), 7 when anything else would change (the code `pulumi preview
--expect-no-changes` uses: the stack is not what the code says), 1 when the input is unreadable,
the preview reported errors, or a mandatory policy was violated (as `pulumi preview` itself).

Values never leave this module: states are read only to compare inputs and to find paths; the
report holds URNs, types, names, ops, property paths and policy messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from configplane.ops.pulumi_paths import lookup, parse_path, urn_parts
from configplane.redaction import REDACTED

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_DRIFT = 7

CREATION, DELETION, REPLACEMENT = "creation", "deletion", "replacement"
DRIFT, CONFIG_CHANGED, SECRET_ROTATED = "drift", "config-changed", "secret-rotated"
CLASSIFICATIONS = (DRIFT, CONFIG_CHANGED, REPLACEMENT, DELETION, CREATION, SECRET_ROTATED)

CODE, OUTSIDE = "code", "outside-pulumi"
SECRET = REDACTED  # how `pulumi preview --json` prints a secret, and how configplane does

# Rotated secrets: the top-level properties that are version bookkeeping, not the value.
ROTATION_PATHS: Mapping[str, frozenset[str]] = {
    "aws:secretsmanager/secretVersion:SecretVersion": frozenset({"versionStages"}),
    "vault:kv/secretV2:SecretV2": frozenset({"metadata"}),
}

_REPLACE_OPS = {"replace", "create-replacement", "delete-replaced"}
_CREATE_OPS = {"create", "import", "import-replacement"}
_DELETE_OPS = {"delete"}
_UPDATE_OPS = {"update"}
_COLOR = re.compile(r"<\{%[^%]*%\}>|\x1b\[[0-9;]*m")

@dataclass(frozen=True)
class PathChange:
    path: str
    kind: str
    origin: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "kind": self.kind, "origin": self.origin}


@dataclass(frozen=True)
class ResourceChange:
    urn: str
    type: str
    name: str
    op: str
    classification: str
    reason: str
    paths: tuple[PathChange, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "op": self.op,
            "classification": self.classification,
            "reason": self.reason,
            "paths": [p.as_dict() for p in self.paths],
        }


@dataclass(frozen=True)
class PolicyViolation:
    policy_pack: str
    policy: str
    level: str
    urn: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {
            "policy_pack": self.policy_pack,
            "policy": self.policy,
            "level": self.level,
            "urn": self.urn,
            "message": self.message,
        }


@dataclass(frozen=True)
class DriftReport:
    stack: str
    project: str
    resources: tuple[ResourceChange, ...]
    violations: tuple[PolicyViolation, ...] = ()
    errors: tuple[str, ...] = ()
    change_summary: Mapping[str, int] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return {c: sum(r.classification == c for r in self.resources) for c in CLASSIFICATIONS}

    @property
    def drifted(self) -> bool:
        return any(
            r.classification == DRIFT
            or (r.classification != SECRET_ROTATED and any(p.origin == OUTSIDE for p in r.paths))
            for r in self.resources
        )

    @property
    def status(self) -> str:
        if self.drifted:
            return "drift"
        if any(r.classification != SECRET_ROTATED for r in self.resources):
            return "changes"
        return "secret-rotations-only" if self.resources else "no-changes"

    @property
    def exit_code(self) -> int:
        if self.errors or any(v.level == "mandatory" for v in self.violations):
            return EXIT_ERROR
        return EXIT_DRIFT if self.status in ("drift", "changes") else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "project": self.project,
            "status": self.status,
            "exit_code": self.exit_code,
            "summary": self.counts,
            "resources": [r.as_dict() for r in self.resources],
            "policy_violations": [v.as_dict() for v in self.violations],
            "errors": list(self.errors),
            "change_summary": dict(self.change_summary),
        }


# --- classification ----------------------------------------------------------------------------


def _has_secret(value: Any) -> bool:
    if value == SECRET:
        return True
    if isinstance(value, dict):
        return any(_has_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secret(v) for v in value)
    return False


@dataclass
class _Refresh:
    """What the event log's refresh step says about one resource."""

    paths: list[tuple[str | int, ...]] = field(default_factory=list)
    gone: bool = False
    rotated: list[str] = field(default_factory=list)
    _trie: dict[Any, Any] | None = None  # the paths as a trie; _END marks where one ends

    def touches(self, segments: tuple[str | int, ...]) -> bool:
        """Whether refresh found a change at a path related to `segments` (one contains the
        other, as pulumi_paths.related says), in time linear in the path: the paths are a trie."""
        if self._trie is None:
            self._trie = {}
            for path in self.paths:
                node = self._trie
                for segment in path:
                    node = node.setdefault(segment, {})
                if path:
                    node[_END] = True
        found: dict[Any, Any] | None = self._trie
        for segment in segments:
            found = found.get(segment) if found is not None else None
            if found is None:
                return False
            if _END in found:
                return True  # a refresh path contains `segments`
        return bool(segments)  # `segments` contains a refresh path below it


_END = object()


def _refresh_findings(events: Iterable[Mapping[str, Any]]) -> dict[str, _Refresh]:
    found: dict[str, _Refresh] = {}
    for event in events:  # each read defensively: a field of another shape is ignored
        outputs = event.get("resOutputsEvent")
        meta = outputs.get("metadata") if isinstance(outputs, dict) else None
        if not isinstance(meta, dict) or meta.get("op") != "refresh":
            continue
        if not isinstance(meta.get("urn"), str) or not meta["urn"]:
            continue
        info = found.setdefault(meta["urn"], _Refresh())
        detailed = meta.get("detailedDiff") or {}
        keys = list(detailed) if isinstance(detailed, dict) else []
        diffs = meta.get("diffs")
        keys += [d for d in diffs if isinstance(d, str)] if isinstance(diffs, list) else []
        info.paths += [parse_path(k) for k in keys]
        old, new = meta.get("old"), meta.get("new")
        if isinstance(old, dict) and new is None and "new" in meta:
            info.gone = True
        rotation = ROTATION_PATHS.get(str(meta.get("type") or urn_parts(meta["urn"])[2]), ())
        if isinstance(old, dict) and isinstance(new, dict):
            before, after = old.get("outputs"), new.get("outputs")
            if isinstance(before, dict) and isinstance(after, dict):
                info.rotated += [k for k in sorted(rotation) if before.get(k) != after.get(k)]
    return found


def _origin(
    segments: tuple[str | int, ...],
    diff: Mapping[str, Any] | None,
    old_inputs: Mapping[str, Any],
    new_inputs: Mapping[str, Any],
    refresh: _Refresh | None,
) -> str:
    if refresh and refresh.touches(segments):
        return OUTSIDE
    if diff is not None and diff.get("inputDiff"):
        return CODE  # Pulumi diffed old inputs against new inputs: the program changed
    found_old, old = lookup(old_inputs, segments)
    found_new, new = lookup(new_inputs, segments)
    if found_old and found_new and old == new and not _has_secret(old):
        return OUTSIDE  # the program asks for what it asked before; the live state moved
    return CODE


def _paths(steps: Sequence[Mapping[str, Any]], refresh: _Refresh | None) -> tuple[PathChange, ...]:
    seen: dict[str, PathChange] = {}
    for step in steps:
        old_inputs = (step.get("oldState") or {}).get("inputs") or {}
        new_inputs = (step.get("newState") or {}).get("inputs") or {}
        detailed = step.get("detailedDiff")
        replace_keys = set(step.get("replaceReasons") or ())
        if detailed:
            items = [(p, d, d["kind"]) for p, d in detailed.items()]
        else:  # providers without detailed diffs: fall back to the top-level keys
            keys = list(dict.fromkeys([*(step.get("diffReasons") or ()), *replace_keys]))
            items = [(k, None, "update-replace" if k in replace_keys else "update") for k in keys]
        for path, diff, kind in items:
            origin = _origin(parse_path(path), diff, old_inputs, new_inputs, refresh)
            seen.setdefault(path, PathChange(path, kind, origin))
    return tuple(sorted(seen.values(), key=lambda p: p.path))


def _is_rotation(rtype: str, paths: Sequence[PathChange]) -> bool:
    allowed = ROTATION_PATHS.get(rtype)
    if not allowed or not paths:
        return False
    return all(parse_path(p.path)[0] in allowed for p in paths)


def _classify(
    urn: str, rtype: str, steps: Sequence[Mapping[str, Any]], refresh: _Refresh | None
) -> ResourceChange | None:
    ops = [s["op"] for s in steps]
    paths = _paths(steps, refresh)
    name = urn_parts(urn)[3]
    if _REPLACE_OPS & set(ops):
        return ResourceChange(urn, rtype, name, "replace", REPLACEMENT,
                              "will be replaced (deleted and created again)", paths)
    if _DELETE_OPS & set(ops):
        return ResourceChange(urn, rtype, name, "delete", DELETION, "will be deleted", paths)
    if _CREATE_OPS & set(ops):
        op = next(o for o in ops if o in _CREATE_OPS)
        if refresh and refresh.gone:
            return ResourceChange(urn, rtype, name, op, DRIFT,
                                  "deleted outside Pulumi (refresh found it gone); "
                                  "`pulumi up` creates it again", paths)
        return ResourceChange(urn, rtype, name, op, CREATION, "will be created", paths)
    if not _UPDATE_OPS & set(ops):
        return None  # same, read, refresh, discard...: nothing changes
    if _is_rotation(rtype, paths):
        return ResourceChange(urn, rtype, name, "update", SECRET_ROTATED,
                              "secret version rotated outside Pulumi (expected)", paths)
    if any(p.origin == OUTSIDE for p in paths):
        how = "refresh found it" if refresh and refresh.paths else "inputs unchanged, state differs"
        return ResourceChange(urn, rtype, name, "update", DRIFT,
                              f"changed outside Pulumi ({how})", paths)
    return ResourceChange(urn, rtype, name, "update", CONFIG_CHANGED,
                          "configuration changed in code", paths)


def _step_type(step: Mapping[str, Any]) -> str:
    for key in ("newState", "oldState"):
        state = step.get(key)
        if isinstance(state, dict) and isinstance(state.get("type"), str):
            return state["type"]
    return urn_parts(step["urn"])[2]


def _violations(events: Iterable[Mapping[str, Any]]) -> tuple[PolicyViolation, ...]:
    seen: dict[tuple[str, ...], PolicyViolation] = {}
    for event in events:
        p = event.get("policyEvent")
        if not isinstance(p, dict):
            continue
        v = PolicyViolation(
            policy_pack=str(p.get("policyPackName", "")),
            policy=str(p.get("policyName", "")),
            level=str(p.get("enforcementLevel", "")),
            urn=str(p.get("resourceUrn") or ""),
            message=_COLOR.sub("", str(p.get("message", ""))).strip(),
        )
        seen.setdefault((v.policy_pack, v.policy, v.urn, v.message), v)
    return tuple(seen.values())


def build_report(
    preview: Mapping[str, Any], events: Iterable[Mapping[str, Any]] = ()
) -> DriftReport:
    """Classify every changed resource of a checked preview document (see the module doc)."""
    events = list(events)
    refresh = _refresh_findings(events)
    steps = preview.get("steps") or []
    by_urn: dict[str, list[Mapping[str, Any]]] = {}
    for step in steps:
        by_urn.setdefault(step["urn"], []).append(step)

    resources: list[ResourceChange] = []
    for urn, group in by_urn.items():
        change = _classify(urn, _step_type(group[0]), group, refresh.get(urn))
        if change:
            resources.append(change)
    # Rotations that refresh saw but the program does not act on: no step, still worth a line.
    for urn, info in refresh.items():
        if info.rotated and urn not in by_urn:
            rtype, name = urn_parts(urn)[2], urn_parts(urn)[3]
            paths = tuple(PathChange(k, "update", OUTSIDE) for k in info.rotated)
            resources.append(ResourceChange(urn, rtype, name, "refresh", SECRET_ROTATED,
                                            "secret version rotated outside Pulumi (expected)",
                                            paths))

    any_urn = next(iter(by_urn), None) or next(iter(refresh), "")
    stack, project, _, _ = urn_parts(any_urn) if any_urn else ("", "", "", "")
    errors = tuple(
        _COLOR.sub("", str(d.get("message", ""))).strip()
        for d in preview.get("diagnostics") or ()
        if d.get("severity") == "error"
    )
    return DriftReport(
        stack=stack,
        project=project,
        resources=tuple(resources),
        violations=_violations(events),
        errors=errors,
        change_summary=dict(preview.get("changeSummary") or {}),
    )
