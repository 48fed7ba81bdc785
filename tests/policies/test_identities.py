"""Per-service isolation through the real pack process: the known-good prod plan passes; each
mutation that lets one service (or the operator) read another's secrets fails with the exact
message."""

from __future__ import annotations

import copy
import dataclasses
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configplane import ownership
from configplane.offline import UNKNOWN, AnalyzedResource
from tests.documents import paths
from tests.policies.builders import (
    SPANS,
    STORES,
    add,
    isolation_violations,
    mutate,
    pack_module,
)
from tests.policies.conftest import found
from tests.test_ownership import _reference_pattern_owners

IDENTITIES = pack_module("identities")
Stack = pack_module("isolation_lib").Stack
ARN_PREFIX = "arn:aws:secretsmanager:eu-west-1:333333333333:secret:"
SECRET_STORES = pack_module("secret_stores")
SPANS_WHY = IDENTITIES.WHY_FIX_SPANS




def test_the_sample_plan_passes(prod, good):
    assert isolation_violations(prod, good) == []


def union_role(props: dict) -> None:
    props.update(roleName="external-secrets", boundServiceAccountNames=["external-secrets"],
                 boundServiceAccountNamespaces=["external-secrets"],
                 tokenPolicies=["prod-api-read", "prod-web-read", "prod-worker-read"])


def test_the_operators_union_role_fails(prod, good):
    plan = add(good, "api-vault-role", "vault-prod-external-secrets", union_role)
    assert isolation_violations(prod, plan) == [(
        SPANS, "vault-prod-external-secrets", "mandatory",
        'AuthBackendRole "vault-prod-external-secrets" can read the secrets of api, web, '
        f"worker. {SPANS_WHY}")]


def test_an_irsa_role_trusting_every_account_fails(prod, good):
    def any_subject(props: dict) -> None:
        trust = json.loads(props["assumeRolePolicy"])
        condition = trust["Statement"][0]["Condition"]
        condition["StringLike"] = {k: "system:serviceaccount:*:*"
                                   for k in condition["StringEquals"] if k.endswith(":sub")}
        condition["StringEquals"] = {k: v for k, v in condition["StringEquals"].items()
                                     if k.endswith(":aud")}
        props["assumeRolePolicy"] = json.dumps(trust)

    plan = mutate(good, "api-identity-role", any_subject)
    assert sorted(isolation_violations(prod, plan)) == [
        (SPANS, "api-identity-role", "mandatory",
         'Role "api-identity-role" may be used by service accounts of any namespace and can read '
         f"the secrets of api. {SHARED_WHY}"),
        (STORES, "api-secret-stores-aws", "mandatory",
         'SecretStore "api-secret-stores-aws" reads through Role "api-identity-role", whose '
         "trust policy does not admit exactly system:serviceaccount:api-prod:api. "
         f"{SECRET_STORES.WHY_FIX_TRUST}"),
    ]


def widen(resource: str):
    def change(props: dict) -> None:
        document = json.loads(props["policy"])
        document["Statement"][0]["Resource"] = [resource]
        props["policy"] = json.dumps(document)
    return change


@pytest.mark.parametrize("resource, reads", [
    ("arn:aws:secretsmanager:eu-west-1:333333333333:secret:configplane/prod/*",
     "every service's secrets"),
    ("arn:aws:secretsmanager:eu-west-1:333333333333:secret:*", "every service's secrets"),
    ("*", "every service's secrets"),
    ("arn:aws:secretsmanager:eu-west-1:333333333333:secret:configplane/prod/a*",
     "every service's secrets"),
    # judged by what the pattern matches, not by the `configplane/<env>/` prefix: these reach
    # worker's secrets in every environment (issue 18)
    ("arn:aws:secretsmanager:eu-west-1:333333333333:secret:configplane/*/worker/*",
     "every service's secrets"),
    ("arn:aws:secretsmanager:*:*:secret:config*/worker/*", "every service's secrets"),
    ("arn:aws:secretsmanager:eu-west-1:333333333333:secret:configplane/???d/worker/X",
     "every service's secrets"),
    ("arn:aws:secretsmanager:eu-west-1:333333333333:*", "every service's secrets"),
])
def test_an_iam_role_reaching_past_its_service_fails(prod, good, resource, reads):
    plan = mutate(good, "api-identity-policy", widen(resource))
    assert isolation_violations(prod, plan) == [(
        SPANS, "api-identity-role", "mandatory",
        f'Role "api-identity-role" can read {reads}. {SPANS_WHY}')]


def test_a_pattern_that_matches_only_the_services_own_secrets_passes(prod, good):
    own = "arn:aws:secretsmanager:eu-west-1:333333333333:secret:configplane/prod/api/D*"
    assert isolation_violations(prod, mutate(good, "api-identity-policy", widen(own))) == []


def test_an_iam_role_reading_another_services_secret_fails(prod, good):
    web = "arn:aws:secretsmanager:eu-west-1:333333333333:secret:configplane/prod/web/KEY-Ab12Cd"
    plan = mutate(good, "api-identity-policy", widen(web))
    assert isolation_violations(prod, plan) == [(
        SPANS, "api-identity-role", "mandatory",
        'Role "api-identity-role" belongs to service api (its service account) but can read the '
        f"secrets of web. {IDENTITIES.WHY_FIX_NOT_OWN}")]


def test_a_vault_policy_reaching_another_service_fails(prod, good):
    def read_api(props: dict) -> None:
        props["policy"] += '\npath "prod-kv/data/api/*" {\n  capabilities = ["read"]\n}\n'

    plan = mutate(good, "web-vault-policy", read_api)
    assert isolation_violations(prod, plan) == [(
        SPANS, "web-vault-role", "mandatory",
        'AuthBackendRole "web-vault-role" can read the secrets of api, web. ' + SPANS_WHY)]


def test_a_rotation_role_over_two_services_fails_unless_reviewed(pack_for, good):
    web = "arn:aws:secretsmanager:eu-west-1:333333333333:secret:configplane/prod/web/DB-Ab12Cd"

    def two_services(props: dict) -> None:
        document = json.loads(props["policy"])
        document["Statement"][0]["Resource"].append(web)
        props["policy"] = json.dumps(document)

    plan = mutate(good, "rotation-prod-api-policy", two_services)
    assert isolation_violations(pack_for("prod", "prod"), plan) == [(
        SPANS, "rotation-prod-api-role", "mandatory",
        f'Role "rotation-prod-api-role" can read the secrets of api, web. {SPANS_WHY}')]
    reviewed = {SPANS: {"platformIdentities": [
        {"identity": "rotation-prod-api-role",
         "reason": "Secrets Manager invokes it; no pod can assume it"}]}}
    assert isolation_violations(pack_for("prod", reviewed), plan) == []


def preview(resources: list[AnalyzedResource]) -> list[AnalyzedResource]:
    """As `pulumi preview` shows the plan: ARNs and what is built from them not known yet."""
    def unknown_arn(props: dict) -> None:
        props["arn"] = UNKNOWN

    out = resources
    for r in resources:
        if r.type in ("aws:iam/role:Role", "aws:secretsmanager/secret:Secret", "aws:kms/key:Key"):
            out = mutate(out, r.name, unknown_arn)
        if r.name in ("api-identity-kms-policy", "rotation-prod-api-policy"):
            out = mutate(out, r.name, lambda props: props.update(policy=UNKNOWN))
    return out


def test_preview_checks_what_it_knows(prod, good):
    """The read policies and account annotations are known before apply, so a widened grant or
    the operator's union role fails in `pulumi preview` already."""
    assert isolation_violations(prod, preview(good)) == []
    widened = preview(mutate(good, "api-identity-policy", widen("*")))
    assert isolation_violations(prod, widened) == [(
        SPANS, "api-identity-role", "mandatory",
        f"Role \"api-identity-role\" can read every service's secrets. {SPANS_WHY}")]
    union = preview(add(good, "api-vault-role", "vault-prod-external-secrets", union_role))
    assert [v[1] for v in isolation_violations(prod, union)] == ["vault-prod-external-secrets"]


ISOLATION_TYPES = ("SecretStore", "ExternalSecret", "ServiceAccount", "AuthBackendRole",
                   "vault:index/policy:Policy", "aws:iam/role:Role", "aws:iam/rolePolicy",
                   "aws:secretsmanager/secret:Secret")
JUNK = st.sampled_from([UNKNOWN, None, 1, [], {}, "x", ["*"], {"a": UNKNOWN}, [UNKNOWN]])


def replaced(value, path, junk):
    if not path:
        return junk
    value = copy.deepcopy(value)
    target = value
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = junk
    return value


@settings(max_examples=int(os.environ.get('ISO_FUZZ', 25)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_malformed_isolation_inputs_never_break_the_pack(pack_for, good, data):
    """Whatever shape a property takes (unknown, missing, the wrong type), the isolation
    policies report or skip; they never fail. (Only they run: the other policies are not
    this module's concern.)"""
    pack = pack_for("prod", {"all": "disabled", STORES: "mandatory", SPANS: "mandatory"})
    candidates = [r for r in good if r.outputs and any(t in r.type for t in ISOLATION_TYPES)]
    plan = good
    for _ in range(data.draw(st.integers(1, 4))):
        victim = data.draw(st.sampled_from(candidates))
        victim = next(r for r in plan if r.urn == victim.urn)
        props = dict(victim.outputs)
        path = data.draw(st.sampled_from(list(paths(props))[1:]))
        junk = data.draw(JUNK)
        plan = [dataclasses.replace(r, inputs=replaced(dict(r.outputs), path, junk),
                                    outputs=replaced(dict(r.outputs), path, junk))
                if r.urn == victim.urn else r for r in plan]
    pack.run(plan)  # raises PolicyPackError if a policy fails


def test_the_fuzzing_config_runs_the_isolation_policies_only(pack_for, good):
    pack = pack_for("prod", {"all": "disabled", STORES: "mandatory", SPANS: "mandatory"})
    plan = add(good, "api-vault-role", "vault-prod-external-secrets", union_role)
    plan = mutate(plan, "api-vault-role", lambda p: p.update(tokenTtl=999999))
    assert [(v[0], v[1]) for v in found(pack.run(plan))] == [
        (SPANS, "vault-prod-external-secrets")]  # not vault-least-privilege's TTL finding


SHARED_WHY = IDENTITIES.WHY_FIX_SHARED


def test_a_vault_role_admitting_another_services_account_fails(prod, good):
    def also_web(props: dict) -> None:
        props.update(boundServiceAccountNames=["api", "web"],
                     boundServiceAccountNamespaces=["api-prod", "web-prod"])

    plan = mutate(good, "api-vault-role", also_web)
    assert sorted(isolation_violations(prod, plan)) == [
        (SPANS, "api-vault-role", "mandatory",
         'AuthBackendRole "api-vault-role" may be used by the service accounts of account '
         "api-prod/web, account web-prod/api, api, web and can read the secrets of api. "
         + SHARED_WHY),
        (STORES, "api-secret-stores-vault", "mandatory",
         'SecretStore "api-secret-stores-vault" signs in with Vault role api, which is not bound '
         f"to exactly account api in api-prod. {SECRET_STORES.WHY_FIX_SHARED_ROLE}"),
    ]


def test_an_irsa_role_trusting_two_services_accounts_fails(prod, good):
    def two_subjects(props: dict) -> None:
        trust = json.loads(props["assumeRolePolicy"])
        equals = trust["Statement"][0]["Condition"]["StringEquals"]
        sub = next(k for k in equals if k.endswith(":sub"))
        equals[sub] = [equals[sub], "system:serviceaccount:web-prod:web"]
        props["assumeRolePolicy"] = json.dumps(trust)

    plan = mutate(good, "api-identity-role", two_subjects)
    assert sorted(isolation_violations(prod, plan)) == [
        (SPANS, "api-identity-role", "mandatory",
         'Role "api-identity-role" may be used by the service accounts of api, web and can read '
         f"the secrets of api. {SHARED_WHY}"),
        (STORES, "api-secret-stores-aws", "mandatory",
         'SecretStore "api-secret-stores-aws" reads through Role "api-identity-role", whose '
         "trust policy does not admit exactly system:serviceaccount:api-prod:api. "
         f"{SECRET_STORES.WHY_FIX_TRUST}"),
    ]


def test_a_shard_deploy_role_may_reach_its_shards_services_and_only_it_is(prod, good):
    """The platform stack's deploy role of a shard (ownership.deploy_role_name) reaches its
    shard's services by design (tests/program/test_deploy_rights.py judges which); a role
    named for another environment's shard, or for no shard, is judged like any other."""
    web = "arn:aws:secretsmanager:eu-west-1:333333333333:secret:configplane/prod/web/KEY-Ab12Cd"
    plan = mutate(good, "api-identity-policy", widen(web))
    for name, exempt in (("configplane-deploy-prod-shop", True),
                         ("configplane-deploy-staging-shop", False),
                         ("configplane-deploy-prod-", False)):
        def rename(props: dict, name: str = name) -> None:
            props["name"] = name

        found = isolation_violations(prod, mutate(plan, "api-identity-role", rename))
        assert (found == []) == exempt, (name, found)


def test_a_shard_deployers_login_spans_its_shard_only_with_its_own_deploy_policy(prod, good):
    """A deployer's Vault login (ownership.deploy_login_role) reaches its shard's services
    through its own deploy policy by design; the same name granting other policies is judged
    like any role (vault-least-privilege refuses it too: tests/policies/test_vault.py)."""
    def deployer_policy(props: dict) -> None:
        props.update(name="configplane-deploy-prod-shop", policy="".join(
            f'path "prod-kv/data/{s}" {{\n  capabilities = ["create", "read", "update"]\n}}\n'
            for s in ("api", "web")))

    def login(policies: list[str]):
        def change(props: dict) -> None:
            props.update(roleName="configplane_deploy_prod-shop", tokenPolicies=policies,
                         boundServiceAccountNames=["pulumi-prod-shop"],
                         boundServiceAccountNamespaces=["pulumi-operator"])
        return change

    plan = add(good, "web-vault-policy", "deploy-rights-prod-shop-vault-policy", deployer_policy)
    own = add(plan, "api-vault-role", "deploy-rights-prod-shop-vault-login-operator",
              login(["configplane-deploy-prod-shop"]))
    assert isolation_violations(prod, own) == []
    other = add(plan, "api-vault-role", "deploy-rights-prod-shop-vault-login-operator",
                login(["prod-api-read", "prod-web-read"]))
    assert [v[:3] for v in isolation_violations(prod, other)] == [
        (SPANS, "deploy-rights-prod-shop-vault-login-operator", "mandatory")]


# --- every role's patterns against every service: the index decides as the plain judgement ---

ROLE_SERVICES = st.lists(st.one_of(st.sampled_from(["svc", "svc-2", "sv", "svc-20", "api"]),
                                   st.text(alphabet="sv-2/*?+", min_size=1, max_size=4)),
                         max_size=5, unique=True)
PATTERN_PIECES = st.sampled_from(["*", "?", "+", "-", "/", "2", "s", "v", "svc", "KEY",
                                  "-??????", "configplane/", "prod/", "dev/"])


@settings(max_examples=60, deadline=None)
@given(st.data(), ROLE_SERVICES)
def test_what_each_role_reads_is_the_plain_judgement_of_its_patterns(data, services):
    """Roles of generated patterns over generated services (prefixes of one another, spans of
    two, wildcards of IAM and Vault): each role reads the union of what judging each pattern
    against every service finds (tests/test_ownership.py's reference), nothing more or less."""
    def pattern() -> str:
        first = ownership.secret_prefix("prod", data.draw(st.sampled_from(services or ["x"])))
        second = ownership.secret_prefix("prod", data.draw(st.sampled_from(services or ["x"])))
        cut, tail = data.draw(st.integers(0, len(first))), data.draw(st.integers(0, len(second)))
        middle = "".join(data.draw(st.lists(PATTERN_PIECES, max_size=3)))
        arn = data.draw(st.sampled_from([ARN_PREFIX, "arn:aws:secretsmanager:*:*:secret:", ""]))
        return arn + first[:cut] + middle + second[len(second) - tail:]

    roles = {f"role-{i}": [pattern() for _ in range(data.draw(st.integers(1, 3)))]
             for i in range(data.draw(st.integers(1, 4)))}
    resources = [_Resource("kubernetes:core/v1:ServiceAccount", f"account-{i}",
                           {"metadata": {"name": f"a{i}", "namespace": f"n{i}",
                                         "labels": {"app.kubernetes.io/name": s}}})
                 for i, s in enumerate(services)]
    resources += [_Resource("aws:iam/role:Role", name, {"name": name, "inlinePolicies": [
        {"policy": json.dumps({"Statement": [{"Effect": "Allow",
                                              "Action": "secretsmanager:GetSecretValue",
                                              "Resource": patterns}]})}]})
                  for name, patterns in roles.items()]
    reads = {i.name: i.reads for i in IDENTITIES.identities(Stack("prod", resources))}
    for name, patterns in roles.items():
        expected = set().union(*(_reference_pattern_owners(p, "prod", services) for p in patterns))
        assert reads[name] == expected, (name, patterns)


@dataclasses.dataclass
class _Resource:
    """A resource as pulumi_policy hands it to a stack policy (what isolation_lib reads)."""

    resource_type: str
    name: str
    props: dict

    @property
    def urn(self) -> str:
        return f"urn:pulumi:prod::configplane::{self.resource_type}::{self.name}"

    property_dependencies = {}  # none: the roles carry their policies inline
