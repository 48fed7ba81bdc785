"""ConfigMaps: hygiene (immutable, hashed name, size, labels) and schema validity."""

from __future__ import annotations

import base64

from tests.policies.builders import (
    BOOL_FLAG,
    configmap,
    flags_data,
    labels,
    only,
    pack_module,
    resource,
)

CONFIGMAPS = pack_module("configmaps")


def test_configmap_hygiene(prod):
    kustomize_vector = {"name": "api-config-hf678c7m2b", "namespace": "api-prod",
                        "labels": labels()}  # `kubectl kustomize` for literals LOG_LEVEL=info
    binary = {"logo.png": base64.b64encode(b"\x89PNG\r\n").decode()}
    resources = [
        configmap("api-config-config"),
        configmap("kustomize-vector", {"LOG_LEVEL": "info"}, schema=None,
                  metadata=kustomize_vector),
        configmap("with-binary", {"a": "<&>"}, schema=None, binaryData=binary,
                  # `kubectl kustomize` (v5.5): literal a=<&>, file logo.png
                  metadata={**kustomize_vector, "name": "assets-cg2kg6fcd9"}),
        configmap("mutable", immutable=False),
        configmap("stale-name", {"LOG_LEVEL": "info"}, schema=None,
                  metadata={**kustomize_vector, "name": "api-config-hf678c7m2c"}),
        configmap("unlabelled", metadata={"name": "api-config-hf678c7m2b"},
                  data={"LOG_LEVEL": "info"}),
        # property missing: no immutable, no metadata, no data
        resource("kubernetes:core/v1:ConfigMap", "bare", {"apiVersion": "v1", "kind": "ConfigMap"}),
    ]
    mutable = f"is not immutable. {CONFIGMAPS.WHY_FIX_MUTABLE}"
    no_labels = ("lacks the label(s) app.kubernetes.io/name, app.kubernetes.io/part-of, "
                 f"app.kubernetes.io/managed-by, configplane.io/environment. "
                 f"{CONFIGMAPS.WHY_FIX_LABELS}")
    assert only("configmap-hygiene", prod.violations(resources)) == [
        ("configmap-hygiene", name, "mandatory", text) for name, text in [
            ("mutable", f'ConfigMap "mutable" {mutable}'),
            ("stale-name", 'ConfigMap "stale-name": its name "api-config-hf678c7m2c" does not '
                           'end with the content hash "-hf678c7m2b". '
                           f"{CONFIGMAPS.WHY_FIX_STALE_NAME}"),
            ("unlabelled", f'ConfigMap "unlabelled" {no_labels}'),
            ("bare", f'ConfigMap "bare" {mutable}'),
            ("bare", f'ConfigMap "bare" has no metadata.name. {CONFIGMAPS.WHY_FIX_NO_NAME}'),
            ("bare", f'ConfigMap "bare" {no_labels}'),
        ]]


def test_configmap_hygiene_size_and_exceptions(custom):
    pack = custom  # maxSizeBytes 64; exception for "legacy-mutable"
    resources = [
        configmap("fits", {"BLOB": "x" * 60}, schema=None),  # 4 + 60 bytes
        configmap("big", {"BLOB": "x" * 61}, schema=None),
        configmap("legacy-mutable", immutable=False),  # waived
    ]
    assert only("configmap-hygiene", pack.violations(resources)) == [(
        "configmap-hygiene", "big", "mandatory",
        f'ConfigMap "big" holds 65 bytes of data; at most 64 allowed. {CONFIGMAPS.WHY_FIX_TOO_BIG}')]


FIX = CONFIGMAPS.WHY_FIX_SCHEMA
# flagd's own negative case (fractional-decimal-weighting): flagd's evaluator serves none of it
DECIMAL = {"fractional": [["on", 10.5], ["off", 89.5]]}
AVAILABLE = "flags, services/http-api, services/web-frontend, services/worker"


def unknown_schema(schema: str) -> str:
    return CONFIGMAPS.FIX_UNKNOWN_SCHEMA.format(available=AVAILABLE, schema=schema)


def test_configmap_schema(prod):
    resources = [
        configmap("api-config-config"),
        configmap("web-config-flags", flags_data({"dark-mode": BOOL_FLAG}), schema="flags"),
        configmap("worker-config", {"LOG_LEVEL": "info", "CONCURRENCY": "4",
                                    "RATE_LIMIT_RPS": "20", "QUEUE_URL": "https://sqs.eu-west-1."
                                    "amazonaws.com/333333333333/shop-prod-orders",
                                    "PAYMENTS_API_BASE_URL": "https://api.payments.example.com"},
                  schema="services/worker", svc="worker"),
        configmap("bad-api", {"LOG_LEVEL": "loud", "PORT": "http", "DATABASE_HOST": "db",
                              "DATABASE_PORT": "70000", "EXTRA": "1"}),
        configmap("bad-flags", {**flags_data({"beta": {**BOOL_FLAG, "defaultVariant": "maybe"},
                                              "checkout": {**BOOL_FLAG, "targeting": DECIMAL}}),
                                "extra.json": "{}"},
                  schema="flags"),
        configmap("not-json-flags", {"flags.flagd.json": "{"}, schema="flags"),
        configmap("no-schema", schema=None),
        configmap("unknown-schema", schema="services/nope"),
        configmap("escaping-schema", schema="../../etc/passwd"),
    ]
    assert only("configmap-schema", prod.violations(resources)) == [
        ("configmap-schema", name, "mandatory", text) for name, text in [
            ("bad-api", 'ConfigMap "bad-api" does not satisfy schema services/http-api: '
                        "data.DATABASE_HOST: comes from the service's Secret, never its "
                        "ConfigMap; data.DATABASE_PORT: comes from the service's Secret, never "
                        "its ConfigMap; "
                        "data.DATABASE_PORT: maximum 65535 not satisfied; data.LOG_LEVEL: enum "
                        '["debug", "info", "warn", "error"] not satisfied; data.PORT: type '
                        '"integer" not satisfied; '
                        f"data: unknown key(s) EXTRA. {FIX}"),
            ("bad-flags", 'ConfigMap "bad-flags" does not satisfy schema flags: data.flags.flagd'
                          ".json.flags.beta.defaultVariant: names no variant; data.flags.flagd."
                          "json.flags.checkout.targeting.fractional.1.1: oneOf not satisfied (flagd's "
                          "schema); data: unexpected key(s) "
                          f"extra.json. {FIX}"),
            ("not-json-flags", 'ConfigMap "not-json-flags" does not satisfy schema flags: '
                               f"data.flags.flagd.json: not valid JSON (line 1). {FIX}"),
            ("no-schema", 'ConfigMap "no-schema" names no schema (annotation '
                          "configplane.io/schema). "
                          f"{CONFIGMAPS.WHY_FIX_NO_SCHEMA.format(available=AVAILABLE)}"),
            ("unknown-schema", 'ConfigMap "unknown-schema" names the unknown schema '
                               '"services/nope". '
                               f"{unknown_schema('services/nope')}"),
            ("escaping-schema", 'ConfigMap "escaping-schema" names the unknown schema '
                                '"../../etc/passwd". '
                                f"{unknown_schema('../../etc/passwd')}"),
        ]]
