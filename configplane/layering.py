"""Layered configuration: deep merge with provenance.

Objects deep-merge, lists and scalars replace, an explicit null deletes the key. Every
resolved leaf remembers the layer and file that set it, and the values it overrode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str, ...]


@dataclass(frozen=True)
class Layer:
    name: str  # "project", "fleet", "service", "environment", "tenant:<name>"
    file: str
    document: Mapping[str, Any]
    lines: Mapping[Path, int] = field(default_factory=dict)  # key path -> line in `file`


@dataclass(frozen=True)
class Origin:
    layer: str
    file: str
    line: int | None = None

    @property
    def where(self) -> str:
        """`services/api/prod.yaml:12`, or the file alone when the line is not known."""
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Setting:
    """One value a layer set on a path, in the order the layers applied."""

    value: Any
    origin: Origin


@dataclass
class Resolved:
    value: dict[str, Any]
    # leaf path -> the layer that set the value it resolves to
    origins: dict[Path, Origin] = field(default_factory=dict)
    # leaf path -> every value set on it, lowest layer first (the last one won, unless deleted)
    history: dict[Path, list[Setting]] = field(default_factory=dict)

    def origin_of(self, path: Sequence[str]) -> Origin | None:
        """The origin of a path, or of its nearest ancestor or first descendant leaf."""
        path = tuple(path)
        for n in range(len(path), -1, -1):
            if path[:n] in self.origins:
                return self.origins[path[:n]]
        for leaf, origin in self.origins.items():
            if leaf[: len(path)] == path:
                return origin
        return None


_SCALARS = (str, int, float, bool, list, type(None))


def _is_mapping(value: Any) -> bool:
    """isinstance(value, Mapping), without the ABC check for the common cases (hot path)."""
    if type(value) is dict:
        return True
    return not isinstance(value, _SCALARS) and isinstance(value, Mapping)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` onto `base` (pure; neither argument is modified)."""
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif _is_mapping(value) and _is_mapping(merged.get(key)):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = _strip_nulls(value)
    return merged


def _strip_nulls(value: Any) -> Any:
    if _is_mapping(value):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    return value


def resolve(layers: Sequence[Layer]) -> Resolved:
    """Merge layers lowest first, recording the provenance of every leaf."""
    resolved = Resolved(value={})
    for layer in layers:
        before = resolved.value
        resolved.value = merge(before, layer.document)
        _record(resolved, (), layer.document, before, layer)
    # Keep provenance only for leaves that survived (deleted subtrees drop theirs).
    resolved.origins = {p: o for p, o in resolved.origins.items() if _has_leaf(resolved.value, p)}
    return resolved


def _record(resolved: Resolved, prefix: Path, document: Mapping[str, Any], before: Any,
            layer: Layer) -> None:
    for key, value in document.items():
        path = (*prefix, str(key))
        previous = before.get(key) if _is_mapping(before) else None
        if _is_mapping(value) and (value or _is_mapping(previous)):
            # Deep merge (an empty mapping onto a mapping changes nothing); a mapping that
            # replaces a scalar or list takes the old leaf's origin away.
            resolved.origins.pop(path, None)
            _record(resolved, path, value, previous, layer)
            continue
        if _is_mapping(previous):  # only a mapping has leaves below it (keeps this linear)
            for stale in [p for p in resolved.origins if p[: len(path)] == path and p != path]:
                del resolved.origins[stale]  # a scalar, list or null replaces a whole subtree
        origin = Origin(layer.name, layer.file, layer.lines.get(path))
        resolved.history.setdefault(path, []).append(Setting(value, origin))
        if value is None:
            resolved.origins.pop(path, None)
        else:
            resolved.origins[path] = origin


def _has_leaf(document: Any, path: Path) -> bool:
    for key in path:
        if not _is_mapping(document) or key not in document:
            return False
        document = document[key]
    return True


def leaves(document: Mapping[str, Any], prefix: Path = ()) -> dict[Path, Any]:
    """Every leaf of a document by path (empty mappings count as leaves)."""
    found: dict[Path, Any] = {}
    for key, value in document.items():
        path = (*prefix, str(key))
        if _is_mapping(value) and value:
            found.update(leaves(value, path))
        else:
            found[path] = value
    return found


def dotted(path: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in path)
