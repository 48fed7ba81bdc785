"""The planned Certificate is issuable, and what comes out is what the plan asked for.

Vault and cert-manager do not run here. What stands in for them: a throwaway root and a
pathlen-0 intermediate made with `cryptography` (the dev PKI's shape), a key and CSR made
from the planned `spec.privateKey` and `spec.dnsNames` (what cert-manager does), and a signer
that applies the planned PKI role's restrictions (allowed names, bare domains only, key type
and size, max TTL, server/client flags, key usages) and the planned CRL/OCSP/AIA URLs (what
Vault's sign endpoint does with those settings). The result is then checked by
`cryptography`'s own RFC 5280 path validation (x509.verification), which knows nothing of
configplane.
"""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import DNSName, PolicyBuilder, Store, VerificationError

from configplane.model import Platform, Tls, tls_model
from tests.pki.conftest import by_name

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
CURVES = {256: ec.SECP256R1(), 384: ec.SECP384R1(), 521: ec.SECP521R1()}
EKU = {"server auth": ExtendedKeyUsageOID.SERVER_AUTH,
       "client auth": ExtendedKeyUsageOID.CLIENT_AUTH}


def _go_seconds(text: str) -> int:
    from configplane.durations import seconds
    return seconds(text)


def _ca(name: str, issuer=None, path_length: int | None = None):
    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_key, signer_name = (issuer[1], issuer[0].subject) if issuer else (key, subject)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(signer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(days=1))
               .not_valid_after(NOW + datetime.timedelta(days=3 * 365))
               .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), True)
               .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                            False), True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False))
    if issuer:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer[1].public_key()), False)
    return builder.sign(signer_key, hashes.SHA384()), key


@pytest.fixture(scope="module")
def pki():
    root = _ca("throwaway root CA")
    intermediate = _ca("throwaway intermediate CA", issuer=root, path_length=0)
    return root, intermediate


def private_key(spec: dict):
    """What cert-manager generates for spec.privateKey."""
    algorithm, size = spec["algorithm"], spec["size"]
    if algorithm == "ECDSA":
        return ec.generate_private_key(CURVES[size])
    return rsa.generate_private_key(public_exponent=65537, key_size=size)


def csr_for(spec: dict, key) -> x509.CertificateSigningRequest:
    sans = x509.SubjectAlternativeName([x509.DNSName(n) for n in spec["dnsNames"]])
    return (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
            .add_extension(sans, critical=True).sign(key, hashes.SHA256()))


class Refused(Exception):
    pass


def vault_sign(role: dict, urls: dict, csr: x509.CertificateSigningRequest, ttl: int,
               intermediate) -> x509.Certificate:
    """Stands in for `<mount>/sign/<role>` with the role's settings as planned."""
    names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    for name in names.get_values_for_type(x509.DNSName):
        if role["allowAnyName"] or name not in role["allowedDomains"] or not role[
                "allowBareDomains"]:
            raise Refused(f"{name} not allowed by role")  # no subdomains, no globs
    public = csr.public_key()
    key_type = "ec" if isinstance(public, ec.EllipticCurvePublicKey) else "rsa"
    if key_type != role["keyType"] or public.key_size != role["keyBits"]:
        raise Refused("key type/size not allowed by role")
    if ttl > int(role["maxTtl"]):
        raise Refused("TTL above max_ttl")
    ca_cert, ca_key = intermediate
    usages = {u for u in role["keyUsages"]}
    eku = [oid for flag, oid in (("serverFlag", ExtendedKeyUsageOID.SERVER_AUTH),
                                 ("clientFlag", ExtendedKeyUsageOID.CLIENT_AUTH)) if role[flag]]
    start = NOW - datetime.timedelta(seconds=30)
    return (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca_cert.subject)
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(seconds=ttl))
            .add_extension(names, critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(x509.KeyUsage(
                digital_signature="DigitalSignature" in usages, content_commitment=False,
                key_encipherment="KeyEncipherment" in usages, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False,
                decipher_only=False), True)
            .add_extension(x509.ExtendedKeyUsage(eku), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), False)
            .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                [x509.UniformResourceIdentifier(u) for u in urls["crlDistributionPoints"]],
                None, None, None)]), False)
            .add_extension(x509.AuthorityInformationAccess(
                [x509.AccessDescription(x509.oid.AuthorityInformationAccessOID.OCSP,
                                        x509.UniformResourceIdentifier(u))
                 for u in urls["ocspServers"]]
                + [x509.AccessDescription(x509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
                                          x509.UniformResourceIdentifier(u))
                   for u in urls["issuingCertificates"]]), False)
            .sign(ca_key, hashes.SHA256()))


def issue(spec: dict, role: dict, urls: dict, intermediate) -> tuple[x509.Certificate, object]:
    key = private_key(spec["privateKey"])
    return vault_sign(role, urls, csr_for(spec, key), _go_seconds(spec["duration"]),
                      intermediate), key


def verifier(root, name: str):
    return PolicyBuilder().store(Store([root])).time(NOW).build_server_verifier(DNSName(name))


def test_planned_certificate_is_issued_as_planned(planned, pki):
    env, plan = planned
    (root, _), intermediate = pki
    r = by_name(plan)
    spec = r["api-tls-certificate"].inputs["spec"]
    role = r["api-tls-pki-role"].inputs
    urls = r[f"pki-{env}-urls"].inputs
    leaf, key = issue(spec, role, urls, intermediate)

    # names: each planned DNS name verifies, through the chain, to the root
    for name in spec["dnsNames"]:
        chain = verifier(root, name).verify(leaf, [intermediate[0]])
        assert [c.subject for c in chain] == [leaf.subject, intermediate[0].subject,
                                              root.subject]
    # and no other service's name does
    with pytest.raises(VerificationError):
        verifier(root, f"web.web-{env}.svc").verify(leaf, [intermediate[0]])
    # usages: a TLS server certificate only (no client auth was asked for)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [EKU[u] for u in spec["usages"] if u in EKU]
    with pytest.raises(VerificationError):
        PolicyBuilder().store(Store([root])).time(NOW).build_client_verifier().verify(
            leaf, [intermediate[0]])
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert (ku.digital_signature, ku.key_encipherment) == (True, False)
    # key type and size
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert leaf.public_key().curve.name == "secp256r1"
    assert leaf.public_key() == key.public_key()
    # lifetime, and cert-manager's renewal point inside it
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime == datetime.timedelta(seconds=_go_seconds(spec["duration"]))
    renew_at = leaf.not_valid_after_utc - datetime.timedelta(
        seconds=_go_seconds(spec["renewBefore"]))
    assert leaf.not_valid_before_utc < renew_at < leaf.not_valid_after_utc
    # revocation and AIA pointers as configured
    crl = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for n in crl[0].full_name] == urls["crlDistributionPoints"]


def test_the_role_refuses_what_the_plan_did_not_ask_for(planned, pki):
    env, plan = planned
    _, intermediate = pki
    r = by_name(plan)
    spec = r["api-tls-certificate"].inputs["spec"]
    role = r["api-tls-pki-role"].inputs
    urls = r[f"pki-{env}-urls"].inputs
    for names in ([f"web.web-{env}.svc"], [f"x.api.api-{env}.svc"], ["*.svc.cluster.local"]):
        with pytest.raises(Refused, match="not allowed by role"):
            issue({**spec, "dnsNames": names}, role, urls, intermediate)
    with pytest.raises(Refused, match="key type/size"):
        issue({**spec, "privateKey": {"algorithm": "RSA", "size": 2048}}, role, urls,
              intermediate)
    with pytest.raises(Refused, match="max_ttl"):
        issue({**spec, "duration": "2161h"}, role, urls, intermediate)


PLATFORM = Platform.model_validate({
    "environment": "staging", "vault": {"address": "https://vault.example:8200"},
    "aws": {"region": "eu-west-1", "account_id": "222222222222"},
    "pki": {"parent": "external"}})


@pytest.mark.parametrize("tls", [
    Tls(),
    Tls(key_algorithm="ECDSA", key_size=384, duration="2160h",
        usages=["digital signature", "server auth", "client auth"]),
    Tls(key_algorithm="RSA", key_size=2048, extra_dns_names=["orders.shop.internal"],
        duration="24h"),
], ids=["default", "ecdsa-384-mtls", "rsa-2048-extra-name"])
def test_every_key_choice_is_issuable(tls, pki):
    """Spec and role built from the same TlsModel agree for each key choice configplane allows."""
    (root, _), intermediate = pki
    plan = tls_model("orders", "orders-staging", PLATFORM, tls)
    role = {k.replace("_", " ").title().replace(" ", ""): v
            for k, v in plan.role_args(2160 * 3600).items()}
    role = {k[0].lower() + k[1:]: v for k, v in role.items()}  # camelCase, as the engine holds it
    spec = plan.certificate_spec({})
    urls = {"crlDistributionPoints": ["http://crl.example/crl"],
            "ocspServers": ["http://ocsp.example"], "issuingCertificates": ["http://ca.example"]}
    leaf, _ = issue(spec, role, urls, intermediate)
    for name in spec["dnsNames"]:
        verifier(root, name).verify(leaf, [intermediate[0]])
    assert leaf.public_key().key_size == plan.key_size
    if "client auth" in plan.usages:
        PolicyBuilder().store(Store([root])).time(NOW).build_client_verifier().verify(
            leaf, [intermediate[0]])
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_encipherment == (plan.algorithm == "RSA")
