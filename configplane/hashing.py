"""kustomize-compatible content hashes for ConfigMap names.

kustomize hashes Go's `json.Marshal` of {"data", "kind", "name"} (+ "binaryData" when present):
keys sorted, no spaces, HTML characters escaped. As `kubectl kustomize` (v5.5) runs the
generator, `name` is the empty string at hashing time, so the hash depends on content only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

# kustomize's encode(): avoid vowels and digits that could spell words in names.
_ENCODE = str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"})


def _go_json(obj: object) -> str:
    """Go's json.Marshal for maps of strings: sorted keys, compact, <, >, & escaped."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Go also escapes U+2028/U+2029; ensure_ascii=False keeps other non-ASCII as UTF-8 like Go.
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def configmap_hash(
    data: Mapping[str, object],
    binary_data: Mapping[str, object] | None = None,
    name: str = "",
) -> str:
    """The 10-character suffix kustomize gives a ConfigMap with this content."""
    # kustomize encodes an absent or empty data map as "" (api/hasher/hasher.go encodeConfigMap).
    doc: dict[str, object] = {"data": dict(data) or "", "kind": "ConfigMap", "name": name}
    if binary_data:
        doc["binaryData"] = dict(binary_data)
    digest = hashlib.sha256(_go_json(doc).encode()).hexdigest()
    return digest[:10].translate(_ENCODE)


def hashed_name(name: str, data: Mapping[str, str], binary_data: Mapping[str, str] | None = None) -> str:
    return f"{name}-{configmap_hash(data, binary_data)}"
