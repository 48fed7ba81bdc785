"""Read Kubernetes ConfigMap and Secret manifests (YAML or JSON; several documents, or a
`kind: List` as `kubectl get cm,secret -o yaml` prints it).

A Secret's `data` is base64 (decoded here, as the API server does); `stringData` wins over
`data` for the same key; `binaryData` is skipped with a note. Every key of a Secret is a
secret. Other kinds are skipped with a note. Every document goes through the project's bounded
YAML loader (configplane.inputs.yamlload: size, depth and alias limits); a YAML error names the
line, never its text, and an object of another shape is a message naming it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from configplane.inputs import YamlError, load_documents
from configplane.model import render_value
from configplane.ops.importer.entry import Entry, ImportProblem


def read_manifests(source: str, text: str) -> tuple[list[Entry], list[str]]:
    try:  # the project's bounded loader: size, depth and alias limits, string keys
        documents = [d.document for d in load_documents(text, source) if d.document is not None]
    except YamlError as exc:  # names the line, never quotes it
        raise ImportProblem(f"{exc}") from None
    objects = _objects(source, documents)
    found: list[Entry] = []
    notes: list[str] = []
    for n, obj in enumerate(objects):
        _object_entries(source, n, obj, found, notes)
    if not found and not any("skipped binaryData" in n for n in notes):
        raise ImportProblem(f"{source}: no ConfigMap or Secret data found. Fix: give the "
                            "manifests of the service's ConfigMaps and Secrets.")
    return found, notes


def _objects(source: str, documents: list[Any]) -> list[Any]:
    """The objects of the documents, a `List`'s items in its place."""
    objects: list[Any] = []
    for n, document in enumerate(documents):
        if isinstance(document, Mapping) and document.get("kind") == "List":
            items = document.get("items") or []  # `kubectl get cm,secret -o yaml`
            if not isinstance(items, list):
                raise ImportProblem(f"{source}: document {n + 1}: a List whose `items` is not a "
                                    "list. Fix: give the output of `kubectl get cm,secret -o yaml`.")
            objects.extend(items)
        else:
            objects.append(document)
    return objects


def _object_entries(source: str, n: int, obj: Any, found: list[Entry], notes: list[str]) -> None:
    """Object `n`'s keys into `found` (a ConfigMap's or Secret's; anything else a note)."""
    name = Path(source).name
    if not isinstance(obj, Mapping) or not isinstance(obj.get("kind"), str):
        raise ImportProblem(f"{source}: object {n + 1} is not a Kubernetes object (no `kind`). "
                            "Fix: give ConfigMap/Secret manifests or a .env file.")
    kind = obj["kind"]
    meta = obj.get("metadata") or {}
    if not isinstance(meta, Mapping):
        raise ImportProblem(f"{source}: object {n + 1} ({kind}): `metadata` is not a mapping. "
                            "Fix: correct the manifest.")
    shown = meta.get("name")
    label = f"{kind} {shown if isinstance(shown, str) and shown else f'#{n + 1}'}"
    if kind not in ("ConfigMap", "Secret"):
        notes.append(f"{name}: skipped {label} (only ConfigMaps and Secrets are imported)")
        return
    binary = obj.get("binaryData")
    if binary is not None and not isinstance(binary, Mapping):
        raise ImportProblem(f"{source}: {label}.binaryData is not a mapping. Fix: correct "
                            "the manifest.")
    if binary:
        notes.append(f"{name}: skipped binaryData of {label} ({', '.join(map(str, binary))}): "
                     "binary values are not imported")
    entries: dict[str, str] = {}
    for section in ("data", "stringData"):  # stringData wins, as in the API server
        entries.update(_section_entries(source, label, section, obj.get(section) or {},
                                        decode=kind == "Secret" and section == "data"))
    found.extend(Entry(k, v, f"{name}: {label}", source, kind == "Secret")
                 for k, v in entries.items())


def _section_entries(source: str, label: str, section: str, values: Any, decode: bool
                     ) -> dict[str, str]:
    if not isinstance(values, Mapping):
        raise ImportProblem(f"{source}: {label}.{section} is not a mapping. Fix: correct "
                            "the manifest.")
    entries: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(value, str | int | float):  # bool is an int
            raise ImportProblem(f"{source}: {label}.{section}.{key} is not a string. "
                                "Fix: quote the value.")
        if decode:
            value = _base64(source, label, key, value)
        entries[str(key)] = value if isinstance(value, str) else render_value(value)
    return entries


def _base64(source: str, label: str, key: str, value: Any) -> str:
    try:
        return base64.b64decode(str(value), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ImportProblem(f"{source}: {label} key {key} is not base64 of UTF-8 text. Fix: "
                            "correct it, or set this secret by hand with `pulumi config set "
                            "--secret`.") from None
