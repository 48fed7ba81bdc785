"""Per-shard deploy rights (components/deploy_rights.py, docs/fleet.md): over every sample
environment, each shard deployer's IAM policy, boundary and Vault policy reach exactly the
resources its shard's plan declares and none that another shard's plan declares (or that
ownership.py derives for another shard's services); parliament finds nothing in them.

The judge is the planned resources, matched the way IAM (`*`, `?`) and Vault (exact paths,
a trailing `*`, the most specific path of one policy wins) match them: not the component's
own lists.
"""

from __future__ import annotations

import json
import re
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st
from parliament import analyze_policy_string

from components.deploy_rights import (
    VPC_DESCRIBE_ACTIONS,
    ShardScope,
    VaultMounts,
    deployer_policy,
    extending,
    vault_policy_paths,
)
from configplane import ownership
from configplane.model import Topology, environment_topology, topology_problems
from configplane.offline.fleet import plan_environment
from tests.conftest import REPO, STACKS

PATH_RULE = re.compile(r'path "([^"]+)" \{\s*capabilities = (\[[^\]]*\])\s*\}')


@cache
def fleet(environment: str):
    planned = plan_environment(REPO, environment)
    return {s.name: p for s, p in zip(planned.stacks, planned.plans, strict=True)}


def iam_glob(pattern: str) -> re.Pattern:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                              for c in pattern))


def allowed(policy: dict, action: str, arn: str) -> bool:
    """Whether an Allow statement of `policy` grants `action` on `arn` (conditions aside)."""
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) \
            else [statement["Action"]]
        resources = statement.get("Resource", [])
        resources = resources if isinstance(resources, list) else [resources]
        if statement["Effect"] == "Allow" and action in actions and any(
                iam_glob(r).fullmatch(arn) for r in resources):
            return True
    return False


def vault_rules(hcl: str) -> dict[str, list[str]]:
    rules = {path: json.loads(caps) for path, caps in PATH_RULE.findall(hcl)}
    assert len(rules) == hcl.count('path "'), "a rule the test cannot read"
    return rules


def vault_allows(rules: dict[str, list[str]], path: str) -> bool:
    """Vault's reading of one policy: an exact rule first, else the longest matching glob."""
    if path in rules:
        caps = rules[path]
    else:
        globs = [p for p in rules if p.endswith("*") and path.startswith(p[:-1])]
        if not globs:
            return False
        caps = rules[max(globs, key=len)]
    return "deny" not in caps and "update" in caps


def aws_names(plan, account: str, region: str) -> list[tuple[str, str]]:
    """(an action the deployer needs, the ARN) for each named AWS resource of a plan."""
    out = []
    for r in plan.resources:
        name = r.inputs.get("name") or r.outputs.get("name")
        if r.type == "aws:secretsmanager/secret:Secret":
            out.append(("secretsmanager:CreateSecret",
                        f"arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf"))
        elif r.type == "aws:iam/role:Role":
            out.append(("iam:GetRole", f"arn:aws:iam::{account}:role/{name}"))
        elif r.type == "aws:lambda/function:Function":
            out.append(("lambda:CreateFunction",
                        f"arn:aws:lambda:{region}:{account}:function:{name}"))
        elif r.type == "aws:cloudwatch/logGroup:LogGroup":
            out.append(("logs:CreateLogGroup",
                        f"arn:aws:logs:{region}:{account}:log-group:{name}"))
    return out


def vault_names(plan) -> list[str]:
    """The Vault API path each Vault resource of a plan writes."""
    out = []
    for r in plan.resources:
        i = r.inputs
        if r.type == "vault:index/policy:Policy":
            out.append(f"sys/policies/acl/{i['name']}")
        elif r.type == "vault:kubernetes/authBackendRole:AuthBackendRole":
            out.append(f"auth/{i['backend']}/role/{i['roleName']}")
        elif r.type == "vault:kv/secretV2:SecretV2":
            out.append(f"{i['mount']}/data/{i['name']}")
        elif r.type in ("vault:pkiSecret/secretBackendRole:SecretBackendRole",
                        "vault:database/secretBackendRole:SecretBackendRole"):
            out.append(f"{i['backend']}/roles/{i['name']}")
    return out


def derived_vault_names(environment: str, service: str, mounts: VaultMounts) -> list[str]:
    """What ownership.py derives for a service in Vault, with made-up database keys."""
    names = [f"sys/policies/acl/{f(environment, service)}" for f in (
        ownership.read_policy_name, ownership.pki_policy_name, ownership.database_policy_name)]
    names += [f"auth/{mounts.auth}/role/{f(service)}" for f in (
        ownership.vault_role, ownership.pki_auth_role, ownership.database_auth_role)]
    names += [f"{mounts.kv}/data/{ownership.vault_path(service)}",
              f"{mounts.pki}/roles/{ownership.pki_role(service)}"]
    names += [f"{mounts.database}/roles/{ownership.database_role_name(service, key)}"
              for key in ("DB_PASSWORD", "x")]
    return names


def deployer_vault_names(shards, mounts: VaultMounts, jwt: str) -> list[str]:
    """Every shard deployer's login roles (both mounts) and deploy policy, as Vault paths."""
    return [path for stack in shards for path in (
        f"auth/{jwt}/role/{ownership.deploy_login_role(stack)}",
        f"auth/{mounts.auth}/role/{ownership.deploy_login_role(stack)}",
        f"sys/policies/acl/{ownership.deploy_policy_name(stack)}",
        f"sys/policy/{ownership.deploy_policy_name(stack)}")]


def shards_of(environment: str):
    topology = environment_topology(REPO, environment)
    return topology, {ownership.shard_stack_name(environment, shard): services
                      for shard, services in topology.shards().items()}


def rights(environment: str, stack: str) -> dict[str, dict]:
    """The shard's deploy rights as the platform plan declares them, by role."""
    prefix = f"deploy-rights-{stack}-"
    return {r.name[len(prefix):]: r for r in fleet(environment)[environment].resources
            if r.name.startswith(prefix) and r.type != "configplane:deploy:ShardDeployRights"}


@pytest.mark.parametrize("environment", STACKS)
def test_each_shard_deployer_reaches_its_own_resources_and_no_others(environment):
    account, region = account_region(environment)
    topology, shards = shards_of(environment)
    plans = fleet(environment)
    if not topology.sharded:  # an unsplit environment plans no deploy rights
        assert not any(r.type == "configplane:deploy:ShardDeployRights"
                       for p in plans.values() for r in p.resources)
        return
    mounts = VaultMounts(kv=plans[environment].outputs["vault_mount"],
                         auth=plans[environment].outputs["kubernetes_auth_path"],
                         pki=f"{environment}-pki", database=f"{environment}-database")
    assert len(shards) >= 2
    checked_aws = 0
    for stack, services in shards.items():
        found = rights(environment, stack)
        assert set(found) == {"role", "policy", "boundary", "vault-policy",
                              "vault-login-github", "vault-login-operator"}, stack
        assert found["role"].inputs["name"] == ownership.deploy_role_name(stack)
        assert found["boundary"].inputs["name"] == ownership.deploy_boundary_name(stack)
        assert found["vault-policy"].inputs["name"] == ownership.deploy_policy_name(stack)
        policy = json.loads(found["policy"].inputs["policy"])
        boundary_arn = f"arn:aws:iam::{account}:policy/{ownership.deploy_boundary_name(stack)}"
        rules = vault_rules(found["vault-policy"].inputs["policy"])
        own_aws, own_vault = aws_names(plans[stack], account, region), vault_names(plans[stack])
        assert own_vault  # every service has its Vault policy and role
        checked_aws += len(own_aws)
        for action, arn in own_aws:
            assert allowed(policy, action, arn), (stack, action, arn)
        for path in own_vault:
            assert vault_allows(rules, path), (stack, path)
        # every role the shard declares carries its deployer's boundary
        roles = [r for r in plans[stack].resources if r.type == "aws:iam/role:Role"]
        assert all(r.inputs["permissionsBoundary"] == boundary_arn for r in roles)
        creating = [s for s in policy["Statement"] if "iam:CreateRole" in s["Action"]]
        assert [s["Condition"] for s in creating] == [
            {"ArnEquals": {"iam:PermissionsBoundary": boundary_arn}}]
        for other, other_services in shards.items():
            if other == stack:
                continue
            for action, arn in aws_names(plans[other], account, region):
                assert not allowed(policy, action, arn), (stack, arn)
            for path in vault_names(plans[other]):
                assert not vault_allows(rules, path), (stack, path)
            for service in other_services:
                for path in derived_vault_names(environment, service, mounts):
                    assert not vault_allows(rules, path), (stack, path)
        for service in services:  # and the names its services would derive later
            for path in derived_vault_names(environment, service, mounts):
                assert vault_allows(rules, path), (stack, path)
        # no deployer writes a deployer's login or policy: its own included
        for path in deployer_vault_names(shards, mounts, jwt="jwt"):
            assert not vault_allows(rules, path), (stack, path)
    assert checked_aws  # the environment's secrets, roles, functions and logs were judged


def account_region(environment: str) -> tuple[str, str]:
    from configplane.inputs import read_stack_files
    from configplane.validation import load_stack

    aws = load_stack(read_stack_files(REPO, environment)).platform.aws
    return aws.account_id, aws.region


@pytest.mark.parametrize("environment", STACKS)
def test_the_boundary_denies_every_other_shards_secret(environment):
    _, shards = shards_of(environment)
    account, region = account_region(environment)
    plans = fleet(environment)
    for stack in shards:
        boundary = json.loads(rights(environment, stack)["boundary"].inputs["policy"])
        deny = next(s for s in boundary["Statement"] if s["Effect"] == "Deny")
        denied = [iam_glob(p) for p in deny["Condition"]["ArnLike"]["secretsmanager:SecretId"]]
        spared = [iam_glob(r) for r in deny["NotResource"]]
        checked = 0
        for other in shards:
            for action, arn in aws_names(plans[other], account, region):
                if action == "secretsmanager:CreateSecret":
                    checked += 1
                    assert any(p.fullmatch(arn) for p in denied)
                    assert any(p.fullmatch(arn) for p in spared) == (other == stack), (stack, arn)
        assert checked


@pytest.mark.parametrize("environment", STACKS)
def test_the_deploy_rights_pass_parliament(environment):
    _, shards = shards_of(environment)
    for stack in shards:
        found = rights(environment, stack)
        assert analyze_policy_string(found["policy"].inputs["policy"]).findings == []
        issues = {(f.issue, json.dumps(f.detail))
                  for f in analyze_policy_string(found["boundary"].inputs["policy"]).findings}
        # what the rotation function's own role needs too (tests/program/test_arns.py)
        assert {i for i, _ in issues} <= {"RESOURCE_STAR"}
        trust = json.loads(found["role"].inputs["assumeRolePolicy"])
        subjects = {k: v for s in trust["Statement"]
                    for k, v in s["Condition"]["StringEquals"].items() if k.endswith(":sub")}
        assert set(subjects.values()) == {
            f"repo:shop/config:environment:{ownership.github_deploy_environment(stack)}",
            ownership.service_account_subject("pulumi-operator", ownership.stack_account(stack))}


def test_a_database_role_prefix_stops_at_another_shards_longer_name():
    """`a-*` would reach the roles of service `a-b` in another shard: a deny on `a-b-*`."""
    scope = ShardScope(stack="prod-x", environment="prod", services=("a",),
                       account="333333333333", regions=("eu-west-1",))
    mounts = VaultMounts(kv="prod-kv", auth="kubernetes-prod", database="prod-database")
    rules = vault_policy_paths(scope, mounts, others=("a-b", "b", "ab"))
    assert vault_allows(rules, "prod-database/roles/a-db-password")
    assert not vault_allows(rules, "prod-database/roles/a-b-db-password")
    assert not vault_allows(rules, "prod-database/roles/ab-db-password")
    assert not vault_allows(rules, "prod-database/roles/b-x")
    assert not vault_allows(rules, "sys/policies/acl/prod-a-b-read")
    assert vault_allows(rules, "sys/policies/acl/prod-a-read")


LABELS = st.text("ab-", min_size=1, max_size=6)


@given(own=st.lists(LABELS, max_size=5, unique=True), others=st.lists(LABELS, max_size=12))
def test_the_names_that_extend_a_shards_are_those_with_one_of_its_names_before_a_dash(own, others):
    """`extending` (found by prefix in sorted names) against its definition: a name before
    one of the other's `-` is the shard's own; in the order given."""
    expected = [o for o in others
                if any(o[:i] in set(own) for i, c in enumerate(o) if c == "-")]
    assert extending(own, others) == expected


def test_no_iam_name_of_a_longer_service_falls_under_a_shorter_ones_grant():
    """Service `a`'s grants by name and glob reach none of `a-role`'s or `a-b`'s names (the
    rotation role's 7 autoname characters are `?`, not `*`)."""
    scope = ShardScope(stack="prod-x", environment="prod", services=("a",),
                       account="333333333333", regions=("eu-west-1",))
    policy = deployer_policy(scope, [])
    role = "arn:aws:iam::333333333333:role/"
    assert allowed(policy, "iam:GetRole", f"{role}rotation-prod-a-role-abc1234")
    assert allowed(policy, "iam:GetRole", f"{role}configplane-prod-a-secrets")
    for other in ("a-role", "a-b", "a-"):
        for arn in (f"{role}rotation-prod-{other}-role-abc1234",
                    f"{role}{ownership.iam_role_name('prod', other)}",
                    "arn:aws:secretsmanager:eu-west-1:333333333333:secret:"
                    f"{ownership.aws_secret_name('prod', other, 'K')}-AbCdEf",
                    "arn:aws:lambda:eu-west-1:333333333333:function:"
                    f"{ownership.rotation_function_name('prod', other)}"):
            assert not any(allowed(policy, a, arn) for a in (
                "iam:GetRole", "secretsmanager:CreateSecret", "lambda:CreateFunction")), arn


def vpc_denied(policy: dict, action: str, arn: str, request: dict[str, list[str]]) -> bool:
    """Whether a Deny of `policy` refuses `action` on `arn` for a request carrying these
    multi-valued condition keys (IAM's ForAnyValue:StringNotEquals: any value outside)."""
    for statement in policy["Statement"]:
        if statement["Effect"] != "Deny" or action not in statement["Action"] or not any(
                iam_glob(r).fullmatch(arn) for r in statement["Resource"]):
            continue
        [(operator, condition)] = statement["Condition"].items()
        assert operator == "ForAnyValue:StringNotEquals"
        if any(v not in values for key, values in condition.items()
               for v in request.get(key, [])):
            return True
    return False


@pytest.mark.parametrize("environment", STACKS)
def test_a_shard_deployer_may_put_its_rotation_functions_in_the_environments_vpc(environment):
    """Lambda checks a VPC config with the caller's rights (ec2:Describe*): the deployer holds
    them, and may give its functions the environment's subnets and security groups only."""
    account, region = account_region(environment)
    _, shards = shards_of(environment)
    plans = fleet(environment)
    functions = 0
    for stack in shards:
        policy = json.loads(rights(environment, stack)["policy"].inputs["policy"])
        for action in VPC_DESCRIBE_ACTIONS:
            assert allowed(policy, action, f"arn:aws:ec2:{region}:{account}:subnet/subnet-0")
        for r in plans[stack].resources:
            if r.type != "aws:lambda/function:Function":
                continue
            functions += 1
            arn = f"arn:aws:lambda:{region}:{account}:function:{r.inputs['name']}"
            vpc = r.inputs["vpcConfig"]  # every sample environment rotates in its VPC
            own = {"lambda:SubnetIds": vpc["subnetIds"],
                   "lambda:SecurityGroupIds": vpc["securityGroupIds"]}
            assert own["lambda:SubnetIds"] and own["lambda:SecurityGroupIds"]
            for action in ("lambda:CreateFunction", "lambda:UpdateFunctionConfiguration"):
                assert allowed(policy, action, arn)
                assert not vpc_denied(policy, action, arn, own)
                assert not vpc_denied(policy, action, arn, {})  # no VPC config in the call
                for key, foreign in (("lambda:SubnetIds", "subnet-0ffffffffffffffff"),
                                     ("lambda:SecurityGroupIds", "sg-0ffffffffffffffff")):
                    assert vpc_denied(policy, action, arn, {**own, key: [*own[key], foreign]})
    assert functions  # the samples' rotation functions were judged


def test_without_a_rotation_vpc_the_deployer_gets_no_ec2_right():
    scope = ShardScope(stack="prod-x", environment="prod", services=("a",),
                       account="333333333333", regions=("eu-west-1",))
    policy = deployer_policy(scope, [])
    assert not any(str(a).startswith("ec2:") for s in policy["Statement"]
                   for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    assert analyze_policy_string(json.dumps(policy)).findings == []


@pytest.mark.parametrize("environment", STACKS)
def test_each_deployer_logs_in_to_vault_only_as_its_own_shard(environment):
    """Each shard's Vault logins grant its deploy policy and nothing else, to the same
    identities its IAM role trusts: the GitHub environment in the role's `sub`, and the
    operator workspace account in its IRSA `sub`."""
    _, shards = shards_of(environment)
    for stack in shards:
        found = rights(environment, stack)
        github, operator = (found[f"vault-login-{k}"].inputs for k in ("github", "operator"))
        trust = json.loads(found["role"].inputs["assumeRolePolicy"])
        subjects = [v for s in trust["Statement"] for k, v in s["Condition"]["StringEquals"].items()
                    if k.endswith(":sub")]
        for login in (github, operator):
            assert login["roleName"] == ownership.deploy_login_role(stack)
            assert login["tokenPolicies"] == [ownership.deploy_policy_name(stack)]
            assert 0 < login["tokenTtl"] <= login["tokenMaxTtl"] <= 3600
        assert github["backend"] == "jwt" and github["roleType"] == "jwt"
        assert github["boundClaimsType"] == "string" and github["boundAudiences"]
        assert github["boundClaims"] == {
            "repository": "shop/config",
            "environment": ownership.github_deploy_environment(stack)}
        assert github["boundSubject"] in subjects  # the IAM role's GitHub `sub`, exactly
        assert operator["backend"] == fleet(environment)[environment].outputs[
            "kubernetes_auth_path"]
        assert ownership.service_account_subject(
            operator["boundServiceAccountNamespaces"][0],
            operator["boundServiceAccountNames"][0]) in subjects
        assert len(operator["boundServiceAccountNames"]) == 1
        assert len(operator["boundServiceAccountNamespaces"]) == 1


LABELS = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)


@given(LABELS, LABELS, LABELS)
def test_no_service_role_name_is_a_deployers_login(service, environment, shard):
    """A deployer's login role shares the Kubernetes auth mount with every service's roles:
    its name is none of theirs, for every service name (an RFC 1123 label), and the pack's
    inverse finds the shard of a login and of nothing a service names."""
    stack = ownership.shard_stack_name(environment, shard)
    login = ownership.deploy_login_role(stack)
    services = {f(service) for f in (ownership.vault_role, ownership.pki_auth_role,
                                     ownership.database_auth_role)}
    assert login not in services
    assert ownership.deploy_login_shard(login, environment) == shard
    for name in services:
        assert ownership.deploy_login_shard(name, environment) is None


SHARDS = st.one_of(LABELS, st.sampled_from(["preview", "approval", "x-preview", "x-approval"]))


@given(LABELS, SHARDS, st.lists(st.sampled_from(["prod", "prod-x", "staging", "dev"]),
                               max_size=3))
def test_validate_refuses_a_shard_deploying_in_a_preview_or_approval_environment(
        environment, shard, others):
    """A shard's GitHub environment that is an environment's read-only `-preview` (any
    branch may deploy there) or its `-approval` would hand the shard's deploy role to those
    jobs: refused exactly then, for this environment's and every other's."""
    topology = Topology(environment, True, {"svc": shard})
    problems = [m for _, _, m in topology_problems(topology, "Pulumi.x.yaml", others)
                if "GitHub environment" in m]
    github = ownership.github_deploy_environment(ownership.shard_stack_name(environment, shard))
    shared = {e for env in {environment, *others} for e in ownership.github_shared_environments(env)}
    assert bool(problems) == (github in shared), (github, problems)
