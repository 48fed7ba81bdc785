"""A stand-in for the Kubernetes API server's TokenReview endpoint, over HTTPS with a CA of
its own, and the service account tokens it knows: what a Vault outside the cluster talks to.

Vault's Kubernetes auth (OpenBao internal/builtin/credential/kubernetes: path_login.go,
token_review.go) reads a login JWT's claims without checking its signature, checks them
against the role (account name, namespace, audience), then asks the API server to review the
token with the configured reviewer token as bearer, and compares the reviewed identity with
the claims. This server answers as kube-apiserver does for tokens it issued (`issue`) and
refuses anything else; it accepts only the reviewer tokens it is told (`reviewers`)."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
ISSUER = "kubernetes/serviceaccount"  # what Vault expects when it validates `iss`


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Identity:
    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]


@dataclass
class KubernetesApi:
    host: str
    ca_pem: str
    reviewers: set[str] = field(default_factory=set)
    issued: dict[str, Identity] = field(default_factory=dict)
    reviews: list[dict] = field(default_factory=list)  # what Vault asked
    _key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(
        ec.SECP256R1()), repr=False)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)

    def issue(self, namespace: str, name: str, audiences: tuple[str, ...] = ("vault",)) -> str:
        """A projected service account token, as the TokenRequest API makes it (ES256)."""
        identity = Identity(namespace, name, str(uuid.uuid4()), audiences)
        now = int(datetime.datetime.now(datetime.UTC).timestamp())
        claims = {"iss": ISSUER, "sub": f"system:serviceaccount:{namespace}:{name}",
                  "aud": list(audiences), "iat": now, "nbf": now, "exp": now + 600,
                  "kubernetes.io": {"namespace": namespace,
                                    "serviceaccount": {"name": name, "uid": identity.uid}}}
        signing_input = (_b64(json.dumps({"alg": "ES256", "typ": "JWT"}).encode()) + "." +
                         _b64(json.dumps(claims).encode()))
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(),
                                                   ec.ECDSA(hashes.SHA256())))
        token = f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
        self.issued[token] = identity
        return token

    def review(self, bearer: str, body: dict) -> tuple[int, dict]:
        self.reviews.append(body)
        if bearer not in self.reviewers:
            return 401, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                         "reason": "Unauthorized", "code": 401}
        spec = body.get("spec", {})
        identity = self.issued.get(spec.get("token", ""))
        wanted = spec.get("audiences") or []
        status: dict = {"authenticated": False}
        if identity is not None and (not wanted or set(wanted) & set(identity.audiences)):
            status = {"authenticated": True,
                      "user": {"username": f"system:serviceaccount:{identity.namespace}:"
                                           f"{identity.name}", "uid": identity.uid},
                      "audiences": [a for a in identity.audiences if a in wanted] if wanted
                      else list(identity.audiences)}
        elif identity is not None:
            status["error"] = "token audiences are invalid"
        return 201, {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                     "spec": spec, "status": status}

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _certificates(directory: Path) -> tuple[str, ssl.SSLContext]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test Kubernetes API CA")])
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(ca_key, hashes.SHA256()))
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
    return ca.public_bytes(serialization.Encoding.PEM).decode(), context


def start() -> KubernetesApi:
    """Serve TokenReview on https://localhost:<free port> in a daemon thread."""
    with tempfile.TemporaryDirectory(prefix="configplane-k8s-") as folder:
        ca_pem, context = _certificates(Path(folder))
    api: KubernetesApi

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
            code, answer = api.review(bearer, body) if self.path == REVIEW_PATH else (404, {})
            payload = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    api = KubernetesApi(f"https://localhost:{server.server_address[1]}", ca_pem,
                        _server=server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return api

