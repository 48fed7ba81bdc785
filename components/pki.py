"""Certificates: per environment an intermediate CA in Vault's PKI engine; per service a PKI
role for its own names, the policy and Kubernetes auth role that let only its identity sign
with that role, and the cert-manager Issuer and Certificate in its namespace."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

import pulumi
import pulumi_kubernetes as k8s
import pulumi_vault as vault
from pulumi_kubernetes.apiextensions import CustomResource

from components import resource_name
from configplane.durations import seconds
from configplane.model import (
    CERT_MANAGER_API,
    PkiSettings,
    Platform,
    ServiceModel,
    TlsModel,
    ca_common_name,
    pki_mount,
    pki_root_mount,
    pki_urls,
    trust,
)
from configplane.ownership import ca_issuer_name


class CaKey(TypedDict):
    key_type: str
    key_bits: int


CA_KEY: CaKey = {"key_type": "ec", "key_bits": 384}  # CA keys: ECDSA P-384
# Revocation reaches the CRLs within a bound (docs/certificates.md, Revocation): a delta CRL
# with each revocation, checked every DELTA_REBUILD_INTERVAL by the mount's periodic function
# (once a minute), and the full CRL rebuilt an hour after its last build (it is valid for
# CRL_EXPIRY; Vault rebuilds it once less than CRL_REBUILD_GRACE of that is left). Without
# this, `auto_rebuild` rebuilt the full CRL only near its expiry, ~60 h after a revocation.
CRL_EXPIRY = "72h"
CRL_REBUILD_GRACE = "71h"
DELTA_REBUILD_INTERVAL = "15s"
INTERMEDIATE_KEY_PATH = "platform.pki.intermediate_certificate"


def intermediate_bundle(bundle: str, csr: str) -> str:
    """The pasted bundle, the certificate of our CSR's key first (set-signed imports in
    order, and the first becomes the environment's issuer); refused when no certificate has
    that key (an error at `pulumi preview`/`up`, which know the CSR from state)."""
    try:
        return trust.order_chain(bundle, csr)
    except trust.ChainError as exc:
        raise pulumi.RunError(f"{INTERMEDIATE_KEY_PATH}: {exc}. Fix: sign this stack's current "
                              "CSR (stack output pki.csr) and paste that certificate, then "
                              "its chain.") from None


@dataclass(frozen=True)
class PkiEnvironmentArgs:
    platform: Platform
    settings: PkiSettings


class PkiEnvironment(pulumi.ComponentResource):
    """The environment's intermediate CA. Its parent is a root CA in Vault (`parent: root`,
    dev) or the organisation's offline root (`parent: external`): then the first `up` creates
    the CSR (output `csr`), the root signs it offline, and the signed certificate goes into
    `platform.pki.intermediate_certificate` for the next `up` to import."""

    def __init__(self, name: str, args: PkiEnvironmentArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("configplane:pki:PkiEnvironment", name, {}, opts)
        platform, pki = args.platform, args.settings
        env = platform.environment
        child = pulumi.ResourceOptions(parent=self)
        common_name = ca_common_name(platform, pki)
        mount = vault.Mount(
            f"{name}-mount",
            path=pki_mount(env, pki),
            type="pki",
            max_lease_ttl_seconds=seconds(pki.max_ttl),
            default_lease_ttl_seconds=seconds(pki.leaf_max_ttl),
            description=f"configplane intermediate CA for {env}",
            opts=child,
        )
        csr = vault.pkisecret.SecretBackendIntermediateCertRequest(
            f"{name}-csr",
            backend=mount.path,
            type="internal",  # the CA key is generated in Vault and never leaves it
            common_name=common_name,
            organization=pki.organization,
            **CA_KEY,
            opts=child,
        )
        certificate: pulumi.Input[str] | None = None
        if pki.intermediate_certificate is not None:
            bundle = pki.intermediate_certificate
            certificate = csr.csr.apply(lambda request: intermediate_bundle(bundle, request))
        if pki.parent == "root":
            certificate = self._dev_root(name, platform, pki, csr, common_name)
        self.signed: bool = certificate is not None
        # what a signing reads: the URLs and CRL settings written into each certificate, the
        # default issuer and its settings. cert-manager's objects depend on them.
        self.issuance_settings: list[pulumi.Resource] = []
        if certificate is not None:
            signed = vault.pkisecret.SecretBackendIntermediateSetSigned(
                f"{name}-set-signed", backend=mount.path, certificate=certificate, opts=child
            )
            issuer = vault.pkisecret.SecretBackendIssuer(
                f"{name}-issuer",
                backend=mount.path,
                issuer_ref=signed.imported_issuers.apply(lambda ids: ids[0] if ids else None),
                issuer_name=ca_issuer_name(env, "intermediate"),
                leaf_not_after_behavior="err",  # never issue past the CA's own expiry
                opts=child,
            )
            default = vault.pkisecret.SecretBackendConfigIssuers(
                f"{name}-default-issuer", backend=mount.path, default=issuer.issuer_id,
                opts=child,
            )
            self.issuance_settings += [issuer, default]
        urls = vault.pkisecret.SecretBackendConfigUrls(
            f"{name}-urls", backend=mount.path, **pki_urls(platform, pki), opts=child
        )
        crl = vault.pkisecret.SecretBackendCrlConfig(
            f"{name}-crl", backend=mount.path, expiry=CRL_EXPIRY, auto_rebuild=True,
            auto_rebuild_grace_period=CRL_REBUILD_GRACE, enable_delta=True,
            delta_rebuild_interval=DELTA_REBUILD_INTERVAL, ocsp_disable=False, opts=child,
        )
        self.issuance_settings += [urls, crl]
        self.mount_path: pulumi.Output[str] = mount.path
        self.csr: pulumi.Output[str] = csr.csr
        self.register_outputs({"mount_path": self.mount_path, "csr": self.csr})

    def _dev_root(self, name: str, platform: Platform, pki: PkiSettings,
                  csr: vault.pkisecret.SecretBackendIntermediateCertRequest,
                  common_name: str) -> pulumi.Output[str]:
        """parent=root: a root CA in its own mount signs the intermediate (pathlen 0)."""
        env = platform.environment
        child = pulumi.ResourceOptions(parent=self)
        root_mount = vault.Mount(
            f"{name}-root-mount", path=pki_root_mount(env, pki), type="pki",
            max_lease_ttl_seconds=seconds(pki.root_ttl),
            description=f"configplane root CA for {env} (parent: root)", opts=child,
        )
        root = vault.pkisecret.SecretBackendRootCert(
            f"{name}-root-cert",
            backend=root_mount.path,
            type="internal",
            common_name=f"{platform.part_of} {env} root CA",
            organization=pki.organization,
            ttl=str(seconds(pki.root_ttl)),
            issuer_name=ca_issuer_name(env, "root"),
            exclude_cn_from_sans=True,
            **CA_KEY,
            opts=child,
        )
        # the intermediate's own certificate points at the root's CRL and certificate
        base = f"{platform.vault.address.rstrip('/')}/v1/{pki_root_mount(env, pki)}"
        root_urls = vault.pkisecret.SecretBackendConfigUrls(
            f"{name}-root-urls", backend=root_mount.path,
            crl_distribution_points=[f"{base}/crl"], ocsp_servers=[f"{base}/ocsp"],
            issuing_certificates=[f"{base}/ca"], opts=child,
        )
        signed = vault.pkisecret.SecretBackendRootSignIntermediate(
            f"{name}-root-sign",
            backend=root_mount.path,
            csr=csr.csr,
            common_name=common_name,
            organization=pki.organization,
            ttl=str(seconds(pki.max_ttl)),
            max_path_length=0,  # the intermediate signs leaves only
            issuer_ref=root.issuer_id,
            exclude_cn_from_sans=True,
            # signing writes the root's URLs into the intermediate: they must be set first
            # (nothing re-signs it when they change later)
            opts=pulumi.ResourceOptions(parent=self, depends_on=[root_urls]),
        )
        return signed.certificate


@dataclass(frozen=True)
class ServiceCertificateArgs:
    service: ServiceModel
    tls: TlsModel
    pki_mount: pulumi.Input[str]  # the environment's intermediate CA mount
    pki_ready: Sequence[pulumi.Resource]  # in one stack: the CA's issuance settings
    namespace: pulumi.Input[str]
    service_account: pulumi.Input[str]
    vault_address: str
    kubernetes_auth_backend: pulumi.Input[str]  # the auth mount (creates the dependency)
    kubernetes_auth_path: str
    leaf_max_ttl: int
    cert_manager_namespace: str
    cert_manager_service_account: str


class ServiceCertificate(pulumi.ComponentResource):
    def __init__(self, name: str, args: ServiceCertificateArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("configplane:pki:ServiceCertificate", name, {}, opts)
        svc, tls = args.service, args.tls
        child = pulumi.ResourceOptions(parent=self)
        vault.pkisecret.SecretBackendRole(
            f"{name}-pki-role",
            backend=args.pki_mount,
            name=tls.role_name,
            issuer_ref="default",
            **tls.role_args(args.leaf_max_ttl),
            opts=child,
        )
        policy = vault.Policy(
            f"{name}-policy", name=tls.policy_name, policy=tls.policy_hcl(), opts=child
        )
        vault.kubernetes.AuthBackendRole(
            f"{name}-auth-role",
            backend=args.kubernetes_auth_backend,
            role_name=tls.auth_role,
            bound_service_account_names=[svc.service_account],
            bound_service_account_namespaces=[svc.namespace],
            audience=tls.audience,  # only tokens cert-manager requested for this Issuer
            token_policies=[policy.name],
            token_ttl=600,
            token_max_ttl=600,
            opts=child,
        )
        metadata: k8s.meta.v1.ObjectMetaArgsDict = {"namespace": args.namespace,
                                                    "labels": dict(svc.labels)}
        # cert-manager requests the service account's token (serviceAccountRef): it may do
        # that for this one account in this one namespace.
        requester = k8s.rbac.v1.Role(
            f"{name}-token-requester",
            metadata={"name": f"{svc.name}-cert-manager-token", **metadata},
            rules=[{"api_groups": [""], "resources": ["serviceaccounts/token"],
                    "resource_names": [svc.service_account], "verbs": ["create"]}],
            opts=child,
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-token-requester-binding",
            metadata={"name": f"{svc.name}-cert-manager-token", **metadata},
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "Role",
                      "name": requester.metadata.name},
            subjects=[{"kind": "ServiceAccount", "name": args.cert_manager_service_account,
                       "namespace": args.cert_manager_namespace}],
            opts=child,
        )
        issuer = CustomResource(
            f"{name}-issuer",
            api_version=CERT_MANAGER_API,
            kind="Issuer",
            metadata={"name": tls.issuer_name, **metadata},
            spec=tls.issuer_spec(args.vault_address, args.kubernetes_auth_path,
                                 svc.service_account),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.pki_ready)),
        )
        certificate = CustomResource(
            f"{name}-certificate",
            api_version=CERT_MANAGER_API,
            kind="Certificate",
            metadata={"name": tls.certificate_name, **metadata},
            spec=tls.certificate_spec(svc.labels),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[issuer]),
        )
        self.issuer_name: pulumi.Output[str] = resource_name(issuer)
        self.certificate_name: pulumi.Output[str] = resource_name(certificate)
        self.secret_name: pulumi.Output[str] = pulumi.Output.from_input(tls.secret_name)
        self.register_outputs({"issuer_name": self.issuer_name,
                               "certificate_name": self.certificate_name,
                               "secret_name": self.secret_name})
