"""A service's identity in the cluster and read access to its own ConfigMaps and Secret only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from configplane.model import ServiceModel
from configplane.ownership import config_reader_role


@dataclass(frozen=True)
class ServiceAccessArgs:
    service: ServiceModel
    namespace: pulumi.Input[str]
    configmap_names: Sequence[str]
    # on the service account, e.g. eks.amazonaws.com/role-arn (its own IAM role, IRSA)
    annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)


class ServiceAccess(pulumi.ComponentResource):
    def __init__(self, name: str, args: ServiceAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("configplane:access:ServiceAccess", name, {}, opts)
        svc = args.service
        child = pulumi.ResourceOptions(parent=self)
        metadata: k8s.meta.v1.ObjectMetaArgsDict = {"namespace": args.namespace,
                                                    "labels": dict(svc.labels)}
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata={"name": svc.service_account, **metadata,
                      **({"annotations": dict(args.annotations)} if args.annotations else {})},
            opts=child,
        )
        role = k8s.rbac.v1.Role(
            f"{name}-role",
            metadata={"name": config_reader_role(svc.name), **metadata},
            rules=[
                {"api_groups": [""], "resources": ["configmaps"],
                 "resource_names": sorted(args.configmap_names), "verbs": ["get"]},
                {"api_groups": [""], "resources": ["secrets"],
                 "resource_names": [svc.secret_name], "verbs": ["get"]},
            ],
            opts=child,
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-role-binding",
            metadata={"name": config_reader_role(svc.name), **metadata},
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "Role",
                      "name": role.metadata.name},
            subjects=[{"kind": "ServiceAccount", "name": self.service_account.metadata.name,
                       "namespace": args.namespace}],
            opts=child,
        )
        self.service_account_name: pulumi.Output[str] = self.service_account.metadata.name
        self.register_outputs({"service_account_name": self.service_account_name})
