"""Layered configuration: deep merge with provenance.

Objects deep-merge, lists and scalars replace, an explicit null deletes the key. Every
resolved leaf remembers the layer and file that set it, and the values it overrode.

A tenant's overrides are layers too (`tenant:<name>`, see tenant_layers and resolve_tenant):
the config that tenant's ConfigMap gets is the service's config with those layers on top.
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
    # (applies at, written at): the document's keys below the first path were written below
    # the second in `file` (a tenant's `tenants.<name>.config` applies to the service's config)
    moved: tuple[Path, Path] | None = None
    # the detector identity under which this layer was judged to hold no secret value (a
    # catalog file from the parse cache: configplane.inputs.parsecache); "" when not judged
    secret_free_under: str = field(default="", compare=False)

    def written_at(self, path: Path) -> Path | None:
        """Where in `file` a path of this layer was written, when that is not the path itself."""
        if self.moved is None or path[: len(self.moved[0])] != self.moved[0]:
            return None
        return (*self.moved[1], *path[len(self.moved[0]):])


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
    written_at: Path | None = None  # where the file has it, when not at the path it applies to


@dataclass
class Resolved:
    value: dict[str, Any]
    # leaf path -> the layer that set the value it resolves to
    origins: dict[Path, Origin] = field(default_factory=dict)
    # leaf path -> every value set on it, lowest layer first (the last one won, unless deleted)
    history: dict[Path, list[Setting]] = field(default_factory=dict)
    # (service, tenant) -> the config that tenant's ConfigMap gets (resolve_tenant), recorded
    # by the stack's resolution (configplane.inputs.resolution)
    tenants: dict[tuple[str, str], Resolved] = field(default_factory=dict)

    # prefix -> (its first descendant leaf's origin, the highest-ranked one): built on first
    # use, so attributing an error is linear in its path, not in the stack (`origins` is
    # complete once resolution returns; a change to it rebuilds the index)
    _below: dict[Path, tuple[Origin, Origin]] = field(default_factory=dict, repr=False,
                                                        compare=False)
    _indexed: int = field(default=-1, repr=False, compare=False)

    def origin_of(self, path: Sequence[str]) -> Origin | None:
        """The origin of a path, or of its nearest ancestor or first descendant leaf."""
        path = tuple(path)
        for n in range(len(path), -1, -1):
            if path[:n] in self.origins:
                return self.origins[path[:n]]
        found = self.below(path)
        return found[0] if found else None

    def below(self, prefix: Path) -> tuple[Origin, Origin] | None:
        """(first, highest-ranked) origin of the leaves under `prefix` (ranked by LAYER_RANK:
        the stack overlay before the service's base), or None."""
        if self._indexed != len(self.origins):
            self._below = {}
            for leaf, origin in self.origins.items():
                for n in range(len(leaf) + 1):
                    seen = self._below.get(leaf[:n])
                    if seen is None:
                        self._below[leaf[:n]] = (origin, origin)
                    elif LAYER_RANK.get(origin.layer, 3) > LAYER_RANK.get(seen[1].layer, 3):
                        self._below[leaf[:n]] = (seen[0], origin)
            self._indexed = len(self.origins)
        return self._below.get(tuple(prefix))


_SCALARS = (str, int, float, bool, list, type(None))
LAYER_RANK = {"project": 0, "fleet": 0, "service": 1, "environment": 2}  # tenant layers: 3


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
    origins, history, lines = resolved.origins, resolved.history, layer.lines
    before_is_mapping = _is_mapping(before)
    for key, value in document.items():
        path = (*prefix, str(key))
        previous = before.get(key) if before_is_mapping else None
        value_is_mapping = _is_mapping(value)
        if value_is_mapping and (value or _is_mapping(previous)):
            # Deep merge (an empty mapping onto a mapping changes nothing); a mapping that
            # replaces a scalar or list takes the old leaf's origin away.
            origins.pop(path, None)
            _record(resolved, path, value, previous, layer)
            continue
        if previous is not None and _is_mapping(previous):  # only a mapping has leaves below
            for stale in [p for p in origins if p[: len(path)] == path and p != path]:
                del origins[stale]  # a scalar, list or null replaces a whole subtree
        origin = Origin(layer.name, layer.file, lines.get(path))
        setting = Setting(value, origin, layer.written_at(path) if layer.moved else None)
        found = history.get(path)
        if found is None:
            history[path] = [setting]
        else:
            found.append(setting)
        if value is None:
            origins.pop(path, None)
        else:
            origins[path] = origin


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


# --- tenants: overrides of a service's config, as layers of their own ----------------------

TENANT_LAYER = "tenant:"


def tenant_layer_name(tenant: str) -> str:
    return f"{TENANT_LAYER}{tenant}"


def apply_tenant(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The config a tenant's ConfigMap gets: the service's, with the tenant's overrides on top
    (the one merge the checker and resolve_tenant share)."""
    return merge(config, overrides)


def tenant_layers(layers: Sequence[Layer], service: Path, tenant: str) -> list[Layer]:
    """Each layer's overrides for one tenant, as a layer `tenant:<name>` on the service's config.

    `service` is where the service sits in the layers' documents (("services", "api") in whole
    documents, ("api",) in a service's own layers). A layer's `tenants.<name>.config` becomes
    that layer's `config`; an explicit null (or any non-mapping) at `tenants`, `tenants.<name>`
    or its `config` takes back every override set below it."""
    written = (*service, "tenants", tenant, "config")
    target = (*service, "config")
    found = []
    for layer in layers:
        node: Any = layer.document
        at = written  # where the layer sets the tenant's config (or takes it back)
        for depth, key in enumerate(written, start=1):
            if not _is_mapping(node) or key not in node:
                node = _ABSENT
                break
            node = node[key]
            if depth > len(service) and not _is_mapping(node):
                at = written[:depth]  # a null (or a scalar) at tenants, tenants.<name>, config
                break
        if node is _ABSENT:
            continue
        overrides = node if at == written and _is_mapping(node) else None
        lines = {(*target, *p[len(written):]): ln for p, ln in layer.lines.items()
                 if p[: len(written)] == written and len(p) > len(written)}
        if at in layer.lines:
            lines[target] = layer.lines[at]
        found.append(Layer(tenant_layer_name(tenant), layer.file, _nest(target, overrides),
                           lines, moved=(target, at)))
    return found


def resolve_tenant(service_resolved: Resolved, service: Path, tenant: str,
                   layers: Sequence[Layer]) -> Resolved:
    """The config one tenant's ConfigMap gets, with provenance.

    The tenant's layers (tenant_layers) first merge among themselves, so a null there takes an
    override back and the service's value applies again (a tenant overrides, it never deletes a
    service's key); the result goes on top of the service's config (apply_tenant). Paths are
    those of `service_resolved` (the service's config); each tenant setting records where its
    file wrote it (Setting.written_at). History: the service's settings, then the tenant's."""
    target = (*service, "config")
    own = resolve(tenant_layers(layers, service, tenant))
    base_config = _get(service_resolved.value, target)
    own_config = _get(own.value, target)
    config = apply_tenant(base_config if _is_mapping(base_config) else {},
                          own_config if _is_mapping(own_config) else {})
    resolved = Resolved(_nest(target, config))

    def concerns(path: Path) -> bool:  # the config, its keys, and the levels above it
        return path[: len(target)] == target or path == target[: len(path)]

    history: dict[Path, list[Setting]] = {}
    for source in (service_resolved, own):
        for path, settings in source.history.items():
            if concerns(path):
                history.setdefault(path, []).extend(settings)
    resolved.history = history
    origins = {p: o for p, o in service_resolved.origins.items() if concerns(p)}
    origins.update((p, o) for p, o in own.origins.items() if concerns(p))
    resolved.origins = {p: o for p, o in origins.items() if _has_leaf(resolved.value, p)}
    return resolved


_ABSENT = object()


def _get(document: Any, path: Path) -> Any:
    for key in path:
        if not _is_mapping(document) or key not in document:
            return None
        document = document[key]
    return document


def _nest(path: Path, value: Any) -> dict[str, Any]:
    for key in reversed(path[1:]):
        value = {key: value}
    return {path[0]: value}
