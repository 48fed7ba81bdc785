"""Resolution of one stack's layers into the merged document, with provenance.

The platform's layers, then each service's own (fleet defaults, service, environment): see
configplane.layering for the merge rules and configplane.catalog for where the layers come from.
"""

from __future__ import annotations

from typing import Any

from configplane.layering import Layer, Origin, Resolved, resolve
from configplane.stackfiles import StackInputs


def layers_of(inputs: StackInputs) -> list[Layer]:
    """Every layer as whole-document layers, lowest first (resolve_inputs is the fast way)."""
    if not inputs.platform_layers and not inputs.service_layers:
        return [
            Layer("project", inputs.project_file, inputs.defaults),
            Layer("environment", inputs.stack_file, inputs.environment),
        ]
    layers = list(inputs.platform_layers)
    for layers_of_service in inputs.service_layers.values():
        layers += [Layer(layer.name, layer.file, {"services": layer.document},
                         {("services", *p): line for p, line in layer.lines.items()})
                   for layer in layers_of_service]
    return layers


def resolve_inputs(inputs: StackInputs) -> Resolved:
    """The merged document with provenance: the platform's layers, then each service's on
    its own (the same result as resolve(layers_of(inputs)), linear in the fleet)."""
    if not inputs.platform_layers and not inputs.service_layers:
        return resolve(layers_of(inputs))
    resolved = resolve(inputs.platform_layers)
    services: dict[str, Any] = {}
    for name, layers in inputs.service_layers.items():
        one = resolve(layers)
        if name in one.value:
            services[name] = one.value[name]
        for p, origin in one.origins.items():
            resolved.origins[("services", *p)] = origin
        for p, settings in one.history.items():
            resolved.history[("services", *p)] = settings
    if services or "services" not in resolved.value:
        resolved.value["services"] = services
    return resolved


_LAYER_RANK = {"project": 0, "fleet": 0, "service": 1, "environment": 2}


def origin_near(resolved: Resolved, path: list[str]) -> Origin | None:
    """Where a path was set; for a path nothing set (a missing key), the file that last
    touched its nearest ancestor (the stack overlay before the service's base)."""
    found = resolved.origin_of(path)
    if found is not None or len(path) < 3:
        return found
    for n in range(len(path) - 1, 1, -1):
        prefix = tuple(path[:n])
        below = [o for p, o in resolved.origins.items() if p[:n] == prefix]
        if below:
            return max(below, key=lambda o: _LAYER_RANK.get(o.layer, 3))
    return None
