"""The planned cert-manager and ESO objects against the operators' own CRD schemas
(tests/pki/crds, vendored with their versions), as the API server would check them: the
openAPIV3Schema, plus strict field validation (an unknown field is an error, as with
`kubectl apply --validate=strict`; without it the API server would silently prune it)."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from tests.pki.conftest import (
    CERTIFICATE_CRD,
    EXTERNAL_SECRET_CRD,
    GENERATOR_CRD,
    ISSUER_CRD,
    by_name,
    crd_schema,
)


def unknown_fields(value: Any, schema: dict, path: str = "") -> list[str]:
    """Fields the structural schema does not declare (what strict validation refuses)."""
    out: list[str] = []
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return out
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if props is not None and key in props:
                out += unknown_fields(item, props[key], where)
            elif isinstance(extra, dict):
                out += unknown_fields(item, extra, where)
            elif props is not None and key not in ("apiVersion", "kind", "metadata"):
                out.append(where)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            out += unknown_fields(item, schema["items"], f"{path}[{i}]")
    return out


def problems(obj: dict, crd: tuple[str, str]) -> list[str]:
    schema = crd_schema(*crd)
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.validator}"
              for e in validator.iter_errors(obj)]
    return sorted(errors + [f"{p}: unknown field" for p in unknown_fields(obj, schema)])


def kube_object(resource) -> dict:
    return {k: resource.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")}


PLANNED = {
    "api-tls-certificate": CERTIFICATE_CRD,
    "api-tls-issuer": ISSUER_CRD,
    "api-dynamic-reporting-db-password-generator": GENERATOR_CRD,
    "api-dynamic-reporting-db-password-external-secret": EXTERNAL_SECRET_CRD,
    "api-external-secret-external-secret": EXTERNAL_SECRET_CRD,
}


def test_planned_objects_are_valid_for_their_crds(planned):
    _, plan = planned
    resources = by_name(plan)
    for name, crd in PLANNED.items():
        assert problems(kube_object(resources[name]), crd) == [], name


def _mutate(obj: dict, path: str, value: Any) -> dict:
    out = copy.deepcopy(obj)
    *parents, last = path.split(".")
    target = out
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return out


# Each mutation breaks one rule the CRD states; the check must catch exactly that one.
MUTATIONS = [
    ("api-tls-certificate", "spec.privateKey.algorithm", "DSA", ["spec.privateKey.algorithm: enum"]),
    ("api-tls-certificate", "spec.privateKey.rotationPolicy", "Sometimes",
     ["spec.privateKey.rotationPolicy: enum"]),
    ("api-tls-certificate", "spec.usages", ["server-auth"], ["spec.usages.0: enum"]),
    ("api-tls-certificate", "spec.secretName", KeyError, ["spec: required"]),
    ("api-tls-certificate", "spec.renewbefore", "240h", ["spec.renewbefore: unknown field"]),
    ("api-tls-issuer", "spec.vault.auth.kubernetes.role", KeyError,
     ["spec.vault.auth.kubernetes: required"]),
    ("api-tls-issuer", "spec.vault.auth.kubernetes.serviceAccount", {"name": "api"},
     ["spec.vault.auth.kubernetes.serviceAccount: unknown field"]),
    ("api-dynamic-reporting-db-password-generator", "spec.resultType", "Json",
     ["spec.resultType: enum"]),
    ("api-dynamic-reporting-db-password-generator", "spec.provider.server", KeyError,
     ["spec.provider: required"]),
    ("api-dynamic-reporting-db-password-external-secret",
     "spec.dataFrom.0.sourceRef.generatorRef.kind", "VaultDynamicSecrets",
     ["spec.dataFrom.0.sourceRef.generatorRef.kind: enum"]),
]


@pytest.mark.parametrize(("name", "path", "value", "expected"), MUTATIONS,
                         ids=[f"{m[0].rsplit('-', 1)[-1]}:{m[1]}" for m in MUTATIONS])
def test_the_schema_check_catches_a_broken_object(name, path, value, expected):
    from tests.conftest import REPO
    from tests.pki.conftest import plan_of

    obj = kube_object(by_name(plan_of(REPO, "prod"))[name])
    assert problems(_mutate(obj, path, value), PLANNED[name]) == expected
