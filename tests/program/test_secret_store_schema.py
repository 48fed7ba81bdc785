"""The SecretStores of each sample plan are valid against ESO's own CRD schema (vendored in
tests/fixtures/eso), with no field the API server would prune."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import STACKS
from tests.projects import sample_plan

SCHEMA = json.loads((Path(__file__).parents[1] / "fixtures" / "eso" /
                     "secretstore-v1.schema.json").read_text())


def pruned(instance, schema, path="") -> list[str]:
    """Fields a structural schema does not declare: Kubernetes drops them silently."""
    out = []
    if isinstance(instance, dict) and schema.get("type") == "object":
        declared = schema.get("properties")
        extra = schema.get("additionalProperties")
        if declared is None and extra is not None:
            for k, v in instance.items():
                out += pruned(v, extra if isinstance(extra, dict) else {}, f"{path}.{k}")
        elif declared is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
            for k, v in instance.items():
                if k not in declared:
                    out.append(f"{path}.{k}")
                else:
                    out += pruned(v, declared[k], f"{path}.{k}")
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(instance):
            out += pruned(v, schema["items"], f"{path}[{i}]")
    return out


def check(store: dict) -> list[str]:
    errors = [e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(store)]
    metadata = {k: v for k, v in store.items() if k != "metadata"}
    return errors + [f"pruned: {p}" for p in pruned(metadata, SCHEMA)]


@pytest.mark.parametrize("stack", STACKS)
def test_sample_secret_stores_match_esos_crd(stack):
    stores = [r.inputs for r in sample_plan(stack).resources
              if r.type == "kubernetes:external-secrets.io/v1:SecretStore"]
    assert len(stores) == 4
    for store in stores:
        assert check(store) == [], store["metadata"]["name"]


def test_the_schema_check_can_fail():
    store = {"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
             "metadata": {"name": "x"},
             "spec": {"provider": {"aws": {"service": "SecretsManager", "region": "eu-west-1",
                                           "auth": {"jwt": {"serviceAcountRef": {"name": "a"}}}}}}}
    assert check(store) == ["pruned: .spec.provider.aws.auth.jwt.serviceAcountRef"]
    store["spec"]["provider"]["aws"]["service"] = "SecretManager"
    assert len(check(store)) == 2
