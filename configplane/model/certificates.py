"""Certificates: names, the cert-manager objects and the Vault PKI role of one service, and
the checks a stack's `tls:` and `platform.pki` must pass. Plain Python, no resources.

A service's certificate may name only its own cluster DNS names (`<svc>.<ns>.svc`,
`<svc>.<ns>.svc.cluster.local`) plus the extra names it declares; its PKI role allows exactly
those names (bare, no subdomains, no globs), and only the service's own identity may sign
with that role (`<pki mount>/sign/<role>`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TypedDict

from configplane import ownership
from configplane.contract import RELOADER_MATCH_ANNOTATION
from configplane.durations import go_duration, seconds
from configplane.model.document import PkiSettings, Platform, Service, Tls

CERT_MANAGER_API = "cert-manager.io/v1"

KEY_SIZES = {"ECDSA": (256, 384, 521), "RSA": (2048, 4096, 8192)}  # what cert-manager accepts
DEFAULT_KEY_SIZE = {"ECDSA": 256, "RSA": 4096}
VAULT_KEY_TYPE = {"ECDSA": "ec", "RSA": "rsa"}
MIN_DURATION = 3600  # cert-manager refuses shorter certificates
MIN_RENEW_BEFORE = 300  # and renewBefore under 5 minutes
PEM_CERTIFICATE = re.compile(
    r"^\s*(-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----\s*)+$")
DNS_NAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")


def pki_mount(environment: str, settings: PkiSettings) -> str:
    return ownership.pki_mount(environment, settings.mount)


def pki_root_mount(environment: str, settings: PkiSettings) -> str:
    return ownership.pki_root_mount(environment, settings.root_mount)


def ca_common_name(platform: Platform, settings: PkiSettings) -> str:
    return settings.common_name or f"{platform.part_of} {platform.environment} intermediate CA"


class PkiUrls(TypedDict):
    """The keyword arguments of Vault's SecretBackendConfigUrls."""

    crl_distribution_points: list[str]
    ocsp_servers: list[str]
    issuing_certificates: list[str]


def pki_urls(platform: Platform, settings: PkiSettings) -> PkiUrls:
    """CRL, OCSP and issuing-certificate (AIA) URLs written into every certificate."""
    base = f"{platform.vault.address.rstrip('/')}/v1/{pki_mount(platform.environment, settings)}"
    return {
        "crl_distribution_points": settings.crl_distribution_points or [f"{base}/crl"],
        "ocsp_servers": settings.ocsp_servers or [f"{base}/ocsp"],
        "issuing_certificates": settings.issuing_certificates or [f"{base}/ca"],
    }


def is_wildcard(name: str) -> bool:
    return "*" in name


@dataclass(frozen=True)
class TlsModel:
    """One service's certificate, derived once from its validated `tls:`."""

    service: str
    namespace: str
    environment: str
    pki_mount: str
    dns_names: tuple[str, ...]
    duration: int  # seconds
    renew_before: int
    algorithm: str  # ECDSA | RSA
    key_size: int
    usages: tuple[str, ...]

    @property
    def role_name(self) -> str:
        """The Vault PKI role (in the environment's intermediate mount)."""
        return ownership.pki_role(self.service)

    @property
    def sign_path(self) -> str:
        return f"{self.pki_mount}/sign/{self.role_name}"

    @property
    def policy_name(self) -> str:
        return ownership.pki_policy_name(self.environment, self.service)

    @property
    def auth_role(self) -> str:
        """The Kubernetes auth role cert-manager logs in with, as the service's account."""
        return ownership.pki_auth_role(self.service)

    @property
    def issuer_name(self) -> str:
        return ownership.issuer_name(self.service)

    @property
    def certificate_name(self) -> str:
        return ownership.tls_secret_name(self.service)

    @property
    def secret_name(self) -> str:
        return ownership.tls_secret_name(self.service)

    @property
    def audience(self) -> str:
        """cert-manager's token audience for a namespaced Issuer (internal/vault/vault.go)."""
        return f"vault://{self.namespace}/{self.issuer_name}"

    def policy_hcl(self) -> str:
        """Sign with the service's own role, nothing else (issue would let Vault make the key)."""
        return f'path "{self.sign_path}" {{\n  capabilities = ["create", "update"]\n}}\n'

    def issuer_spec(self, vault_address: str, kubernetes_auth_path: str,
                    service_account: str) -> dict:
        return {"vault": {
            "server": vault_address,
            "path": self.sign_path,
            "auth": {"kubernetes": {
                "mountPath": f"/v1/auth/{kubernetes_auth_path}",
                "role": self.auth_role,
                "serviceAccountRef": {"name": service_account},
            }},
        }}

    def certificate_spec(self, labels: Mapping[str, str]) -> dict:
        return {
            "secretName": self.secret_name,
            # Reloader restarts the workloads that opted in when cert-manager renews.
            "secretTemplate": {"labels": dict(labels),
                               "annotations": {RELOADER_MATCH_ANNOTATION: "true"}},
            "issuerRef": {"name": self.issuer_name, "kind": "Issuer", "group": "cert-manager.io"},
            "dnsNames": list(self.dns_names),
            "duration": go_duration(self.duration),
            "renewBefore": go_duration(self.renew_before),
            "privateKey": {"algorithm": self.algorithm, "size": self.key_size,
                           "encoding": "PKCS8", "rotationPolicy": "Always"},
            "usages": list(self.usages),
        }

    def role_args(self, leaf_max_ttl: int) -> dict:
        """pulumi_vault.pkisecret.SecretBackendRole arguments (without backend/name)."""
        return {
            "allowed_domains": list(self.dns_names),
            "allow_bare_domains": True,  # exactly these names...
            "allow_subdomains": False,  # ...and nothing below them
            "allow_glob_domains": any(is_wildcard(n) for n in self.dns_names),
            "allow_wildcard_certificates": any(is_wildcard(n) for n in self.dns_names),
            "allow_any_name": False,
            "allow_localhost": False,
            "allow_ip_sans": False,
            "enforce_hostnames": True,
            "require_cn": False,
            "server_flag": "server auth" in self.usages,
            "client_flag": "client auth" in self.usages,
            "key_type": VAULT_KEY_TYPE[self.algorithm],
            "key_bits": self.key_size,
            "key_usages": [u.title().replace(" ", "") for u in self.usages
                           if u in ("digital signature", "key encipherment")],
            "ttl": str(self.duration),
            "max_ttl": str(leaf_max_ttl),
        }


def service_dns_names(service: str, namespace: str, tls: Tls) -> tuple[str, ...]:
    own = ownership.cluster_dns_names(service, namespace)
    return tuple(dict.fromkeys(own + tuple(tls.extra_dns_names)))


def default_usages(algorithm: str) -> tuple[str, ...]:
    # key encipherment is an RSA key-transport usage; an EC key only signs.
    if algorithm == "RSA":
        return ("digital signature", "key encipherment", "server auth")
    return ("digital signature", "server auth")


def tls_model(service: str, namespace: str, platform: Platform, tls: Tls) -> TlsModel:
    assert platform.pki is not None  # validated
    duration = seconds(tls.duration)
    return TlsModel(
        service=service,
        namespace=namespace,
        environment=platform.environment,
        pki_mount=pki_mount(platform.environment, platform.pki),
        dns_names=service_dns_names(service, namespace, tls),
        duration=duration,
        renew_before=seconds(tls.renew_before) if tls.renew_before else -(-duration // 3),
        algorithm=tls.key_algorithm,
        key_size=tls.key_size or DEFAULT_KEY_SIZE[tls.key_algorithm],
        usages=tuple(tls.usages) if tls.usages else default_usages(tls.key_algorithm),
    )


# --- validation ---------------------------------------------------------------------------


def problems(platform: Platform, services: Mapping[str, Service]) -> Iterator[tuple[list[str], str]]:
    """(key path, message with its fix) for each problem with `platform.pki` and `tls:`."""
    pki = platform.pki
    if pki is not None:
        yield from _pki_problems(platform, pki)
    for name, svc in services.items():
        if svc.tls is None:
            continue
        path = ["services", name, "tls"]
        if pki is None:
            yield path, ("a certificate needs the environment's PKI. Fix: add platform.pki "
                         "(parent: root or external) or remove `tls`.")
            continue
        yield from _tls_problems(path, name, platform, pki, svc.tls)


def _pki_problems(platform: Platform, pki: PkiSettings) -> Iterator[tuple[list[str], str]]:
    base = ["platform", "pki"]
    if pki.allow_wildcard_names and platform.environment == "prod":
        yield [*base, "allow_wildcard_names"], (
            "wildcard certificates are not allowed in prod: a stolen wildcard key impersonates "
            "every name below it. Fix: set it to false and list each name in extra_dns_names.")
    if pki.parent == "external" and pki.root_mount:
        yield [*base, "root_mount"], ("root_mount is only for parent: root. Fix: remove it.")
    if pki.parent == "root" and pki.intermediate_certificate:
        yield [*base, "intermediate_certificate"], (
            "with parent: root Vault signs the intermediate itself. Fix: remove "
            "intermediate_certificate, or set parent: external.")
    if pki.intermediate_certificate and not PEM_CERTIFICATE.match(pki.intermediate_certificate):
        yield [*base, "intermediate_certificate"], (
            "not a PEM certificate. Fix: paste the certificate the offline root signed "
            "(-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----, chain allowed).")
    leaf, ca = seconds(pki.leaf_max_ttl), seconds(pki.max_ttl)
    if leaf >= ca:
        yield [*base, "leaf_max_ttl"], (
            f"leaf_max_ttl {pki.leaf_max_ttl} is not shorter than the CA's max_ttl "
            f"{pki.max_ttl}: certificates would outlive their issuer. Fix: shorten it.")
    if pki.parent == "root" and seconds(pki.root_ttl) <= ca:
        yield [*base, "root_ttl"], (
            f"root_ttl {pki.root_ttl} must exceed max_ttl {pki.max_ttl} (the intermediate "
            "cannot outlive its root). Fix: lengthen root_ttl or shorten max_ttl.")
    for key in ("crl_distribution_points", "ocsp_servers", "issuing_certificates"):
        for i, url in enumerate(getattr(pki, key) or []):
            if not re.match(r"^https?://[^\s/]+(/\S*)?$", url):
                yield [*base, key, str(i)], "not an http(s) URL. Fix: correct it."


def _tls_problems(path: list[str], name: str, platform: Platform, pki: PkiSettings,
                  tls: Tls) -> Iterator[tuple[list[str], str]]:
    for i, dns in enumerate(tls.extra_dns_names):
        where = [*path, "extra_dns_names", str(i)]
        if len(dns) > 253 or not DNS_NAME.fullmatch(dns) or dns.count("*") > (1 if dns.startswith(
                "*.") else 0):
            yield where, ("not a DNS name (lowercase labels separated by dots, at least two, "
                          "an optional leading `*.`). Fix: correct it.")
        elif is_wildcard(dns) and platform.environment == "prod":
            yield where, ("wildcard names are not allowed in prod. Fix: list each name the "
                          "service answers to.")
        elif is_wildcard(dns) and not pki.allow_wildcard_names:
            yield where, ("wildcard names need platform.pki.allow_wildcard_names (never in "
                          "prod). Fix: list each name instead, or allow them for this "
                          "environment.")
    try:
        duration = seconds(tls.duration)
    except ValueError:
        return  # the schema reported it
    leaf = seconds(pki.leaf_max_ttl)
    if duration < MIN_DURATION:
        yield [*path, "duration"], "cert-manager's minimum duration is 1h. Fix: lengthen it."
    if duration > leaf:
        yield [*path, "duration"], (
            f"{tls.duration} exceeds the PKI's leaf_max_ttl {pki.leaf_max_ttl}: Vault would "
            "shorten the certificate and cert-manager renew it early. Fix: shorten it.")
    if tls.renew_before:
        renew = seconds(tls.renew_before)
        if renew >= duration:
            yield [*path, "renew_before"], (
                "renew_before must be shorter than duration (cert-manager refuses it). Fix: "
                "use about a third of the duration.")
        elif renew < MIN_RENEW_BEFORE:
            yield [*path, "renew_before"], "cert-manager's minimum is 5m. Fix: lengthen it."
    sizes = KEY_SIZES[tls.key_algorithm]
    if tls.key_size is not None and tls.key_size not in sizes:
        yield [*path, "key_size"], (
            f"{tls.key_algorithm} keys may be {', '.join(map(str, sizes))} bits (what "
            f"cert-manager accepts). Fix: use one of those.")
    usages = tls.usages or []
    if tls.key_algorithm == "ECDSA" and "key encipherment" in usages:
        yield [*path, "usages"], ("key encipherment is an RSA key-transport usage; an ECDSA "
                                  "key cannot do it. Fix: remove it.")
    if tls.usages is not None and not {"server auth", "client auth"} & set(usages):
        yield [*path, "usages"], ("the certificate would serve neither TLS servers nor "
                                  "clients. Fix: add `server auth` and/or `client auth`.")
