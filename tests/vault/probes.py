"""Questions put to the OpenBao server, as a service's token would put them. Each check
returns findings (empty: the server decided as planned), so the mutation tests run the very
same checks against a deliberately broken policy, role or statement."""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.vault.server import OpenBao

AUTH_ROLE = "vault:kubernetes/authBackendRole:AuthBackendRole"
PKI_ROLE = "vault:pkiSecret/secretBackendRole:SecretBackendRole"
DB_ROLE = "vault:database/secretBackendRole:SecretBackendRole"
KV_SECRET = "vault:kv/secretV2:SecretV2"
# sys/ and auth/ paths no service may touch (the `default` policy's token self-service paths,
# auth/token/lookup-self and the like, are allowed by design and not probed)
CONTROL_PATHS = (("GET", "sys/mounts"), ("GET", "sys/policies/acl"), ("LIST", "sys/policies/acl"),
                 ("GET", "sys/audit"), ("GET", "sys/auth"), ("POST", "auth/token/create"),
                 ("LIST", "auth/token/accessors"), ("GET", "sys/storage/raft/snapshot"),
                 ("POST", "sys/leases/revoke"), ("GET", "sys/config/state/sanitized"))


class LoginRefused(Exception):
    pass


def login(a, backend: str, role: str, *, namespace: str | None = None,
          account: str | None = None, audience: str | None = None) -> tuple[str, list[str]]:
    """A Kubernetes login with `role`: a service account token issued by the stand-in API
    server (`a.kube`) for the role's own account, namespace and audience unless others are
    given; the server reviews it there. Returns the token and its policies."""
    settings = a.server.call("GET", f"auth/{backend}/role/{role}")["data"]
    jwt = a.kube.issue(namespace or settings["bound_service_account_namespaces"][0],
                       account or settings["bound_service_account_names"][0],
                       (audience or settings["audience"],))
    response = a.server.request("POST", f"auth/{backend}/login", token="",
                                json={"role": role, "jwt": jwt})
    if response.status_code != 200:
        raise LoginRefused(f"{response.status_code} {response.text}")
    auth = response.json()["auth"]
    return auth["client_token"], sorted(auth["policies"])


def status(server: OpenBao, method: str, path: str, token: str, body: dict | None = None) -> int:
    return server.request(method, path, token=token, json=body).status_code


def csr_pem(names: list[str], key=None, ips: tuple[str, ...] = ()) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i))
                                              for i in ips]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def sign(server: OpenBao, sign_path: str, token: str, names: list[str], key=None,
         ips: tuple[str, ...] = (), ttl: str | None = None):
    """(status, certificate or None): what the server answers cert-manager's sign request."""
    body = {"csr": csr_pem(names, key, ips), "common_name": names[0] if names else "",
            "alt_names": ",".join(names[1:])}
    if ips:
        body["ip_sans"] = ",".join(ips)
    if ttl:
        body["ttl"] = ttl
    response = server.request("POST", sign_path, token=token, json=body)
    if response.status_code != 200:
        return response.status_code, None
    pem = response.json()["data"]["certificate"]
    return 200, x509.load_pem_x509_certificate(pem.encode())


def signing_findings(server: OpenBao, sign_path: str, token: str, own: list[str],
                     others: list[str], max_ttl: int) -> list[str]:
    """A PKI role signs exactly the service's own names, with a key of the planned kind, and
    never past max_ttl; anything else is a finding."""
    findings = []
    code, cert = sign(server, sign_path, token, own)
    if code != 200:
        findings.append(f"own names {own} refused ({code})")
    else:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if sorted(sans.get_values_for_type(x509.DNSName)) != sorted(own):
            findings.append(f"certificate names {sans} are not the requested {own}")
    first = own[0]
    refused = {
        "another service's name": [others[0]] if others else [],
        "a subdomain of its own name": [f"evil.{first}"],
        "a wildcard": [f"*.{first.split('.', 1)[1]}"],
        "localhost": ["localhost"],
        "a name outside the cluster": ["example.com"],
    }
    for what, names in refused.items():
        if names and sign(server, sign_path, token, names)[0] == 200:
            findings.append(f"signed {what}: {names}")
    if sign(server, sign_path, token, [first], ips=("127.0.0.1",))[0] == 200:
        findings.append("signed an IP SAN")
    weak = {"an EC P-224 key": ec.generate_private_key(ec.SECP224R1()),
            "an RSA key on an EC role": rsa.generate_private_key(65537, 2048)}
    for what, key in weak.items():
        if sign(server, sign_path, token, [first], key=key)[0] == 200:
            findings.append(f"signed {what}")
    code, cert = sign(server, sign_path, token, [first], ttl=f"{max_ttl * 4}s")
    if code == 200:
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        if lifetime > datetime.timedelta(seconds=max_ttl + 60):
            findings.append(f"a certificate lives {lifetime}, over max_ttl {max_ttl}s")
    return findings
