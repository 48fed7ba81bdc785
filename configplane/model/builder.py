"""The one builder of the frozen model: everything derived for a service (its ConfigMaps, TLS
and dynamic-credential models, write-only versions, rotated secrets) is derived here, once,
from a stack document that validation (configplane.validation) found valid. `__main__.py`,
the components and `explain` read the model; none of them derives any of it again.
"""

from __future__ import annotations

from datetime import date

from configplane import contract, ownership
from configplane.inputs import Resolved, apply_tenant
from configplane.model.certificates import tls_model
from configplane.model.document import Platform, Service, StackDocument
from configplane.model.dynamic_credentials import dynamic_models
from configplane.model.rendering import render_configmap, render_flags_configmap
from configplane.model.rotation_rules import rotated_secrets
from configplane.model.stackmodel import ServiceModel, StackModel, kv_mount
from configplane.model.versions import service_versions


def service_namespace(name: str, service: Service, environment: str) -> str:
    """The namespace a service runs in: its own `namespace`, else `<name>-<environment>`."""
    return service.namespace or ownership.default_namespace(name, environment)


def build_service(name: str, service: Service, platform: Platform, today: date) -> ServiceModel:
    """One valid service's model; `today` (read once per run) dates its generated secrets."""
    env = platform.environment
    namespace = service_namespace(name, service, env)
    return ServiceModel(
        name=name,
        environment=env,
        namespace=namespace,
        spec=service,
        labels={
            contract.SERVICE_LABEL: name,
            contract.PART_OF_LABEL: platform.part_of,
            contract.MANAGED_BY_LABEL: contract.MANAGED_BY,
            contract.ENVIRONMENT_LABEL: env,
        },
        config=render_configmap(ownership.configmap_base(name), service.config),
        tenants={tenant: render_configmap(ownership.tenant_configmap_base(name, tenant),
                                          apply_tenant(service.config, spec.config))
                 for tenant, spec in service.tenants.items()},
        flags=render_flags_configmap(name, service.flags) if service.flags else None,
        vault_mount=kv_mount(platform),
        tls=(tls_model(name, namespace, platform, service.tls)
             if service.tls is not None and platform.pki is not None else None),
        dynamic=tuple(dynamic_models(name, namespace, platform, service.secrets)),
        versions=service_versions(service, platform.rotation, today),
        rotated=rotated_secrets(name, service.secrets),
    )


def build_stack(stack: str, document: StackDocument, resolved: Resolved,
                today: date) -> StackModel:
    """Every service's model, and the platform's, of a valid stack document."""
    services = {name: build_service(name, svc, document.platform, today)
                for name, svc in document.services.items()}
    return StackModel(stack, document.platform, services, resolved)
