"""secret-stores-per-service through the real pack process (policies/secret_stores.py): each
mutation of the known-good prod plan that lets a store or an ExternalSecret reach another
service's secrets fails with the exact message; the no-identity-spans-services findings the
same mutation causes are asserted with it (tests/policies/test_identities.py has the rest)."""

from __future__ import annotations

import dataclasses

from tests.policies.builders import STORES, add, isolation_violations, mutate, pack_module

SECRET_STORES = pack_module("secret_stores")


def test_a_cluster_secret_store_fails(prod, good):
    def cluster(props: dict) -> None:
        props["kind"] = "ClusterSecretStore"
        props["metadata"] = {"name": "vault-prod"}
        props["spec"]["conditions"] = [{"namespaces": ["api-prod", "web-prod"]}]

    plan = add(good, "api-secret-stores-vault", "shared-vault", cluster)
    plan = [dataclasses.replace(r, urn=r.urn.replace(
        "SecretStore::shared-vault", "ClusterSecretStore::shared-vault"),
        type="kubernetes:external-secrets.io/v1:ClusterSecretStore")
        if r.name == "shared-vault" else r for r in plan]
    assert isolation_violations(prod, plan) == [(
        STORES, "shared-vault", "mandatory",
        f'ClusterSecretStore "shared-vault" is cluster-wide. {SECRET_STORES.WHY_FIX_CLUSTER_STORE}')]


def test_a_store_signing_in_with_another_services_role_fails(prod, good):
    def api_role(props: dict) -> None:
        props["spec"]["provider"]["vault"]["auth"]["kubernetes"]["role"] = "api"

    plan = mutate(good, "web-secret-stores-vault", api_role)
    assert isolation_violations(prod, plan) == [(
        STORES, "web-secret-stores-vault", "mandatory",
        'SecretStore "web-secret-stores-vault" signs in with Vault role api, which is not bound '
        f"to exactly account web in web-prod. {SECRET_STORES.WHY_FIX_SHARED_ROLE}")]


def test_a_store_signing_in_as_another_account_fails(prod, good):
    def other_account(props: dict) -> None:
        auth = props["spec"]["provider"]["vault"]["auth"]["kubernetes"]
        auth["serviceAccountRef"] = {"name": "api", "namespace": "api-prod"}

    plan = mutate(good, "web-secret-stores-vault", other_account)
    assert isolation_violations(prod, plan) == [(
        STORES, "web-secret-stores-vault", "mandatory",
        'SecretStore "web-secret-stores-vault" spec.provider.vault.auth.kubernetes.'
        "serviceAccountRef names an account in another namespace. "
        f"{SECRET_STORES.WHY_FIX_FOREIGN_NAMESPACE}")]


def test_a_store_with_the_operators_own_aws_identity_fails(prod, good):
    def controller_credentials(props: dict) -> None:
        props["spec"]["provider"]["aws"]["auth"] = {}

    plan = mutate(good, "api-secret-stores-aws", controller_credentials)
    assert isolation_violations(prod, plan) == [(
        STORES, "api-secret-stores-aws", "mandatory",
        'SecretStore "api-secret-stores-aws" does not authenticate to AWS as a service account '
        f"(spec.provider.aws.auth.jwt). {SECRET_STORES.WHY_FIX_NO_IRSA}")]


def test_external_secrets_use_their_own_services_namespaced_stores(prod, good):
    def cluster_kind(props: dict) -> None:
        props["spec"]["secretStoreRef"] = {"kind": "ClusterSecretStore", "name": "vault-prod"}

    def neighbours_store(props: dict) -> None:  # a service sharing web's namespace
        props["metadata"]["namespace"] = "web-prod"
        props["spec"]["secretStoreRef"] = {"kind": "SecretStore", "name": "web-vault"}

    plan = mutate(good, "api-external-secret-external-secret", cluster_kind)
    plan = mutate(plan, "worker-external-secret-external-secret", neighbours_store)
    assert sorted(isolation_violations(prod, plan)) == [
        (STORES, "api-external-secret-external-secret", "mandatory",
         'ExternalSecret "api-external-secret-external-secret" spec.secretStoreRef uses a '
         f"ClusterSecretStore. {SECRET_STORES.WHY_FIX_CLUSTER_REF}"),
        (STORES, "worker-external-secret-external-secret", "mandatory",
         'ExternalSecret "worker-external-secret-external-secret" spec.secretStoreRef uses '
         f"store web-vault of service web, not its own (worker). {SECRET_STORES.WHY_FIX_OTHER_STORE}"),
    ]
