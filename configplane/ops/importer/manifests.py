"""Read Kubernetes ConfigMap and Secret manifests (YAML or JSON; several documents, or a
`kind: List` as `kubectl get cm,secret -o yaml` prints it).

A Secret's `data` is base64 (decoded here, as the API server does); `stringData` wins over
`data` for the same key; `binaryData` is skipped with a note. Every key of a Secret is a
secret. Other kinds are skipped with a note. A YAML error names the line, never its text.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from configplane.model import render_value
from configplane.ops.importer.entry import Entry, ImportProblem


def read_manifests(source: str, text: str) -> tuple[list[Entry], list[str]]:
    name = Path(source).name
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        # The parser's message quotes the offending line, which may hold a secret: give the line.
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ImportProblem(f"{source}{where}: not valid YAML. Fix: check the manifest "
                            "(e.g. `kubectl apply --dry-run=client -f`).") from None
    objects: list[Any] = []
    for document in documents:
        if isinstance(document, Mapping) and document.get("kind") == "List":
            objects.extend(document.get("items") or [])  # `kubectl get cm,secret -o yaml`
        else:
            objects.append(document)
    found: list[Entry] = []
    notes: list[str] = []
    for n, obj in enumerate(objects):
        if not isinstance(obj, Mapping) or "kind" not in obj:
            raise ImportProblem(f"{source}: document {n + 1} is not a Kubernetes object. Fix: "
                                "give ConfigMap/Secret manifests or a .env file.")
        kind = obj["kind"]
        meta = obj.get("metadata") or {}
        label = f"{kind} {meta.get('name', f'#{n + 1}')}"
        if kind not in ("ConfigMap", "Secret"):
            notes.append(f"{name}: skipped {label} (only ConfigMaps and Secrets are imported)")
            continue
        if obj.get("binaryData"):
            notes.append(f"{name}: skipped binaryData of {label} ({', '.join(obj['binaryData'])}): "
                         "binary values are not imported")
        entries: dict[str, str] = {}
        for section in ("data", "stringData"):  # stringData wins, as in the API server
            values = obj.get(section) or {}
            if not isinstance(values, Mapping):
                raise ImportProblem(f"{source}: {label}.{section} is not a mapping. Fix: correct "
                                    "the manifest.")
            for key, value in values.items():
                if kind == "Secret" and section == "data":
                    value = _base64(source, label, key, value)
                entries[str(key)] = value if isinstance(value, str) else render_value(value)
        found.extend(Entry(k, v, f"{name}: {label}", source, kind == "Secret")
                     for k, v in entries.items())
    if not found and not any("skipped binaryData" in n for n in notes):
        raise ImportProblem(f"{source}: no ConfigMap or Secret data found. Fix: give the "
                            "manifests of the service's ConfigMaps and Secrets.")
    return found, notes


def _base64(source: str, label: str, key: str, value: Any) -> str:
    try:
        return base64.b64decode(str(value), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ImportProblem(f"{source}: {label} key {key} is not base64 of UTF-8 text. Fix: "
                            "correct it, or set this secret by hand with `pulumi config set "
                            "--secret`.") from None
