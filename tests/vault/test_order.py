"""`pulumi up` runs resources in any order their declared dependencies allow. Applied in
adversarial orders (the plan's own order reversed where nothing forbids it, and random
ones), the dev stack's Vault resources still give the right result: what a resource reads at
create time from another (the root's URLs when the intermediate is signed, the audit device
when the first secret is written) was written first. The same orders with those declared
dependencies removed show the check fails without them."""

from __future__ import annotations

import dataclasses
import json

import pytest
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from tests.conftest import REPO
from tests.pki.conftest import plan_of
from tests.vault.applier import Applier, sinks_last, topological_orders, vault_resources
from tests.vault.conftest import new_server
from tests.vault.probes import KV_SECRET

SECRET_WRITES = (KV_SECRET, "vault:database/secretBackendConnection:SecretBackendConnection",
                 "vault:kubernetes/authBackendConfig:AuthBackendConfig")


def written_path(r) -> str:
    """The API path a secret-writing resource's Create writes (tests/vault/applier.py)."""
    i = r.inputs
    if r.type == KV_SECRET:
        return f"{i['mount']}/data/{i['name']}"
    if r.type == SECRET_WRITES[1]:
        return f"{i['backend']}/config/{i['name']}"
    return f"auth/{i['backend']}/config"


def order_findings(resources, shop_db, run: str) -> list[str]:
    server = new_server()
    try:
        applier = Applier(server, database=shop_db.root_login(f"vault_admin_{run}"))
        applier.apply_all(resources)
        findings = []
        root_urls = next(r for r in resources if r.name == "pki-dev-root-urls").inputs
        pem = server.call("GET", "dev-pki/issuer/default")["data"]["certificate"]
        cert = x509.load_pem_x509_certificate(pem.encode())
        try:
            points = [p.full_name[0].value for p in cert.extensions.get_extension_for_class(
                x509.CRLDistributionPoints).value]
            aia = [d.access_location.value for d in cert.extensions.get_extension_for_class(
                x509.AuthorityInformationAccess).value
                if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS]
        except x509.ExtensionNotFound:
            points, aia = [], []
        if points != list(root_urls["crlDistributionPoints"]) or \
                aia != list(root_urls["issuingCertificates"]):
            findings.append("the intermediate lacks the root's CRL/AIA URLs")
        log = applier.audit_log("file-dev")
        logged = set()
        if log.exists():
            logged = {e["request"]["path"] for e in map(json.loads, log.read_text().splitlines())
                      if e["type"] == "request"}
        for r in resources:
            if r.type in SECRET_WRITES:
                path = written_path(r)
                if path not in logged:
                    findings.append(f"{path} written before the audit device existed")
        return findings
    finally:
        server.stop()


@pytest.fixture(scope="module")
def dev_resources():
    return vault_resources(plan_of(REPO, "dev"))


def test_adversarial_orders_give_the_planned_result(dev_resources, shop_db):
    for n, order in enumerate(topological_orders(dev_resources, seeds=(7, 21))):
        assert order_findings(order, shop_db, f"order{n}") == [], n


def test_without_the_declared_dependencies_the_check_fails(dev_resources, shop_db):
    """Mutation: drop the depends_on the fix added; the order that runs what nothing depends
    on last then signs the intermediate before the root's URLs exist and writes secrets before
    the audit device."""
    added = {r.urn for r in dev_resources
             if r.name in ("pki-dev-root-urls", "vault-dev-audit", "vault-dev-kv-config")}
    loose = [dataclasses.replace(r, dependencies=[d for d in r.dependencies if d not in added])
             for r in dev_resources]
    findings = order_findings(sinks_last(loose), shop_db, "loose")
    assert "the intermediate lacks the root's CRL/AIA URLs" in findings
    assert any("before the audit device" in f for f in findings)
