"""Over the WHOLE offline plan: no identity can read two services' secrets, and each service's
own identity can read every secret its ExternalSecret asks for.

An oracle independent of the pack: it takes the secrets from what each ExternalSecret fetches
(store, path or ARN) and decides reach by matching them against the grants as Vault and IAM
evaluate them (Vault: `*` as a trailing prefix glob and `+` as one segment; IAM: `*` and `?`
globs, actions and resources), not by reading configplane's naming convention.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configplane import ownership
from configplane.model import environment_topology
from configplane.offline import run_plan
from tests.catalog_compat import edit_stack
from tests.conftest import REPO, STACKS
from tests.projects import copy_project, sample_plan

SECRET_STORE = "kubernetes:external-secrets.io/v1:SecretStore"
EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1:ExternalSecret"


def vault_rule_matches(rule: str, path: str) -> bool:
    """Vault's policy path matching: `+` one segment, a trailing `*` any suffix."""
    pattern = "".join("[^/]+" if c == "+" else re.escape(c) for c in rule.rstrip("*"))
    return re.fullmatch(pattern + (".*" if rule.endswith("*") else ""), path) is not None


def iam_matches(pattern: str, value: str, *, case: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def hcl_rules(text: str) -> list[tuple[str, list[str]]]:
    return [(m.group(1), re.findall(r'"(\w+)"', m.group(2)))
            for m in re.finditer(r'path "([^"]*)" \{\s*capabilities = \[([^\]]*)\]', text)]


class Oracle:
    def __init__(self, plan):
        self.plan = plan
        self.by_urn = {r.urn: r for r in plan.resources}
        self.of = lambda t: [r for r in plan.resources if r.type == t]

    def consumed(self) -> list[tuple[str, str, dict, str]]:
        """(service, 'vault'|'aws', store, secret path or ARN) for every ExternalSecret entry."""
        stores = {(r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r
                  for r in self.of(SECRET_STORE)}
        secrets_by_name = {r.inputs["name"]: r.outputs["arn"]
                           for r in self.of("aws:secretsmanager/secret:Secret")}
        out = []
        for es in self.of(EXTERNAL_SECRET):
            meta, spec = es.inputs["metadata"], es.inputs["spec"]
            service = meta["labels"]["app.kubernetes.io/name"]
            # data[].remoteRef and dataFrom[].extract read through a store; a generator-backed
            # entry (dataFrom[].sourceRef.generatorRef) is no store read (pki policies check it)
            reads = [(e, e["remoteRef"]) for e in spec.get("data", [])] + [
                (e, e["extract"]) for e in spec.get("dataFrom", []) if "extract" in e]
            for entry, remote in reads:
                ref = (entry.get("sourceRef") or {}).get("storeRef") or spec["secretStoreRef"]
                store = stores[(meta["namespace"], ref["name"])]
                provider = store.inputs["spec"]["provider"]
                key = remote["key"]
                if "vault" in provider:
                    out.append((service, "vault", store, f"{provider['vault']['path']}/data/{key}"))
                else:
                    out.append((service, "aws", store, secrets_by_name.get(key, key)))
        return out

    def vault_reach(self) -> dict[str, list[str]]:
        """Vault role name -> the read rules of its token policies."""
        policies = {p.inputs["name"]: hcl_rules(p.inputs["policy"])
                    for p in self.of("vault:index/policy:Policy")}
        return {r.inputs["roleName"]: [path for name in r.inputs["tokenPolicies"]
                                       for path, caps in policies.get(name, []) if "read" in caps]
                for r in self.of("vault:kubernetes/authBackendRole:AuthBackendRole")}

    def iam_statements(self) -> dict[str, list[dict]]:
        """IAM role urn -> the Allow statements of its policies."""
        out: dict[str, list[dict]] = {r.urn: [] for r in self.of("aws:iam/role:Role")}
        for rp in self.of("aws:iam/rolePolicy:RolePolicy"):
            (role,) = rp.property_dependencies["role"]
            out[role] += [s for s in json.loads(rp.inputs["policy"])["Statement"]
                          if s["Effect"] == "Allow"]
        return out

    @staticmethod
    def grants(statements: list[dict], action: str, resource: str) -> list[dict]:
        def listed(value):
            return value if isinstance(value, list) else [value]
        return [s for s in statements
                if any(iam_matches(a, action, case=False) for a in listed(s["Action"]))
                and any(iam_matches(r, resource) for r in listed(s["Resource"]))]


def check_isolation(plan, project) -> None:
    """`project`: where the plan's services are assigned to shards (a deployer's login reaches
    its own shard's services by design: docs/fleet.md)."""
    shards = environment_topology(project, plan.stack).assignment
    oracle = Oracle(plan)
    consumed = oracle.consumed()
    assert consumed
    vault_secrets = [(svc, path) for svc, kind, _, path in consumed if kind == "vault"]
    aws_secrets = [(svc, arn) for svc, kind, _, arn in consumed if kind == "aws"]
    # no identity reaches two services' secrets
    for role, rules in oracle.vault_reach().items():
        owners = {svc for svc, path in vault_secrets
                  if any(vault_rule_matches(rule, path) for rule in rules)}
        shard = ownership.deploy_login_shard(role, plan.stack)
        if shard is not None:  # a shard deployer's login: its shard's services, no other's
            own = {svc for svc, placed in shards.items() if placed == shard}
            assert owners <= own, (role, owners - own)
            continue
        assert len(owners) <= 1, (role, owners)
    statements = oracle.iam_statements()
    # A shard's deploy role reaches its shard's services by design: not a workload's
    # identity; tests/program/test_deploy_rights.py judges it (its shard's, no other's).
    deployers = {r.urn for r in oracle.of("aws:iam/role:Role")
                 if ownership.deploy_shard(r.inputs.get("name"), plan.stack)}
    for role, granted in statements.items():
        if role in deployers:
            continue
        owners = {svc for svc, arn in aws_secrets
                  if oracle.grants(granted, "secretsmanager:GetSecretValue", arn)}
        assert len(owners) <= 1, (oracle.by_urn[role].name, owners)
    # and each identity admits one account only: its Vault role's bindings, its IAM trust
    for r in oracle.of("vault:kubernetes/authBackendRole:AuthBackendRole"):
        assert (len(r.inputs["boundServiceAccountNames"]),
                len(r.inputs["boundServiceAccountNamespaces"])) == (1, 1), r.name
    for r in oracle.of("aws:iam/role:Role"):
        if r.urn in deployers:
            continue
        (statement,) = json.loads(r.inputs["assumeRolePolicy"])["Statement"]
        if "Federated" in statement["Principal"]:
            assert list(statement["Condition"]) == ["StringEquals"], r.name
            subjects = [v for k, v in statement["Condition"]["StringEquals"].items()
                        if k.endswith(":sub")]
            assert len(subjects) == 1 and isinstance(subjects[0], str), r.name
        else:
            assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}, r.name
    # and each store's identity reads what its ExternalSecret asks for (delivery works)
    roles_by_arn = {r.outputs["arn"]: r.urn for r in oracle.of("aws:iam/role:Role")}
    accounts = {(a.inputs["metadata"]["namespace"], a.inputs["metadata"]["name"]): a
                for a in oracle.of("kubernetes:core/v1:ServiceAccount")}
    keys = {r.outputs["arn"] for r in oracle.of("aws:kms/key:Key")}
    encrypted = {r.outputs["arn"]: r.inputs.get("kmsKeyId")
                 for r in oracle.of("aws:secretsmanager/secret:Secret")}
    reach = oracle.vault_reach()
    for svc, kind, store, target in consumed:
        provider = store.inputs["spec"]["provider"]
        namespace = store.inputs["metadata"]["namespace"]
        assert store.inputs["metadata"]["labels"]["app.kubernetes.io/name"] == svc
        if kind == "vault":
            auth = provider["vault"]["auth"]["kubernetes"]
            assert (namespace, auth["serviceAccountRef"]["name"]) in accounts
            assert any(vault_rule_matches(rule, target) for rule in reach[auth["role"]]), target
            continue
        account = accounts[(namespace, provider["aws"]["auth"]["jwt"]["serviceAccountRef"]["name"])]
        role = roles_by_arn[account.inputs["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]]
        assert oracle.grants(statements[role], "secretsmanager:GetSecretValue", target), target
        key = encrypted.get(target)
        if key:  # the customer-managed key decrypts it only through Secrets Manager
            assert key in keys
            (grant,) = oracle.grants(statements[role], "kms:Decrypt", key)
            condition = grant["Condition"]
            assert condition["StringEquals"] == {
                "kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}
            assert any(iam_matches(p, target)
                       for p in condition["StringLike"]["kms:EncryptionContext:SecretARN"])


@pytest.mark.parametrize("stack", STACKS)
def test_no_identity_in_a_sample_plan_reads_two_services_secrets(stack):
    check_isolation(sample_plan(stack), REPO)


def test_the_oracle_sees_a_spanning_identity():
    """The oracle itself can fail: the old operator role (every read policy) spans."""
    assert vault_rule_matches("prod-kv/data/api/*", "prod-kv/data/api/x")
    assert vault_rule_matches("prod-kv/data/+/x", "prod-kv/data/web/x")
    assert not vault_rule_matches("prod-kv/data/api", "prod-kv/data/api-v2")
    assert vault_rule_matches("prod-kv/data/api*", "prod-kv/data/api-v2")
    assert iam_matches("arn:aws:secretsmanager:*:*:secret:configplane/prod/*",
                       "arn:aws:secretsmanager:eu-west-1:1:secret:configplane/prod/web/X-abcdef")


secret_kinds = st.lists(st.sampled_from(["vault-generated", "aws-generated", "vault-ref",
                                         "aws-ref", "aws-rotated"]), min_size=1, max_size=3)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.from_regex(r"svc[a-z]{1,4}", fullmatch=True), secret_kinds,
                       min_size=2, max_size=3))
def test_generated_fleets_have_no_spanning_identity(tmp_path_factory, fleet):
    project = copy_project(tmp_path_factory.mktemp("fleet") / "project")

    def add_fleet(config: dict) -> None:
        services = config["configplane:services"]
        for name, kinds in fleet.items():
            secrets = {}
            for i, kind in enumerate(kinds):
                store, source = kind.split("-")
                spec = {"store": store,
                        "source": "reference" if source == "ref" else "generated"}
                if source == "rotated":  # each rotating service gets its own function and role
                    spec["rotation"] = {"strategy": "random"}
                if source == "ref":
                    spec["ref"] = (f"{name}/shared#k{i}" if store == "vault" else
                                   f"arn:aws:secretsmanager:eu-west-1:111111111111:secret:"
                                   f"configplane/dev/{name}/REF{i}-Ab12Cd")
                secrets[f"K{i}"] = spec
            services[name] = {"app_schema": "worker", "secrets": secrets, "config": {
                "LOG_LEVEL": "info", "CONCURRENCY": 1, "RATE_LIMIT_RPS": 1,
                "QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/111111111111/q",
                "PAYMENTS_API_BASE_URL": "https://example.com", "VISIBILITY_TIMEOUT_SECONDS": 1}}

    edit_stack(project, "dev", add_fleet)
    assert {f"services/{name}/dev.yaml" for name in fleet} <= {
        str(p.relative_to(project)) for p in project.glob("services/*/dev.yaml")}
    check_isolation(run_plan(project, "dev", one_stack=True), project)
