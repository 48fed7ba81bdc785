"""Fixtures for certificates and dynamic credentials: the real program's plans under the SDK's
mocks, the vendored CRD schemas, and the throwaway PostgreSQL server of tests/rotation."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from configplane.offline import run_plan
from tests.conftest import REPO, STACKS

# tests/rotation is not a package: its conftest finds its helpers on sys.path (as pytest
# puts them there when it collects that directory).
sys.path.insert(0, str(REPO / "tests" / "rotation"))
from tests.rotation.conftest import postgres_server  # noqa: F401 (its session fixture)

CRDS = Path(__file__).resolve().parent / "crds"
ROOT_CANARY = "canary-vaultroot-Hq7Lm2Xw9Pz4"
SECURE = {
    "configplane:apiDbPassword": "canary-db-Jk3Lp9Qw2Er8",
    "configplane:paymentsApiKey": "canary-pay-Zx4Cv6Bn8Ma1",
    "configplane:shopVaultDbPassword": ROOT_CANARY,
}

# The application's tables the database grants are tried on (a real PostgreSQL).
APP_TABLES = (
    "CREATE SCHEMA app",
    "CREATE TABLE app.orders (id int PRIMARY KEY, total numeric)",
    "CREATE TABLE app.order_items (order_id int, sku text)",
    "CREATE TABLE app.customers (id int PRIMARY KEY, email text)",
    "INSERT INTO app.orders VALUES (1, 10.5), (2, 99)",
    "INSERT INTO app.order_items VALUES (1, 'sku-1')",
    "INSERT INTO app.customers VALUES (1, 'a@example.com')",
)


@cache
def plan_of(project: Path, stack: str):
    return run_plan(project, stack, one_stack=True, secure_values=SECURE)


@pytest.fixture(scope="session", params=STACKS)
def planned(request):
    return request.param, plan_of(REPO, request.param)


def by_name(plan) -> dict:
    return {r.name: r for r in plan.resources}


def of_type(plan, type_: str) -> list:
    return [r for r in plan.resources if r.type == type_]


@cache
def crd_schema(file_name: str, version: str) -> dict:
    """openAPIV3Schema of one served version of a vendored CRD."""
    document = yaml.safe_load((CRDS / file_name).read_text())
    (served,) = [v for v in document["spec"]["versions"] if v["name"] == version]
    return served["schema"]["openAPIV3Schema"]


CERTIFICATE_CRD = ("cert-manager.io_certificates.yaml", "v1")
ISSUER_CRD = ("cert-manager.io_issuers.yaml", "v1")
GENERATOR_CRD = ("generators.external-secrets.io_vaultdynamicsecrets.yaml", "v1alpha1")
EXTERNAL_SECRET_CRD = ("external-secrets.io_externalsecrets.yaml", "v1")
