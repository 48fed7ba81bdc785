"""A service's non-secret configuration in its namespace: immutable, content-hashed ConfigMaps,
and the flags ConfigMap, which keeps a stable name and is updated in place (flagd hot-reloads
the mounted file; nothing rolls pods on a flag flip)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from configplane.contract import (
    FLAGS_SCHEMA,
    HASH_ANNOTATION,
    RELOADER_MATCH_ANNOTATION,
    SCHEMA_ANNOTATION,
    generation_labels,
    schema_annotation_value,
)
from configplane.model import RenderedConfigMap, ServiceModel


@dataclass(frozen=True)
class ServiceConfigArgs:
    service: ServiceModel


class ServiceConfig(pulumi.ComponentResource):
    """Namespace, the config ConfigMap (one per tenant too) and the flagd flags ConfigMap."""


    def __init__(self, name: str, args: ServiceConfigArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("configplane:config:ServiceConfig", name, {}, opts)
        svc = args.service
        self.ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": svc.namespace, "labels": dict(svc.labels)},
            opts=pulumi.ResourceOptions(parent=self),
        )
        configmaps = {"config": svc.config, **{f"tenant-{t}": cm for t, cm in svc.tenants.items()}}
        if svc.flags:
            configmaps["flags"] = svc.flags
        app_schema = schema_annotation_value(svc.spec.app_schema)
        self.configmaps = {
            role: self._configmap(f"{name}-{role}", svc, cm,
                                  FLAGS_SCHEMA if role == "flags" else app_schema)
            for role, cm in configmaps.items()
        }
        self.namespace: pulumi.Output[str] = self.ns.metadata.name
        self.configmap_name: pulumi.Output[str] = self.configmaps["config"].metadata.name
        self.config_hash: pulumi.Output[str] = pulumi.Output.from_input(svc.config.hash)
        self.flags_configmap_name: pulumi.Output[str | None] = pulumi.Output.from_input(
            svc.flags.name if svc.flags else None)
        self.register_outputs({
            "namespace": self.namespace,
            "configmap_name": self.configmap_name,
            "config_hash": self.config_hash,
            "flags_configmap_name": self.flags_configmap_name,
        })

    def _configmap(
        self, name: str, svc: ServiceModel, cm: RenderedConfigMap, schema: str
    ) -> k8s.core.v1.ConfigMap:
        live = schema == FLAGS_SCHEMA  # flags: no Reloader match, no hash, mutable
        annotations = {
            **({} if live else {RELOADER_MATCH_ANNOTATION: "true"}),
            SCHEMA_ANNOTATION: schema,  # `services/<name>` or `flags`: the pack validates data
            **({} if live else {HASH_ANNOTATION: cm.hash}),
        }
        # hash-named generations are kept and pruned; the live flags ConfigMap is one object
        labels = {**svc.labels, **({} if live else generation_labels(cm.base_name, cm.hash))}
        return k8s.core.v1.ConfigMap(
            name,
            metadata={
                # config: a new name per content change (immutable ConfigMaps roll forward);
                # flags: one stable name, updated in place
                "name": cm.name,
                "namespace": self.ns.metadata.name,
                "labels": labels,
                "annotations": annotations,
            },
            data=dict(cm.data),
            immutable=not live,
            # A config change replaces this resource (new name). Retained, the old generation
            # stays in the cluster for pods not yet rolled, scale-ups and `kubectl rollout
            # undo`; `configplane prune` deletes generations beyond the stack's keep count.
            # Create-before-delete (the default) keeps both names side by side.
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=not live,
                                        delete_before_replace=False),
        )
