"""Certificates through the real pack process: cert-manager Certificates and Issuers, Vault
PKI roles and sign policies; one known-good fixture, one mutation per case."""

from __future__ import annotations

import copy
from typing import Any

from tests.policies.builders import labels, pack_module, resource

CERTS = pack_module("certificates")
RENEW_240H = CERTS.WHY_FIX_RENEW_BEFORE.format(minimum="240h")

CERT = "kubernetes:cert-manager.io/v1:Certificate"
ISSUER = "kubernetes:cert-manager.io/v1:Issuer"
PKI_ROLE = "vault:pkiSecret/secretBackendRole:SecretBackendRole"
POLICIES = ("certificate-lifetime", "certificate-private-key", "certificate-names",
            "pki-least-privilege")

GOOD_SPEC = {
    "secretName": "api-tls",
    "issuerRef": {"name": "api-vault", "kind": "Issuer", "group": "cert-manager.io"},
    "dnsNames": ["api.api-prod.svc", "api.api-prod.svc.cluster.local"],
    "duration": "720h", "renewBefore": "240h",
    "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
    "usages": ["digital signature", "server auth"],
}
GOOD_ROLE = {
    "backend": "prod-pki", "name": "api", "allowedDomains": GOOD_SPEC["dnsNames"],
    "allowBareDomains": True, "allowSubdomains": False, "allowGlobDomains": False,
    "allowWildcardCertificates": False, "allowAnyName": False, "allowLocalhost": False,
    "keyType": "ec", "keyBits": 256, "ttl": "2592000", "maxTtl": "7776000",
}
GOOD_ISSUER = {"vault": {"server": "https://vault", "path": "prod-pki/sign/api", "auth": {
    "kubernetes": {"mountPath": "/v1/auth/kubernetes-prod", "role": "api-pki",
                   "serviceAccountRef": {"name": "api"}}}}}


def mine(violations) -> list[tuple[str, str, str, str]]:
    return [v for v in violations if v[0] in POLICIES]


def certificate(name: str, stack: str = "prod", **changes: Any):
    spec = copy.deepcopy(GOOD_SPEC)
    for key, value in changes.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return resource(CERT, name, {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                                 "metadata": {"name": name, "namespace": "api-prod",
                                              "labels": labels()},
                                 "spec": spec}, stack=stack)


def pki_role(resource_name: str, **changes: Any):
    props = {**GOOD_ROLE, **changes}
    return resource(PKI_ROLE, resource_name, {k: v for k, v in props.items() if v is not None})


def issuer(name: str, spec: dict, kind: str = "Issuer"):
    return resource(f"kubernetes:cert-manager.io/v1:{kind}", name,
                    {"apiVersion": "cert-manager.io/v1", "kind": kind,
                     "metadata": {"name": name, "namespace": "api-prod"}, "spec": spec})


def sign_policy(name: str, policy_name: str, text: str):
    return resource("vault:index/policy:Policy", name, {"name": policy_name, "policy": text})


def test_compliant_certificate_objects_pass(prod):
    good = [certificate("good"), pki_role("good-role"), issuer("good-issuer", GOOD_ISSUER),
            sign_policy("good-policy", "prod-api-pki",
                        'path "prod-pki/sign/api" {\n  capabilities = ["create", "update"]\n}\n')]
    assert prod.violations(good) == []


def test_lifetime(prod):
    resources = [
        certificate("long", duration="4320h", renewBefore="1440h"),
        certificate("default-duration", duration=None, renewBefore="720h"),
        certificate("late-renewal", renewBefore="24h"),
        certificate("no-renewal", renewBefore=None),
        certificate("percentage-ok", renewBefore=None, renewBeforePercentage=34),
        certificate("percentage-late", renewBefore=None, renewBeforePercentage=10),
        pki_role("long-role", maxTtl="31536000"),
    ]
    assert mine(prod.violations(resources)) == [
        ("certificate-lifetime", "long", "mandatory",
         'Certificate "long": spec.duration is 4320h; at most 2160h allowed here. '
         f"{CERTS.WHY_FIX_DURATION.format(limit='2160h')}"),
        ("certificate-lifetime", "late-renewal", "mandatory",
         'Certificate "late-renewal": renewBefore is 24h; renewal must start at least 1/3 of the '
         f"duration (240h) before expiry. {RENEW_240H}"),
        ("certificate-lifetime", "no-renewal", "mandatory",
         'Certificate "no-renewal": neither renewBefore nor renewBeforePercentage is set; '
         f"renewal must start at least 1/3 of the duration (240h) before expiry. {RENEW_240H}"),
        ("certificate-lifetime", "percentage-late", "mandatory",
         'Certificate "percentage-late": renewBeforePercentage is 10; renewal must start at '
         f"least 1/3 of the duration (240h) before expiry. {RENEW_240H}"),
        ("certificate-lifetime", "long-role", "mandatory",
         'SecretBackendRole "long-role": max_ttl is 8760h; at most 2160h allowed. '
         f"{CERTS.WHY_FIX_PKI_MAX_TTL.format(limit='2160h')}"),
    ]


def test_lifetime_cap_is_per_environment(dev):
    """dev allows a year and reports advisory: the same long certificate passes there."""
    resources = [certificate("long", stack="dev", duration="4320h", renewBefore="1440h"),
                 certificate("too-long", stack="dev", duration="9000h", renewBefore="3000h")]
    assert mine(dev.violations(resources)) == [
        ("certificate-lifetime", "too-long", "advisory",
         'Certificate "too-long": spec.duration is 9000h; at most 8760h allowed here. '
         f"{CERTS.WHY_FIX_DURATION.format(limit='8760h')}")]


def test_private_key(prod):
    resources = [
        certificate("rsa-1024", privateKey={"algorithm": "RSA", "size": 1024,
                                            "rotationPolicy": "Always"}),
        certificate("rsa-default", privateKey={"rotationPolicy": "Always"}),  # RSA 2048: ok
        certificate("ecdsa-384", privateKey={"algorithm": "ECDSA", "size": 384,
                                             "rotationPolicy": "Always"}),
        certificate("kept-key", privateKey={"algorithm": "ECDSA", "size": 256,
                                            "rotationPolicy": "Never"}),
        certificate("no-policy", privateKey={"algorithm": "ECDSA", "size": 256}),
        pki_role("any-key", keyType="any", keyBits=0),
        pki_role("weak-role", keyType="rsa", keyBits=1024),
    ]
    assert mine(prod.violations(resources)) == [
        ("certificate-private-key", "rsa-1024", "mandatory",
         'Certificate "rsa-1024": a RSA key of 1024 bits; at least 2048 required. '
         f"{CERTS.WHY_FIX_WEAK_KEY.format(field='tls.key_size')}"),
        ("certificate-private-key", "kept-key", "mandatory",
         f'Certificate "kept-key": privateKey.rotationPolicy is Never. {CERTS.WHY_FIX_KEY_KEPT}'),
        ("certificate-private-key", "no-policy", "mandatory",
         'Certificate "no-policy": privateKey.rotationPolicy is unset. '
         f"{CERTS.WHY_FIX_KEY_KEPT}"),
        ("certificate-private-key", "any-key", "mandatory",
         f'SecretBackendRole "any-key": key_type is any. {CERTS.WHY_FIX_ANY_KEY_TYPE}'),
        ("certificate-private-key", "weak-role", "mandatory",
         'SecretBackendRole "weak-role": key_bits 1024 for rsa; at least 2048 required. '
         f"{CERTS.WHY_FIX_WEAK_KEY.format(field='key_bits')}"),
    ]


WILDCARD_WHY = CERTS.WHY_FIX_WILDCARD_NAME


def name_flag_why(flag: str) -> str:
    return CERTS.WHY_FIX_NAME_FLAG.format(why=CERTS.NAME_FLAGS_WHY[flag])


def test_names(prod, dev):
    resources = [
        certificate("wildcard", dnsNames=["api.api-prod.svc", "*.shop.example.com"]),
        certificate("wildcard-cn", commonName="*.api-prod.svc"),
        pki_role("any-name", allowAnyName=True),
        pki_role("subdomains", allowSubdomains=True),
        pki_role("vault-defaults", allowLocalhost=None, allowWildcardCertificates=None),
        pki_role("globs", allowGlobDomains=True, allowedDomains=["*.svc"]),
    ]
    assert mine(prod.violations(resources)) == [
        ("certificate-names", "wildcard", "mandatory",
         f'Certificate "wildcard": `*.shop.example.com` is a wildcard name. {WILDCARD_WHY}'),
        ("certificate-names", "wildcard-cn", "mandatory",
         f'Certificate "wildcard-cn": `*.api-prod.svc` is a wildcard name. {WILDCARD_WHY}'),
        ("certificate-names", "any-name", "mandatory",
         f'SecretBackendRole "any-name": allowAnyName is on. {name_flag_why("allowAnyName")}'),
        ("certificate-names", "subdomains", "mandatory",
         'SecretBackendRole "subdomains": allowSubdomains is on. '
         f'{name_flag_why("allowSubdomains")}'),
        ("certificate-names", "vault-defaults", "mandatory",
         'SecretBackendRole "vault-defaults": allowLocalhost is on (the default). '
         f'{name_flag_why("allowLocalhost")}'),
        ("certificate-names", "vault-defaults", "mandatory",
         'SecretBackendRole "vault-defaults": allowWildcardCertificates is on (the default). '
         f"{CERTS.WHY_FIX_WILDCARDS_FORBIDDEN}"),
        ("certificate-names", "globs", "mandatory",
         f'SecretBackendRole "globs": allowGlobDomains is on. {CERTS.WHY_FIX_WILDCARDS_FORBIDDEN}'),
    ]
    # dev allows wildcards (policies/config/dev.json): the same objects pass there
    dev_resources = [certificate("wildcard", stack="dev",
                                 dnsNames=["api.api-dev.svc", "*.dev.shop.example.com"])]
    assert mine(dev.violations(dev_resources)) == []


def test_pki_least_privilege(prod):
    text = ('path "prod-pki/sign/api" {\n  capabilities = ["create", "update", "sudo"]\n}\n'
            'path "prod-pki/issue/api" {\n  capabilities = ["update"]\n}\n'
            'path "prod-pki/sign/web" {\n  capabilities = ["update"]\n}\n'
            'path "prod-kv/data/web" {\n  capabilities = ["read"]\n}\n')
    resources = [
        sign_policy("greedy", "prod-api-pki", text),
        issuer("issue-path", {"vault": {**GOOD_ISSUER["vault"], "path": "prod-pki/issue/api"}}),
        issuer("token-auth", {"vault": {**GOOD_ISSUER["vault"], "auth": {
            "tokenSecretRef": {"name": "vault-token", "key": "token"}}}}),
        issuer("shared", GOOD_ISSUER, kind="ClusterIssuer"),
        issuer("self-signed", {"selfSigned": {}}),  # not a Vault issuer: not this policy's
    ]
    not_own = ("is not the service's own sign endpoint. "
               f"{CERTS.WHY_FIX_NOT_OWN_SIGN.format(env='prod', service='api')}")
    assert mine(prod.violations(resources)) == [
        ("pki-least-privilege", "greedy", "mandatory",
         f'Policy "greedy": path "prod-pki/sign/api" grants sudo. {CERTS.WHY_FIX_SIGN_CAPABILITIES}'),
        ("pki-least-privilege", "greedy", "mandatory",
         f'Policy "greedy": path "prod-pki/issue/api" {not_own}'),
        ("pki-least-privilege", "greedy", "mandatory",
         f'Policy "greedy": path "prod-pki/sign/web" {not_own}'),
        ("pki-least-privilege", "greedy", "mandatory",
         f'Policy "greedy": path "prod-kv/data/web" {not_own}'),
        ("pki-least-privilege", "issue-path", "mandatory",
         'Issuer "issue-path": vault.path `prod-pki/issue/api` is not a `<mount>/sign/<role>` '
         f"endpoint. {CERTS.WHY_FIX_ISSUE_PATH}"),
        ("pki-least-privilege", "token-auth", "mandatory",
         'Issuer "token-auth": Vault auth is tokenSecretRef, not Kubernetes auth with a '
         f"serviceAccountRef. {CERTS.WHY_FIX_ISSUER_AUTH}"),
        ("pki-least-privilege", "shared", "mandatory",
         f'ClusterIssuer "shared" signs with Vault for every namespace. {CERTS.WHY_FIX_CLUSTER_ISSUER}'),
    ]


def test_vault_least_privilege_leaves_sign_policies_to_pki_least_privilege(prod):
    """A `<env>-<svc>-pki` policy is not a KV read policy: vault-least-privilege does not
    report its name or its update capability, pki-least-privilege checks it instead."""
    good = sign_policy("sign", "prod-api-pki",
                       'path "prod-pki/sign/api" {\n  capabilities = ["create", "update"]\n}\n')
    other_env = sign_policy("staging-sign", "staging-api-pki",
                            'path "staging-pki/sign/api" {\n  capabilities = ["update"]\n}\n')
    violations = prod.violations([good, other_env])
    assert [v[:2] for v in violations if v[0] in ("vault-least-privilege", *POLICIES)] == [
        ("vault-least-privilege", "staging-sign")]


def test_unknown_values_are_left_for_the_next_run(prod):
    """Preview: values not known yet are not reported (the pack runs again during `up`)."""
    from configplane.offline import UNKNOWN

    resources = [
        certificate("unknown-spec-parts", duration=UNKNOWN, dnsNames=UNKNOWN,
                    privateKey=UNKNOWN),
        resource(CERT, "unknown-spec", {"apiVersion": "cert-manager.io/v1",
                                        "kind": "Certificate", "spec": UNKNOWN}),
        issuer("unknown-auth", {"vault": {"server": "https://vault", "path": UNKNOWN,
                                          "auth": UNKNOWN}}),
        pki_role("unknown-role", maxTtl=UNKNOWN, keyType=UNKNOWN, allowedDomains=UNKNOWN),
        sign_policy("unknown-policy", "prod-api-pki", UNKNOWN),
    ]
    assert mine(prod.violations(resources)) == []


def test_pki_names_owned(prod):
    """A PKI role is judged by what it may sign: cluster names of its own service's namespace
    (its Certificate's) only, and no name another service's role may sign too."""
    def named(violations):
        return [(v[1], v[3]) for v in violations if v[0] == "pki-names-owned"]

    web_cert = resource(CERT, "web-cert", {
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "web-cert", "namespace": "web-prod", "labels": labels()},
        "spec": {**GOOD_SPEC, "secretName": "web-tls", "issuerRef": {
            "name": "web-vault", "kind": "Issuer", "group": "cert-manager.io"},
            "dnsNames": ["web.web-prod.svc"]}})
    own = [certificate("api-cert"), web_cert]
    assert named(prod.violations([*own, pki_role("api-role"),
                                  pki_role("web-role", name="web",
                                           allowedDomains=["web.web-prod.svc"])])) == []
    foreign = pki_role("api-role", allowedDomains=["api.api-prod.svc", "web.web-prod.svc",
                                                   "*.svc"])
    assert named(prod.violations([*own, foreign])) == [
        ("api-role", 'SecretBackendRole "api-role": may sign `web.web-prod.svc`, a name of '
         "namespace web-prod, not of service api's (api-prod). "
         f"{CERTS.WHY_FIX_FOREIGN_CLUSTER_NAME}"),
        ("api-role", 'SecretBackendRole "api-role": may sign `*.svc`, a name of namespace '
         f"(any), not of service api's (api-prod). {CERTS.WHY_FIX_FOREIGN_CLUSTER_NAME}"),
    ]
    shared = [pki_role("api-role", allowedDomains=["api.api-prod.svc", "shop.example.com"]),
              pki_role("web-role", name="web", allowedDomains=["shop.example.com"])]
    assert named(prod.violations([*own, *shared])) == [
        ("api-role", 'SecretBackendRole "api-role": may sign `shop.example.com`, as web may. '
         f"{CERTS.WHY_FIX_SHARED_NAME}"),
        ("web-role", 'SecretBackendRole "web-role": may sign `shop.example.com`, as api may. '
         f"{CERTS.WHY_FIX_SHARED_NAME}"),
    ]
    # a role whose service has no Certificate in the stack: its cluster names are no one's
    assert named(prod.violations([pki_role("api-role")])) == [
        ("api-role", f'SecretBackendRole "api-role": may sign `{name}`, a name of namespace '
         f"api-prod, not of service api's (none in this stack). "
         f"{CERTS.WHY_FIX_FOREIGN_CLUSTER_NAME}") for name in GOOD_SPEC["dnsNames"]]
