"""Certificates on the real server: the dev stack's planned PKI (root, intermediate, roles)
signing as cert-manager asks it to, revocation reaching the CRL within the stated bound, and
a pasted intermediate bundle imported so that the issuer with the CSR's key is the default."""

from __future__ import annotations

import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from components.pki import CRL_REBUILD_GRACE, DELTA_REBUILD_INTERVAL, intermediate_bundle
from configplane.durations import seconds
from tests.vault.probes import PKI_ROLE, login, sign, signing_findings
from tests.vault.server import OpenBao

PERIODIC = 60  # OpenBao runs a mount's periodic function (CRL rebuilds) once a minute
DELTA_BOUND = seconds(DELTA_REBUILD_INTERVAL) + PERIODIC + 15  # + slack for a loaded machine


def pki_roles(a):
    return [r for r in a.plan.resources if r.type == PKI_ROLE]


def test_each_role_signs_its_own_names_and_nothing_else(applied):
    a = applied["dev"]
    roles = pki_roles(a)
    assert roles
    all_names = {r.inputs["name"]: list(r.inputs["allowedDomains"]) for r in roles}
    for r in roles:
        token, _ = login(a, "kubernetes-dev", f"{r.inputs['name']}-pki")
        others = [n for svc, names in all_names.items() if svc != r.inputs["name"] for n in names]
        others = others or ["web.web-dev.svc"]
        findings = signing_findings(a.server, f"dev-pki/sign/{r.inputs['name']}", token,
                                    all_names[r.inputs["name"]], others, int(r.inputs["maxTtl"]))
        assert findings == [], r.name


def test_certificates_carry_the_planned_urls_and_chain_to_the_dev_root(applied):
    a = applied["dev"]
    r = pki_roles(a)[0]
    token, _ = login(a, "kubernetes-dev", f"{r.inputs['name']}-pki")
    code, cert = sign(a.server, f"dev-pki/sign/{r.inputs['name']}", token,
                      list(r.inputs["allowedDomains"]))
    assert code == 200
    urls = next(x for x in a.plan.resources if x.name == "pki-dev-urls").inputs
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [p.full_name[0].value for p in points] == list(urls["crlDistributionPoints"])
    issuer = a.server.call("GET", "dev-pki/issuer/default")["data"]
    assert issuer["issuer_name"] == "dev-intermediate" and issuer["key_id"]
    intermediate = x509.load_pem_x509_certificate(issuer["certificate"].encode())
    cert.verify_directly_issued_by(intermediate)


def test_key_bits_is_a_minimum(applied):
    """What the server does (docs/certificates.md says so): a P-384 key is signed on a
    P-256 role; a smaller key is refused (signing_findings)."""
    a = applied["dev"]
    r = pki_roles(a)[0]
    assert int(r.inputs["keyBits"]) == 256
    token, _ = login(a, "kubernetes-dev", f"{r.inputs['name']}-pki")
    code, _ = sign(a.server, f"dev-pki/sign/{r.inputs['name']}", token,
                   [r.inputs["allowedDomains"][0]], key=ec.generate_private_key(ec.SECP384R1()))
    assert code == 200


def test_a_subdomain_allowing_role_is_caught(applied):
    """Mutation: the api role with allow_subdomains (and globs)."""
    a = applied["dev"]
    r = pki_roles(a)[0]
    settings = a.server.call("GET", f"dev-pki/roles/{r.inputs['name']}")["data"]
    a.server.call("POST", "dev-pki/roles/mutant", {**settings, "allow_subdomains": True,
                                                   "allow_glob_domains": True})
    a.server.call("PUT", "sys/policies/acl/mutant-pki",
                  {"policy": 'path "dev-pki/sign/mutant" { capabilities = ["update"] }'})
    token = a.server.call("POST", "auth/token/create",
                          {"policies": ["mutant-pki"]})["auth"]["client_token"]
    findings = signing_findings(a.server, "dev-pki/sign/mutant", token,
                                list(r.inputs["allowedDomains"]), ["web.web-dev.svc"],
                                int(r.inputs["maxTtl"]))
    assert any("subdomain" in f for f in findings)


def test_revocation_reaches_the_crl_within_the_bound(applied):
    """Measured: a revoked certificate is on the delta CRL within DELTA_BOUND seconds; the full
    CRL is rebuilt an hour after its last build (the grace the plan sets)."""
    a = applied["dev"]
    r = pki_roles(a)[0]
    config = a.server.call("GET", "dev-pki/config/crl")["data"]
    assert config["enable_delta"] and config["auto_rebuild"]
    assert seconds(config["expiry"]) - seconds(config["auto_rebuild_grace_period"]) == 3600
    assert config["auto_rebuild_grace_period"] == CRL_REBUILD_GRACE
    token, _ = login(a, "kubernetes-dev", f"{r.inputs['name']}-pki")
    code, cert = sign(a.server, f"dev-pki/sign/{r.inputs['name']}", token,
                      [r.inputs["allowedDomains"][0]])
    assert code == 200
    serial = cert.serial_number
    start = time.monotonic()
    hexed = f"{serial:x}"
    hexed = "0" * (len(hexed) % 2) + hexed
    colons = ":".join(hexed[i:i + 2] for i in range(0, len(hexed), 2))  # Vault's serial form
    a.server.call("POST", "dev-pki/revoke", {"serial_number": colons})
    listed_after = None
    while time.monotonic() - start < DELTA_BOUND:
        response = a.server.request("GET", "dev-pki/crl/delta", token="")
        if response.status_code == 200 and response.content:
            crl = x509.load_der_x509_crl(response.content)
            if crl.get_revoked_certificate_by_serial_number(serial) is not None:
                listed_after = time.monotonic() - start
                break
        time.sleep(1)
    assert listed_after is not None, f"not on the delta CRL after {DELTA_BOUND}s"


# --- the intermediate bundle (parent: external) ----------------------------------------------


@pytest.fixture
def scratch(openbao: OpenBao):
    """A root CA mount and an intermediate mount with a CSR, on the session server."""
    name = f"chain{time.monotonic_ns()}"
    openbao.call("POST", f"sys/mounts/{name}-root", {"type": "pki", "config": {"max_lease_ttl": "87600h"}})
    openbao.call("POST", f"sys/mounts/{name}", {"type": "pki", "config": {"max_lease_ttl": "43800h"}})
    root = openbao.call("POST", f"{name}-root/root/generate/internal",
                        {"common_name": "offline root", "key_type": "ec", "ttl": "80000h"})["data"]
    csr = openbao.call("POST", f"{name}/intermediate/generate/internal",
                       {"common_name": "intermediate", "key_type": "ec", "key_bits": 384})["data"]
    signed = openbao.call("POST", f"{name}-root/root/sign-intermediate",
                          {"csr": csr["csr"], "common_name": "intermediate", "ttl": "40000h",
                           "max_path_length": 0})["data"]
    return openbao, name, root["certificate"], csr["csr"], signed["certificate"]


def imported_first_has_key(server, mount, bundle) -> bool:
    data = server.call("POST", f"{mount}/intermediate/set-signed", {"certificate": bundle})["data"]
    first = data["imported_issuers"][0]
    return bool(server.call("GET", f"{mount}/issuer/{first}")["data"]["key_id"])


def test_a_root_first_bundle_is_imported_intermediate_first(scratch):
    server, mount, root, csr, intermediate = scratch
    bundle = root + "\n" + intermediate  # pasted root-first
    assert imported_first_has_key(server, mount, intermediate_bundle(bundle, csr))


def test_the_unordered_root_first_bundle_would_have_broken_signing(scratch):
    """The finding itself, shown on the server: imported as pasted, the first issuer (which
    the program makes `<env>-intermediate` and the default) is the keyless root."""
    server, mount, root, csr, intermediate = scratch
    assert not imported_first_has_key(server, mount, root + "\n" + intermediate)


def test_a_bundle_without_the_csr_key_is_refused_naming_the_key_path(scratch):
    import pulumi
    _, _, root, csr, _ = scratch
    with pytest.raises(pulumi.RunError, match=r"^platform\.pki\.intermediate_certificate: "):
        intermediate_bundle(root, csr)
