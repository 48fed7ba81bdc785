"""How validated config becomes ConfigMap data: typed values as strings, content-hashed names,
and the flags ConfigMap (a stable name flagd hot-reloads)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from configplane.contract import FLAGS_DATA_KEY
from configplane.hashing import configmap_hash
from configplane.model.flags import render_flags
from configplane.ownership import flags_configmap_name


@dataclass(frozen=True)
class RenderedConfigMap:
    base_name: str
    data: Mapping[str, str]
    hash: str
    hashed: bool = True  # False: a stable name, updated in place (the flags ConfigMap)

    @property
    def name(self) -> str:
        return f"{self.base_name}-{self.hash}" if self.hashed else self.base_name


def render_value(value: Any) -> str:
    """How a typed config value appears in a ConfigMap."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def render_configmap(base_name: str, values: Mapping[str, Any]) -> RenderedConfigMap:
    data = {key: render_value(value) for key, value in sorted(values.items())}
    return RenderedConfigMap(base_name, data, configmap_hash(data))


def flags_document(flags: Mapping[str, Any]) -> dict[str, Any]:
    """The flagd document of a service's catalog flags (rollouts expanded)."""
    return render_flags(flags)


def render_flags_configmap(service: str, flags: Mapping[str, Any]) -> RenderedConfigMap:
    """The flags ConfigMap: a stable name, so a flag flip is an in-place update flagd
    hot-reloads from the mounted file (no new name, no pod restart)."""
    text = json.dumps(flags_document(flags), sort_keys=True, separators=(",", ":"))
    data = {FLAGS_DATA_KEY: text}
    return RenderedConfigMap(flags_configmap_name(service), data, configmap_hash(data), hashed=False)
