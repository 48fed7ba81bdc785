"""Certificates the platform hands to Vault, parsed and checked with `cryptography`: the
intermediate CA's signed certificate (with its chain), the CA of the Kubernetes API server
(Kubernetes auth from a Vault outside the cluster) and the CA of each database server (TLS
that verifies). Plain Python, no resources; `problems` is what `validate` and the program run.

Why the intermediate's bundle is put in order here: Vault's `intermediate/set-signed` imports
every certificate of a bundle as an issuer, in the bundle's order, and the program makes the
first one the environment's issuer. Pasted root-first, the root (whose key is not in Vault)
became `<env>-intermediate` and every signing failed. `order_chain` puts the certificate whose
key is the CSR's first, then its issuers upward.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from configplane.model.certificates import PEM_CERTIFICATE
from configplane.model.document import Platform
from configplane.wording import count

PEM_END = "-----END CERTIFICATE-----"


class ChainError(ValueError):
    """A certificate bundle that cannot serve; the message says why and how to fix it."""


def pem_certificates(text: str) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, in order; ChainError if there is none or one is bad."""
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ChainError("no PEM certificate found (-----BEGIN CERTIFICATE----- … "
                         f"{PEM_END})")
    try:
        return x509.load_pem_x509_certificates(text.encode())
    except ValueError as exc:
        raise ChainError(f"a certificate does not parse ({exc})") from None


def _public_bytes(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        return "a certificate without a common name"
    value = names[0].value  # bytes only for bit-string attributes, never a common name
    return f"`{value.decode(errors='replace') if isinstance(value, bytes) else value}`"


def _expiry_problem(cert: x509.Certificate, now: datetime.datetime) -> str | None:
    if cert.not_valid_after_utc <= now:
        return f"{_name(cert)} expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    if cert.not_valid_before_utc > now:
        return f"{_name(cert)} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}"
    return None


def chain_from(certs: list[x509.Certificate], first: x509.Certificate) -> list[x509.Certificate]:
    """`first`, then its issuer, its issuer's issuer… as far as the bundle goes."""
    chain, rest = [first], [c for c in certs if c is not first]
    while True:
        issuer = next((c for c in rest if _signed_by(chain[-1], c)), None)
        if issuer is None or chain[-1].issuer == chain[-1].subject:
            return chain
        chain.append(issuer)
        rest.remove(issuer)


def intermediate_problems(text: str, now: datetime.datetime | None = None) -> list[str]:
    """What is wrong with a signed intermediate bundle, each with its fix (empty: fine).

    The bundle must hold exactly one certificate that no other certificate of it was issued by
    (the intermediate: a CA, not self-signed, path length 0, valid now), and every other
    certificate must be on its chain (each signed by the next)."""
    now = now or datetime.datetime.now(datetime.UTC)
    try:
        certs = pem_certificates(text)
    except ChainError as exc:
        return [f"{exc}. Fix: paste the certificate the offline root signed for `pki.csr`, "
                "then its chain."]
    lowest = [c for c in certs if not any(_signed_by(o, c) for o in certs if o is not c)]
    if len(lowest) != 1:
        return [f"the {len(certs)} certificates do not form one chain ({len(lowest)} of them "
                "issued none of the others). Fix: paste only the intermediate the offline root "
                "signed and the certificates above it."]
    leaf = lowest[0]
    problems = []
    if leaf.issuer == leaf.subject:
        problems.append(f"{_name(leaf)} is self-signed: that is a root, not the intermediate "
                        "signed for this environment's CSR. Fix: paste the signed intermediate.")
    if not _is_ca(leaf):
        problems.append(f"{_name(leaf)} is not a CA certificate (basicConstraints CA:TRUE). "
                        "Fix: sign the CSR as an intermediate CA.")
    else:
        path_length = leaf.extensions.get_extension_for_class(
            x509.BasicConstraints).value.path_length
        if path_length != 0:
            problems.append(f"{_name(leaf)} may sign further CAs (path length "
                            f"{path_length}). Fix: sign it with path length 0.")
    chain = chain_from(certs, leaf)
    if len(chain) != len(certs):
        stray = len(certs) - len(chain)
        problems.append(f"{count(stray, 'certificate')} {'is' if stray == 1 else 'are'} not on "
                        f"the intermediate's chain. Fix: remove {'it' if stray == 1 else 'them'}.")
    for cert in chain:
        problem = _expiry_problem(cert, now)
        if problem:
            problems.append(f"{problem}. Fix: paste a current certificate.")
    return problems


def order_chain(text: str, csr_pem: str) -> str:
    """The bundle with the certificate whose key is the CSR's first, then its issuers upward
    (what set-signed should import first). ChainError if no certificate has that key."""
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    certs = pem_certificates(text)
    wanted = _public_bytes(csr.public_key())
    own = next((c for c in certs if _public_bytes(c.public_key()) == wanted), None)
    if own is None:
        raise ChainError("no certificate in the bundle has the key of this environment's CSR "
                         "(output pki.csr): it was signed for another request")
    chain = chain_from(certs, own)
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)


def ca_bundle_problems(text: str, now: datetime.datetime | None = None) -> list[str]:
    """What is wrong with a bundle of CA certificates a client trusts (empty: fine)."""
    now = now or datetime.datetime.now(datetime.UTC)
    try:
        certs = pem_certificates(text)
    except ChainError as exc:
        return [f"{exc}. Fix: paste the PEM CA certificate(s)."]
    problems = []
    for cert in certs:
        if not _is_ca(cert):
            problems.append(f"{_name(cert)} is not a CA certificate (basicConstraints CA:TRUE). "
                            "Fix: paste the CA that issued the server's certificate, not the "
                            "server's own.")
        problem = _expiry_problem(cert, now)
        if problem:
            problems.append(f"{problem}. Fix: paste the current CA.")
    return problems


IN_CLUSTER_HOST = "https://kubernetes.default.svc"


def problems(platform: Platform) -> Iterator[tuple[list[str], str]]:
    """(key path, message with its fix) for the CAs and trust settings of `platform`."""
    vault = platform.vault
    base = ["platform", "vault"]
    if not vault.runs_in_cluster:
        if vault.kubernetes_host.rstrip("/").startswith(IN_CLUSTER_HOST):
            yield [*base, "kubernetes_host"], (
                f"{vault.kubernetes_host} resolves only inside the cluster, and Vault runs "
                "outside it (runs_in_cluster: false). Fix: set the API server's external URL "
                "(`kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}'`).")
        for key, what in (("kubernetes_ca_cert", "the API server's CA (public)"),
                          ("token_reviewer_jwt_config_key",
                           "a `secure` config key holding the token Vault reviews logins with")):
            if getattr(vault, key) is None:
                yield [*base, key], (
                    f"a Vault outside the cluster needs {what}: without it Vault reads the "
                    "files of a pod it does not run in and refuses the configuration. Fix: set "
                    f"platform.vault.{key} (docs/isolation.md, Kubernetes auth).")
    if vault.kubernetes_ca_cert is not None:
        for problem in ca_bundle_problems(vault.kubernetes_ca_cert):
            yield [*base, "kubernetes_ca_cert"], problem
    pki = platform.pki
    # certificates.py reports a certificate under parent: root, and text that is not PEM
    if pki is not None and pki.parent == "external" and pki.intermediate_certificate \
            and PEM_CERTIFICATE.match(pki.intermediate_certificate):
        for problem in intermediate_problems(pki.intermediate_certificate):
            yield ["platform", "pki", "intermediate_certificate"], problem
    database = platform.database
    for name, conn in (database.connections if database else {}).items():
        path = ["platform", "database", "connections", name]
        if conn.ssl_root_cert_file is not None and conn.ssl_root_cert is None:
            yield [*path, "ssl_root_cert"], (
                "ssl_root_cert_file names where Vault reads the CA; its content belongs in "
                "ssl_root_cert too, where validate checks it. Fix: paste the same bundle.")
            continue
        if conn.ssl_root_cert is None:
            if conn.ssl_mode in ("verify-full", "verify-ca"):
                yield [*path, "ssl_root_cert"], (
                    f"ssl_mode {conn.ssl_mode} verifies the server's certificate, which needs "
                    "its CA: RDS's CAs are in no public trust store, so Vault could not "
                    "connect. Fix: paste the CA bundle (for RDS, the region's bundle: "
                    "https://truststore.pki.rds.amazonaws.com/<region>/<region>-bundle.pem).")
            continue
        for problem in ca_bundle_problems(conn.ssl_root_cert):
            yield [*path, "ssl_root_cert"], problem
