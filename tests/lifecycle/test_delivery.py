"""configplane.model.delivery: what the ExternalSecret's fields deliver, evaluated as ESO would
(tests/lifecycle/eso.py over moto and the KV stand-in), for any mix of secrets."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from urllib.parse import unquote, urlsplit

import boto3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from configplane import contract
from configplane.contract import SCHEMA_SECRET_KEYS
from configplane.model import SecretSpec, delivered_keys, external_secret_sources
from tests.lifecycle import eso

REPO = Path(__file__).resolve().parents[2]
NAMES = st.from_regex(r"[A-Z][A-Z0-9]{0,6}", fullmatch=True)
# what rotation and generation produce: printable, no space (see delivery.dsn_template)
VALUES = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=24)


@st.composite
def secrets(draw):
    specs, values = {}, {}
    for name in draw(st.lists(NAMES, min_size=1, max_size=4, unique=True)):
        kind = draw(st.sampled_from(["vault", "aws", "database"]))
        if kind == "database":
            key = f"{name}_PASSWORD"
            database = {"host": draw(st.sampled_from(["db.internal", "10.0.0.7"])),
                        "port": draw(st.integers(1, 65535)),
                        "dbname": draw(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)),
                        "username": draw(VALUES)}
            specs[key] = SecretSpec(source="generated", store="aws", database=database)
            values[key] = {"engine": "postgres", **database, "password": draw(VALUES),
                           "masterarn": "arn:aws:secretsmanager:eu-west-1:1:secret:m"}
        else:
            specs[name] = SecretSpec(source="generated", store=kind)
            values[name] = draw(VALUES)
    return specs, values


def external_secret(specs):
    sources = external_secret_sources(specs, vault_key="svc", aws_name=lambda k: f"cp/{k}",
                                      aws_store_ref={"kind": "ClusterSecretStore", "name": "aws"})
    return {"apiVersion": eso.API_VERSION, "kind": "ExternalSecret",
            "metadata": {"name": "svc", "namespace": "svc-dev"},
            "spec": {"refreshInterval": "1h",
                     "secretStoreRef": {"kind": "ClusterSecretStore", "name": "vault"},
                     "target": {"name": "svc-secrets", "template": {
                         "engineVersion": "v2", "mergePolicy": "Replace",
                         "data": sources["template"]}},
                     **{k: sources[k] for k in ("data", "dataFrom") if sources[k]}}}


STORES = [
    {"kind": "ClusterSecretStore", "metadata": {"name": "vault"},
     "spec": {"provider": {"vault": {"path": "dev-kv", "version": "v2"}}}},
    {"kind": "ClusterSecretStore", "metadata": {"name": "aws"},
     "spec": {"provider": {"aws": {"service": "SecretsManager", "region": "eu-west-1"}}}},
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secrets())
def test_the_pod_gets_exactly_the_delivered_keys_with_their_values(drawn):
    specs, values = drawn
    obj = external_secret(specs)
    assert eso.crd_errors(obj) == []
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="eu-west-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        vault = eso.VaultKV()
        kv = {}
        for key, spec in specs.items():
            if spec.store == "vault":
                kv[key] = values[key]
            else:
                text = json.dumps(values[key]) if spec.database else values[key]
                sm.create_secret(Name=f"cp/{key}", SecretString=text)
        if kv:
            vault.write("dev-kv", "svc", kv)
        data = eso.materialise(obj, eso.Stores(STORES, sm, vault)).data

    assert set(data) == {k for key, spec in specs.items() for k in delivered_keys(key, spec)}
    for key, spec in specs.items():
        if spec.database is None:
            assert data[key] == values[key]
            continue
        prefix, doc = key.removesuffix("_PASSWORD"), values[key]
        assert [data[prefix + s] for s in ("_USER", "_PASSWORD", "_HOST", "_PORT", "_NAME")] == [
            doc["username"], doc["password"], doc["host"], str(doc["port"]), doc["dbname"]]
        url = urlsplit(data[prefix + "_URL"])
        assert (unquote(url.username), unquote(url.password), url.hostname, url.port,
                unquote(url.path[1:])) == (doc["username"], doc["password"], doc["host"],
                                           doc["port"], doc["dbname"])


def test_the_pack_names_the_schema_keyword_as_delivery_does():
    # the pack reads the keyword from the shared contract (policies/contract.py, a symlink)
    assert contract.SCHEMA_SECRET_KEYS == SCHEMA_SECRET_KEYS
    tree = ast.parse((REPO / "policies" / "configmaps.py").read_text())
    assert any(isinstance(node, ast.ImportFrom) and node.module == "contract"
               and "SCHEMA_SECRET_KEYS" in {a.name for a in node.names} for node in tree.body)
    schema = json.loads((REPO / "schemas" / "services" / "http-api.schema.json").read_text())
    assert schema[SCHEMA_SECRET_KEYS] == [
        "DATABASE_USER", "DATABASE_PASSWORD", "DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME",
        "DATABASE_URL"]
    assert set(schema[SCHEMA_SECRET_KEYS]) <= set(schema["required"])
