"""Resolution of one stack's layers into the merged document, with provenance.

The platform's layers, then each service's own (fleet defaults, service, environment): see
configplane.inputs.layering for the merge rules and configplane.inputs.catalog for where the layers come from.
Each tenant's ConfigMap config is resolved too, its overrides as layers `tenant:<name>` on the
service's config (Resolved.tenants), so `explain --tenant` reads what was recorded here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from configplane.inputs.layering import Layer, Origin, Resolved, Setting, resolve, resolve_tenant
from configplane.inputs.stackfiles import StackInputs


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
        all_layers = layers_of(inputs)
        whole = resolve(all_layers)
        merged = whole.value.get("services")
        for name, service in merged.items() if isinstance(merged, dict) else ():
            for tenant in _tenants(service):
                whole.tenants[(name, tenant)] = resolve_tenant(
                    whole, ("services", name), tenant, all_layers)
        return whole
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
        for tenant in _tenants(one.value.get(name)):
            resolved.tenants[(name, tenant)] = _under_services(
                resolve_tenant(one, (name,), tenant, layers))
    if services or "services" not in resolved.value:
        resolved.value["services"] = services
    return resolved


def _tenants(service: Any) -> list[str]:
    """The tenants a merged service document has (none when it is not well-formed)."""
    tenants = service.get("tenants") if isinstance(service, dict) else None
    return [str(t) for t in tenants] if isinstance(tenants, dict) else []


def _under_services(one: Resolved) -> Resolved:
    """A service's own resolution with its paths in the stack's document (services.<name>...)."""
    def moved(settings: Sequence[Setting]) -> list[Setting]:
        return [Setting(s.value, s.origin, ("services", *s.written_at) if s.written_at else None)
                for s in settings]

    return Resolved({"services": one.value},
                    {("services", *p): o for p, o in one.origins.items()},
                    {("services", *p): moved(s) for p, s in one.history.items()})


def origin_near(resolved: Resolved, path: list[str]) -> Origin | None:
    """Where a path was set; for a path nothing set (a missing key), the file that last
    touched its nearest ancestor (the stack overlay before the service's base)."""
    found = resolved.origin_of(path)
    if found is not None or len(path) < 3:
        return found
    for n in range(len(path) - 1, 1, -1):
        below = resolved.below(tuple(path[:n]))
        if below:
            return below[1]
    return None
