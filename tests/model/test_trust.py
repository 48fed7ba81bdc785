"""The CA checks of configplane.model.trust (what `validate` runs): certificates made here
with `cryptography` in every arrangement a paste can have."""

from __future__ import annotations

import datetime
import itertools

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from configplane.model import trust

NOW = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)


def make(cn, issuer=None, issuer_key=None, ca=True, path_length=None, days=3650, key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer.subject if issuer else name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1))
               .not_valid_after(NOW + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), True))
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return cert, key


def pem(*certs) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


@pytest.fixture(scope="module")
def chain():
    root, root_key = make("root")
    middle, middle_key = make("middle", root, root_key, path_length=1)
    inter, inter_key = make("intermediate", middle, middle_key, path_length=0)
    csr = (x509.CertificateSigningRequestBuilder().subject_name(inter.subject)
           .sign(inter_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    return root, middle, inter, csr


def test_every_order_of_a_good_bundle_is_accepted_and_put_in_chain_order(chain):
    root, middle, inter, csr = chain
    for order in itertools.permutations((root, middle, inter)):
        assert trust.intermediate_problems(pem(*order), NOW) == []
        assert trust.order_chain(pem(*order), csr) == pem(inter, middle, root)


def test_the_intermediate_alone_is_enough(chain):
    _, _, inter, csr = chain
    assert trust.intermediate_problems(pem(inter), NOW) == []
    assert trust.order_chain(pem(inter), csr) == pem(inter)


def test_a_bundle_without_the_csr_key_is_refused(chain):
    root, middle, _, csr = chain
    with pytest.raises(trust.ChainError, match="key of this environment's CSR"):
        trust.order_chain(pem(root, middle), csr)


def test_broken_bundles_are_refused_with_a_fix(chain):
    root, middle, inter, _ = chain
    stranger, _ = make("stranger")
    leaf, _ = make("leaf", inter, None, ca=False)  # not signed by inter's key: not a chain
    cases = {
        "": "no PEM certificate",
        pem(root): "self-signed",
        pem(middle, root): "path length 1",
        pem(inter, root): "do not form one chain",  # middle missing: two lowest certificates
        pem(inter, middle, root, stranger): "do not form one chain",
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n": "does not parse",
    }
    for text, expected in cases.items():
        problems = trust.intermediate_problems(text, NOW)
        assert problems and any(expected in p for p in problems), (expected, problems)
        assert all("Fix:" in p for p in problems)
    expired = trust.intermediate_problems(pem(inter, middle, root),
                                          NOW + datetime.timedelta(days=4000))
    assert expired and all("expired" in p for p in expired)
    assert any("not a CA" in p for p in trust.ca_bundle_problems(pem(leaf), NOW))


def test_a_ca_bundle_of_cas_is_accepted(chain):
    root, middle, _, _ = chain
    assert trust.ca_bundle_problems(pem(root, middle), NOW) == []
    assert trust.ca_bundle_problems("junk", NOW)
