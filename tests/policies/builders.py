"""Resources as the engine shows them to the pack: inputs for `Analyze`, the same values as
outputs for `AnalyzeStack` (as a preview's provider echoes them)."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from configplane.hashing import configmap_hash
from configplane.offline import AnalyzedResource

CANARY = "Canary7f3e9cQ2w"  # inside every fake credential; must never appear in a message
ACCOUNTS = {"dev": "111111111111", "staging": "222222222222", "prod": "333333333333"}


def urn(stack: str, type_: str, name: str) -> str:
    return f"urn:pulumi:{stack}::configplane::{type_}::{name}"


def resource(type_: str, name: str, props: Mapping[str, Any], *, stack: str = "prod",
             dependencies: Sequence[str] = (),
             property_dependencies: Mapping[str, Sequence[str]] | None = None) -> AnalyzedResource:
    return AnalyzedResource(urn=urn(stack, type_, name), type=type_, inputs=dict(props),
                            outputs=dict(props), dependencies=tuple(dependencies),
                            property_dependencies=dict(property_dependencies or {}))


def labels(svc: str = "api", env: str = "prod") -> dict[str, str]:
    return {"app.kubernetes.io/name": svc, "app.kubernetes.io/part-of": "shop",
            "app.kubernetes.io/managed-by": "configplane", "configplane.io/environment": env}


# DATABASE_* reach the pod from its Secret (the schema's x-configplane-secret-keys)
API_CONFIG = {"LOG_LEVEL": "warn", "PORT": "8080", "DATABASE_POOL_SIZE": "40"}


def configmap(name: str, data: Mapping[str, str] | None = None, *, base: str = "api-config",
              schema: str | None = "services/http-api", env: str = "prod", svc: str = "api",
              **overrides: Any) -> AnalyzedResource:
    """A ConfigMap as the program declares it; `overrides` replace top-level inputs (None
    removes one)."""
    data = dict(API_CONFIG if data is None else data)
    annotations = {"reloader.stakater.com/match": "true"}
    if schema is not None:
        annotations["configplane.io/schema"] = schema
    props: dict[str, Any] = {
        "apiVersion": "v1", "kind": "ConfigMap", "immutable": True, "data": data,
        "metadata": {"name": f"{base}-{configmap_hash(data)}", "namespace": f"{svc}-{env}",
                     "labels": labels(svc, env), "annotations": annotations},
    }
    props.update(overrides)
    return resource("kubernetes:core/v1:ConfigMap", name,
                    {k: v for k, v in props.items() if v is not None}, stack=env)


def flags_data(flags: Mapping[str, Any]) -> dict[str, str]:
    document = {"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": dict(flags)}
    return {"flags.flagd.json": json.dumps(document, sort_keys=True, separators=(",", ":"))}


BOOL_FLAG = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}


def workload(type_: str, name: str, env: Sequence[Mapping[str, Any]]) -> AnalyzedResource:
    pod = {"containers": [{"name": "app", "image": "shop/api:1.0", "env": list(env)}]}
    template = {"metadata": {"labels": {"app": name}}, "spec": pod}
    spec: dict[str, Any] = {
        "Pod": pod,
        "Deployment": {"template": template},
        "StatefulSet": {"template": template},
        "DaemonSet": {"template": template},
        "Job": {"template": template},
        "CronJob": {"schedule": "@daily", "jobTemplate": {"spec": {"template": template}}},
    }[type_.rsplit(":", 1)[-1]]
    return resource(type_, name, {"metadata": {"name": name, "namespace": "api-prod"},
                                  "spec": spec})


def lambda_function(name: str, *, runtime: str | None = "python3.12", timeout: int | None = 60,
                    variables: Mapping[str, str] | None = None, stack: str = "prod"
                    ) -> AnalyzedResource:
    props: dict[str, Any] = {"name": name, "handler": "handler.lambda_handler",
                             "role": f"arn:aws:iam::{ACCOUNTS[stack]}:role/rotation"}
    if runtime is not None:
        props["runtime"] = runtime
    if timeout is not None:
        props["timeout"] = timeout
    if variables is not None:
        props["environment"] = {"variables": dict(variables)}
    return resource("aws:lambda/function:Function", name, props, stack=stack)


def permission(name: str, *, principal: str | None = "secretsmanager.amazonaws.com",
               source_account: str | None = ACCOUNTS["prod"],
               action: str = "lambda:InvokeFunction", **extra: Any) -> AnalyzedResource:
    props: dict[str, Any] = {"action": action, "function": "rotation-prod", **extra}
    if principal is not None:
        props["principal"] = principal
    if source_account is not None:
        props["sourceAccount"] = source_account
    return resource("aws:lambda/permission:Permission", name, props)


def sm_arn(secret_name: str, env: str = "prod") -> str:
    return f"arn:aws:secretsmanager:eu-west-1:{ACCOUNTS[env]}:secret:{secret_name}"


def sm_secret(name: str, *, strategy: str | None = None, kms_key_id: str | None = None,
              recovery: int | None = 30) -> AnalyzedResource:
    secret_name = f"configplane/prod/api/{name.upper()}"
    tags = {"name": "api", "environment": "prod", "configplane.io/secret": name.upper()}
    if strategy:
        tags["configplane:rotation-strategy"] = strategy
    props: dict[str, Any] = {"name": secret_name, "arn": sm_arn(secret_name), "tags": tags}
    if kms_key_id is not None:
        props["kmsKeyId"] = kms_key_id
    if recovery is not None:
        props["recoveryWindowInDays"] = recovery
    return resource("aws:secretsmanager/secret:Secret", name, props)


def rotation(name: str, secret: AnalyzedResource, *, rules: Mapping[str, Any] | None = None,
             lambda_arn: str | None = "arn:aws:lambda:eu-west-1:333333333333:function:rot",
             depends_on: Sequence[AnalyzedResource] = ()) -> AnalyzedResource:
    props: dict[str, Any] = {"secretId": secret.outputs["arn"]}
    if rules is not None:
        props["rotationRules"] = dict(rules)
    if lambda_arn is not None:
        props["rotationLambdaArn"] = lambda_arn
    return resource("aws:secretsmanager/secretRotation:SecretRotation", name, props,
                    dependencies=[secret.urn, *(d.urn for d in depends_on)],
                    property_dependencies={"secretId": [secret.urn]})


def kms_key(name: str, *, key_rotation: bool | None = True) -> AnalyzedResource:
    key_id = f"{name}-0000-0000"
    props: dict[str, Any] = {"keyId": key_id,
                             "arn": f"arn:aws:kms:eu-west-1:333333333333:key/{key_id}"}
    if key_rotation is not None:
        props["enableKeyRotation"] = key_rotation
    return resource("aws:kms/key:Key", name, props)


def vault_policy(name: str, policy_name: str | None, text: str | None) -> AnalyzedResource:
    props = {k: v for k, v in (("name", policy_name), ("policy", text)) if v is not None}
    return resource("vault:index/policy:Policy", name, props)


def read_rules(mount: str, service: str) -> str:
    """The HCL configplane writes for a service (ServiceModel.vault_policy_hcl)."""
    return "\n".join(
        f'path "{mount}/{kind}/{service}{suffix}" {{\n  capabilities = ["read"]\n}}\n'
        for kind in ("data", "metadata") for suffix in ("", "/*"))


def vault_role(name: str, **props: Any) -> AnalyzedResource:
    base: dict[str, Any] = {"backend": "kubernetes-prod", "roleName": name,
                            "boundServiceAccountNames": ["api"],
                            "boundServiceAccountNamespaces": ["api-prod"],
                            "tokenPolicies": ["prod-api-read"], "tokenTtl": 3600}
    base.update(props)
    return resource("vault:kubernetes/authBackendRole:AuthBackendRole", name,
                    {k: v for k, v in base.items() if v is not None})


def iam_policy(name: str, *statements: Mapping[str, Any], raw: str | None = None,
               type_: str = "aws:iam/rolePolicy:RolePolicy") -> AnalyzedResource:
    document = raw if raw is not None else json.dumps(
        {"Version": "2012-10-17", "Statement": [dict(s) for s in statements]})
    return resource(type_, name, {"role": "rotation", "policy": document})


def allow(actions: str | list[str], resources: str | list[str], **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def stack_root(outputs: Mapping[str, Any], stack: str = "prod") -> AnalyzedResource:
    return AnalyzedResource(
        urn=f"urn:pulumi:{stack}::configplane::pulumi:pulumi:Stack::configplane-{stack}",
        type="pulumi:pulumi:Stack", outputs=dict(outputs))


# --- one known-good fixture, mutated one change at a time ------------------------------------


def only(policy: str, violations: Sequence[tuple[str, str, str, str]]
         ) -> list[tuple[str, str, str, str]]:
    """The violations of one policy, in order."""
    return [v for v in violations if v[0] == policy]


def mutate(resources: list[AnalyzedResource], name: str,
           change: Callable[[dict], None]) -> list[AnalyzedResource]:
    """The plan with `change` applied to one resource's inputs and outputs."""
    out, hit = [], False
    for r in resources:
        if r.name == name:
            hit = True
            inputs, outputs = copy.deepcopy(dict(r.inputs)), copy.deepcopy(dict(r.outputs))
            change(inputs)
            change(outputs)
            r = dataclasses.replace(r, inputs=inputs, outputs=outputs)
        out.append(r)
    assert hit, name
    return out


def add(resources: list[AnalyzedResource], template: str, name: str,
        change: Callable[[dict], None]) -> list[AnalyzedResource]:
    """The plan with a copy of `template` named `name`, changed."""
    base = next(r for r in resources if r.name == template)
    props = copy.deepcopy(dict(base.outputs))
    change(props)
    urn = base.urn.rsplit("::", 1)[0] + "::" + name
    return [*resources, dataclasses.replace(base, urn=urn, name=name, inputs=props,
                                            outputs=copy.deepcopy(props))]


STORES = "secret-stores-per-service"
SPANS = "no-identity-spans-services"


def isolation_violations(pack: Any, resources: Sequence[AnalyzedResource]
                         ) -> list[tuple[str, str, str, str]]:
    """The violations of the two per-service isolation policies, in order."""
    from tests.policies.conftest import found

    return [v for v in found(pack.run(resources)) if v[0] in (STORES, SPANS)]


# --- the pack's own message constants -----------------------------------------------------

PACK_DIR = Path(__file__).resolve().parents[2] / "policies"


def pack_module(name: str) -> ModuleType:
    """A module of the pack (policies/<name>.py), imported as the pack imports it, so tests
    use its message constants instead of copies of their prose. The pack directory goes last
    on sys.path: its flat module names never hide an installed one."""
    if str(PACK_DIR) not in sys.path:
        sys.path.append(str(PACK_DIR))
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().parent == PACK_DIR, (name, module.__file__)
    return module
