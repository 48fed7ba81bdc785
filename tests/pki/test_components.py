"""The real __main__.py under the Pulumi SDK's mocks: what each stack declares for
certificates and dynamic database logins, exactly."""

from __future__ import annotations

import json

import jsonschema
import pulumi
import pytest
import yaml

from configplane.redaction import is_secret_wrapper
from tests.conftest import REPO
from tests.pki.conftest import ROOT_CANARY, SECURE, by_name, of_type, plan_of

LABELS = lambda env: {  # noqa: E731
    "app.kubernetes.io/name": "api", "app.kubernetes.io/part-of": "shop",
    "app.kubernetes.io/managed-by": "configplane", "configplane.io/environment": env}


def test_pki_environment(planned):
    env, plan = planned
    r = by_name(plan)
    mount = r[f"pki-{env}-mount"].inputs
    assert (mount["path"], mount["type"]) == (f"{env}-pki", "pki")
    assert mount["maxLeaseTtlSeconds"] == 26280 * 3600
    csr = r[f"pki-{env}-csr"].inputs
    assert (csr["type"], csr["keyType"], csr["keyBits"]) == ("internal", "ec", 384)
    assert csr["commonName"] == f"shop {env} intermediate CA"
    base = f"https://vault.{env}.shop.internal:8200/v1/{env}-pki"
    urls = r[f"pki-{env}-urls"].inputs
    assert (urls["crlDistributionPoints"], urls["ocspServers"], urls["issuingCertificates"]) == (
        [f"{base}/crl"], [f"{base}/ocsp"], [f"{base}/ca"])
    root_parts = {f"pki-{env}-root-mount", f"pki-{env}-root-cert", f"pki-{env}-root-sign",
                  f"pki-{env}-root-urls"}
    signed_parts = {f"pki-{env}-set-signed", f"pki-{env}-issuer", f"pki-{env}-default-issuer"}
    if env == "dev":  # parent: root: Vault's own root signs the intermediate, pathlen 0
        assert root_parts | signed_parts <= set(r)
        assert r[f"pki-{env}-root-mount"].inputs["path"] == "dev-pki-root"
        assert r[f"pki-{env}-root-sign"].inputs["maxPathLength"] == 0
        assert r[f"pki-{env}-root-sign"].inputs["backend"] == "dev-pki-root"
        assert r[f"pki-{env}-issuer"].inputs["leafNotAfterBehavior"] == "err"
        root_base = "https://vault.dev.shop.internal:8200/v1/dev-pki-root"
        assert r["pki-dev-root-urls"].inputs["crlDistributionPoints"] == [f"{root_base}/crl"]
    else:  # parent: external, no signed certificate yet: the CSR waits for the offline root
        assert not (root_parts | signed_parts) & set(r)
    assert plan.outputs["pki"]["mount"] == f"{env}-pki"


def test_external_parent_imports_the_signed_certificate(project):
    from tests.model.test_trust import make
    from tests.model.test_trust import pem as to_pem

    root, root_key = make("offline root")
    intermediate, _ = make("prod intermediate", root, root_key, path_length=0)
    path = project / "Pulumi.prod.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["configplane:platform"]["pki"]["intermediate_certificate"] = to_pem(
        root, intermediate)  # pasted root-first
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    r = by_name(plan_of(project, "prod"))
    signed = r["pki-prod-set-signed"]
    # put in order by the CSR's key (known after the CSR exists: tests/vault/test_pki.py)
    assert signed.inputs["backend"] == "prod-pki"
    assert isinstance(signed.inputs["certificate"], pulumi.output.Unknown)
    assert r["pki-prod-csr"].urn in signed.property_dependencies["certificate"]
    assert r["pki-prod-issuer"].inputs["issuerName"] == "prod-intermediate"
    assert "pki-prod-root-mount" not in r


def test_service_certificate_objects(planned):
    env, plan = planned
    r = by_name(plan)
    own = [f"api.api-{env}.svc", f"api.api-{env}.svc.cluster.local"]
    role = r["api-tls-pki-role"].inputs
    assert {k: role[k] for k in ("backend", "name", "allowedDomains", "allowBareDomains",
                                 "allowSubdomains", "allowGlobDomains", "allowAnyName",
                                 "allowWildcardCertificates", "allowLocalhost", "allowIpSans",
                                 "keyType", "keyBits", "serverFlag", "clientFlag", "keyUsages",
                                 "ttl", "maxTtl")} == {
        "backend": f"{env}-pki", "name": "api", "allowedDomains": own,
        "allowBareDomains": True, "allowSubdomains": False, "allowGlobDomains": False,
        "allowAnyName": False, "allowWildcardCertificates": False, "allowLocalhost": False,
        "allowIpSans": False, "keyType": "ec", "keyBits": 256, "serverFlag": True,
        "clientFlag": False, "keyUsages": ["DigitalSignature"], "ttl": str(720 * 3600),
        "maxTtl": str(2160 * 3600)}
    policy = r["api-tls-policy"].inputs
    assert policy == {"name": f"{env}-api-pki", "policy":
                      f'path "{env}-pki/sign/api" {{\n  capabilities = ["create", "update"]\n}}\n'}
    auth = r["api-tls-auth-role"].inputs
    assert {k: auth[k] for k in ("backend", "roleName", "boundServiceAccountNames",
                                 "boundServiceAccountNamespaces", "audience", "tokenPolicies",
                                 "tokenTtl")} == {
        "backend": f"kubernetes-{env}", "roleName": "api-pki",
        "boundServiceAccountNames": ["api"], "boundServiceAccountNamespaces": [f"api-{env}"],
        "audience": f"vault://api-{env}/api-vault", "tokenPolicies": [f"{env}-api-pki"],
        "tokenTtl": 600}
    issuer = r["api-tls-issuer"].inputs
    assert issuer == {
        "apiVersion": "cert-manager.io/v1", "kind": "Issuer",
        "metadata": {"name": "api-vault", "namespace": f"api-{env}", "labels": LABELS(env)},
        "spec": {"vault": {
            "server": f"https://vault.{env}.shop.internal:8200", "path": f"{env}-pki/sign/api",
            "auth": {"kubernetes": {"mountPath": f"/v1/auth/kubernetes-{env}", "role": "api-pki",
                                    "serviceAccountRef": {"name": "api"}}}}}}
    certificate = r["api-tls-certificate"].inputs
    assert certificate["metadata"] == {"name": "api-tls", "namespace": f"api-{env}",
                                       "labels": LABELS(env)}
    assert certificate["spec"] == {
        "secretName": "api-tls",
        "secretTemplate": {"labels": LABELS(env),
                           "annotations": {"reloader.stakater.com/match": "true"}},
        "issuerRef": {"name": "api-vault", "kind": "Issuer", "group": "cert-manager.io"},
        "dnsNames": own, "duration": "720h", "renewBefore": "240h",
        "privateKey": {"algorithm": "ECDSA", "size": 256, "encoding": "PKCS8",
                       "rotationPolicy": "Always"},
        "usages": ["digital signature", "server auth"]}
    # cert-manager may request a token for the api's account, and for no other
    token = r["api-tls-token-requester"].inputs
    assert token["rules"] == [{"apiGroups": [""], "resources": ["serviceaccounts/token"],
                               "resourceNames": ["api"], "verbs": ["create"]}]
    binding = r["api-tls-token-requester-binding"].inputs
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "cert-manager",
                                    "namespace": "cert-manager"}]
    # only the api declares tls
    assert [x.name for x in of_type(plan, "kubernetes:cert-manager.io/v1:Certificate")] == [
        "api-tls-certificate"]
    out = plan.outputs["services"]
    assert out["api"]["tls"] == {"secret_name": "api-tls", "issuer": "api-vault"}
    assert out["web"]["tls"] is None and out["worker"]["tls"] is None


def test_database_engine_and_root_rotation(planned):
    env, plan = planned
    r = by_name(plan)
    mount = r[f"database-{env}-mount"].inputs
    max_ttl = {"dev": 24, "staging": 24, "prod": 12}[env] * 3600
    assert (mount["path"], mount["type"], mount["defaultLeaseTtlSeconds"],
            mount["maxLeaseTtlSeconds"]) == (f"{env}-database", "database", 3600, max_ttl)
    connection = r[f"database-{env}-shop"]
    assert {k: connection.inputs[k] for k in ("backend", "name", "pluginName", "allowedRoles",
                                              "verifyConnection")} == {
        "backend": f"{env}-database", "name": "shop", "pluginName": "postgresql-database-plugin",
        "allowedRoles": ["*"], "verifyConnection": True}
    postgresql = connection.inputs["postgresql"]
    assert is_secret_wrapper(postgresql)  # it carries the initial root password
    assert postgresql["value"]["passwordWo"] == ROOT_CANARY
    assert postgresql["value"]["username"] == "vault_admin"
    host = {"dev": "shop-dev.cluster-c1abc2def3gh", "staging": "shop-staging.cluster-c4ijk5lmn6op",
            "prod": "shop-prod.cluster-c7qrs8tuv9wx"}[env]
    assert postgresql["value"]["connectionUrl"] == (
        "postgresql://{{username}}:{{password}}@"
        f"{host}.eu-west-1.rds.amazonaws.com:5432/shop?sslmode=verify-full"
        "&sslrootcert=/vault/userconfig/database-ca/shop.pem")
    # the same CA for Vault's plugins that take it inline (trust.py validates it)
    assert "-----BEGIN CERTIFICATE-----" in postgresql["value"]["tlsCa"]
    rotate = r[f"database-{env}-shop-rotate-root"]
    assert rotate.inputs["path"] == f"{env}-database/rotate-root/shop"
    assert connection.urn in rotate.dependencies


def test_service_dynamic_credentials(planned):
    env, plan = planned
    r = by_name(plan)
    role = r["api-dynamic-reporting-db-password-db-role"].inputs
    assert {k: role[k] for k in ("backend", "name", "dbName", "defaultTtl", "maxTtl")} == {
        "backend": f"{env}-database", "name": "api-reporting-db-password", "dbName": "shop",
        "defaultTtl": 3600, "maxTtl": {"dev": 24, "staging": 24, "prod": 12}[env] * 3600}
    assert role["creationStatements"] == [
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL "
        "'{{expiration}}' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
        "NOINHERIT;",
        'GRANT CONNECT ON DATABASE "shop" TO "{{name}}";',
        'GRANT USAGE ON SCHEMA "app" TO "{{name}}";',
        'GRANT SELECT ON TABLE "app"."orders", "app"."order_items" TO "{{name}}";']
    assert role["revocationStatements"] == [
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';",
        'REVOKE ALL PRIVILEGES ON TABLE "app"."orders", "app"."order_items" FROM "{{name}}";',
        'REVOKE USAGE ON SCHEMA "app" FROM "{{name}}";',
        'REVOKE CONNECT ON DATABASE "shop" FROM "{{name}}";',
        'DROP ROLE IF EXISTS "{{name}}";']
    assert r["api-dynamic-policy"].inputs == {
        "name": f"{env}-api-database",
        "policy": f'path "{env}-database/creds/api-reporting-db-password" {{\n'
                  '  capabilities = ["read"]\n}\n'}
    auth = r["api-dynamic-auth-role"].inputs
    assert (auth["roleName"], auth["boundServiceAccountNames"],
            auth["boundServiceAccountNamespaces"], auth["audience"], auth["tokenPolicies"]) == (
        "api-database", ["api"], [f"api-{env}"], "vault", [f"{env}-api-database"])
    generator = r["api-dynamic-reporting-db-password-generator"].inputs
    assert generator["metadata"]["namespace"] == f"api-{env}"
    assert generator["spec"] == {
        "path": f"{env}-database/creds/api-reporting-db-password", "method": "GET",
        "resultType": "Data",
        "provider": {"server": f"https://vault.{env}.shop.internal:8200", "auth": {"kubernetes": {
            "mountPath": f"kubernetes-{env}", "role": "api-database",
            "serviceAccountRef": {"name": "api", "audiences": ["vault"]}}}}}
    external = r["api-dynamic-reporting-db-password-external-secret"].inputs
    assert external["spec"] == {
        "refreshInterval": "20m",
        "target": {"name": "api-dynamic-reporting-db-password", "creationPolicy": "Owner",
                   "template": {"metadata": {"labels": LABELS(env)}, "data": {
                       "REPORTING_DB_USERNAME": "{{ .username }}",
                       "REPORTING_DB_PASSWORD": "{{ .password }}"}}},
        "dataFrom": [{"sourceRef": {"generatorRef": {
            "apiVersion": "generators.external-secrets.io/v1alpha1",
            "kind": "VaultDynamicSecret", "name": "api-dynamic-reporting-db-password"}}}]}
    # the static ExternalSecret no longer lists the dynamic key
    static = r["api-external-secret-external-secret"].inputs["spec"]["data"]
    assert "REPORTING_DB_PASSWORD" not in {d["secretKey"] for d in static}
    assert plan.outputs["services"]["api"]["dynamic_secret_names"] == [
        "api-dynamic-reporting-db-password"]


def test_outputs_contract_and_no_secret_values(planned):
    _, plan = planned
    document = plan.as_dict()
    schema = json.loads((REPO / "schemas" / "outputs.schema.json").read_text())
    jsonschema.validate(document["outputs"], schema)
    text = json.dumps(document)
    for value in SECURE.values():
        assert value not in text


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_policies_and_roles_accept_the_plan(stack):
    """The plan, through the real pack with the environment's config: nothing to report."""
    from configplane.offline import run_plan

    plan = run_plan(REPO, stack, one_stack=True, secure_values=SECURE, policy=True)
    assert plan.violations == []
