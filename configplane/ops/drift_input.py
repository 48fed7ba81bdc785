"""Read the drift report's inputs: `pulumi preview --json` and its engine event log.

- The preview document is `previewDigest` (pulumi/pulumi sdk/pkg/display/json.go, formerly
  pkg/backend/display/json.go): `steps[]` of `previewStep` {op, urn, provider, oldState,
  newState, diffReasons, replaceReasons, detailedDiff: {path: {kind, inputDiff}}},
  `changeSummary`, `diagnostics[]`, `duration`. Its shape is checked with a JSON Schema of the
  parts the report reads (`preview.schema.json` beside this module, validated by jsonschema);
  each subschema's `x-expected` says what the user is told was expected at that key path.
- The event log (`--event-log FILE`) is JSON lines of `apitype.EngineEvent`
  (sdk/go/common/apitype/events.go); the report reads its `policyEvent`s and the refresh
  steps' `resOutputsEvent`s, each defensively (an event it does not know is ignored).

Every message names the source, the key path and the fix; none quotes a value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

SCHEMA_FILE = "preview.schema.json"
EXPECTED = "x-expected"  # the schema's annotation: what the reader is told was expected
_FIX = "expected the output of `pulumi preview --json`"


class DriftInputError(Exception):
    """Unreadable input: the message names the file, the key path and the fix."""


@cache
def preview_schema() -> dict[str, Any]:
    """The JSON Schema of the preview document (package data, so an installed CLI has it)."""
    text = resources.files("configplane.ops").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(preview_schema())


def parse_preview(text: str, source: str) -> dict[str, Any]:
    """Parse and check a preview document; DriftInputError names `source` and the key path."""
    if not text.strip():
        raise DriftInputError(f"{source}: the file is empty; {_FIX} (did the preview fail?)")
    try:
        doc = json.loads(text)
    except RecursionError:
        raise DriftInputError(f"{source}: nested too deeply to read; {_FIX}") from None
    except json.JSONDecodeError as e:
        raise DriftInputError(
            f"{source}: not JSON (line {e.lineno}, column {e.colno}: {e.msg}); {_FIX}, "
            "complete (a preview that was cut off leaves a truncated document)"
        ) from None
    if not isinstance(doc, dict):
        raise DriftInputError(f"{source}: a JSON {type(doc).__name__}; {_FIX} (one object)")
    if "sequence" in doc and not ("steps" in doc or "changeSummary" in doc):
        raise DriftInputError(
            f"{source}: this is an engine event, not a preview document; pass the event log "
            "with --events and the preview JSON as the file"
        )
    try:
        error = next(iter(_validator().iter_errors(doc)), None)
    except RecursionError:
        raise DriftInputError(f"{source}: nested too deeply to read; {_FIX}") from None
    if error is not None:
        path, want = explain(error)
        raise DriftInputError(f"{source}: {path}: expected {want}; {_FIX}")
    if not doc.get("steps") and "changeSummary" not in doc and not doc.get("diagnostics"):
        # Even a stack with nothing to do lists its root stack step: an empty digest is a
        # preview that did not run, and must not pass for "no drift".
        raise DriftInputError(f"{source}: no steps, no changeSummary, no diagnostics; {_FIX}")
    return doc


def explain(error: ValidationError) -> tuple[str, str]:
    """(key path, what was expected) of a schema error, from the deepest subschema on the
    error's schema path that carries `x-expected`. Properties the schema names print as
    `.name`, keys of a map (property paths in `detailedDiff`) as `["key"]`. No value is used."""
    root = preview_schema()
    node: Mapping[str, Any] = _deref(root, root)
    segments: list[str] = []
    found: tuple[int, Any] | None = (0, node[EXPECTED]) if EXPECTED in node else None
    instance = list(error.absolute_path)
    tokens = list(error.absolute_schema_path)[:-1]  # the last one is the failed keyword
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "properties":
            node, i = node["properties"][tokens[i + 1]], i + 2
            segments.append(f".{instance[len(segments)]}")
        elif token == "items":
            node, i = node["items"], i + 1
            segments.append(f"[{instance[len(segments)]}]")
        elif token == "additionalProperties":
            node, i = node["additionalProperties"], i + 1
            segments.append(f"[{json.dumps(instance[len(segments)], ensure_ascii=False)}]")
        else:  # "$ref" and the like: no step in the instance
            i += 1
            continue
        node = _deref(root, node)
        if EXPECTED in node:
            found = (len(segments), node[EXPECTED])
    required, instance_ = error.validator_value, error.instance
    # a missing key: say what belongs there, if known
    if error.validator == "required" and isinstance(required, list) and isinstance(instance_, Mapping):
        missing = next(k for k in required if k not in instance_)
        spec = _deref(root, (node.get("properties") or {}).get(missing) or {})
        if EXPECTED in spec:
            segments.append(f".{missing}")
            found = (len(segments), spec[EXPECTED])
    depth, want = found if found is not None else (len(segments), "another shape")
    if isinstance(want, Mapping):
        want = want.get(str(error.validator), want["default"])
    return _render(segments[:depth]), want


def _deref(root: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:  # local references only: "#/$defs/<name>"
        target: Any = root
        for part in str(node["$ref"]).removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _render(segments: Sequence[str]) -> str:
    return "".join(segments).removeprefix(".") or "(the document)"


def parse_events(text: str, source: str) -> list[dict[str, Any]]:
    """Parse an engine event log (JSON lines of apitype.EngineEvent)."""
    events = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except RecursionError:
            raise DriftInputError(f"{source}:{lineno}: nested too deeply to read; expected the file "
                                  "`pulumi preview --event-log FILE` writes") from None
        except json.JSONDecodeError as e:
            raise DriftInputError(
                f"{source}:{lineno}: not a JSON engine event ({e.msg}); expected the file "
                "`pulumi preview --event-log FILE` writes (one JSON object per line)"
            ) from None
        if not isinstance(event, dict):
            raise DriftInputError(
                f"{source}:{lineno}: expected one engine event object per line; "
                "expected the file `pulumi preview --event-log FILE` writes"
            )
        if "steps" in event and "sequence" not in event:
            raise DriftInputError(
                f"{source}:{lineno}: this is a preview document, not an event log; pass it as "
                "the file and the `--event-log` output with --events"
            )
        events.append(event)
    return events
