"""`configplane operator stacks`: the operator's Stack objects checked against its official CRD
(vendored, tests/fixtures/crds/), and the service accounts' rights checked against what the
stacks' plans declare."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from configplane import ownership, refs
from configplane.model import environment_stacks, environments, service_stacks
from configplane.offline import plan_environment, run_plan
from configplane.ops import BACKUP_MANAGED, MANAGED
from configplane.validation import load_or_issues
from tests.projects import REPO, copy_project
from tests.security.conftest import assert_clean, cli, edit_yaml

CRD = REPO / "tests/fixtures/crds/pulumi.com_stacks.yaml"
ARGS = ("--repo", "https://github.com/shop/config.git", "--organization", "shop",
        "--secrets-provider", "awskms://alias/pulumi?region=eu-west-1")


@cache
def stack_schema() -> dict:
    crd = yaml.safe_load(CRD.read_text())
    [v1] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    assert v1["served"] and v1["storage"]
    return v1["schema"]["openAPIV3Schema"]


@cache
def account(env: str, project: Path = REPO) -> str:
    model, issues = load_or_issues(project, env)
    assert model is not None, issues
    return model.platform.aws.account_id


def bootstrap(env: str, project: Path = REPO) -> str:
    """The environment's bootstrap role (made outside configplane: docs/fleet.md)."""
    return refs.iam_role_arn(account(env, project), f"configplane-bootstrap-{env}")


def stacks_cli(env: str, *extra: str, project: Path = REPO):
    return cli("operator", "stacks", "--env", env, "--project-dir", str(project), *ARGS,
               "--platform-role-arn", bootstrap(env, project), *extra)


def objects(env: str, *extra: str, project: Path = REPO) -> list[dict]:
    run = stacks_cli(env, *extra, project=project)
    assert run.code == 0, run.text
    return list(yaml.safe_load_all(run.stdout))


def set_operator_namespace(project: Path, env: str, namespace: str) -> None:
    edit_yaml(project / f"Pulumi.{env}.yaml", lambda d: d["config"]["configplane:platform"]
              .setdefault("shards", {}).update(operator_namespace=namespace))


def test_the_vendored_crd_is_the_pinned_release():
    assert hashlib.sha256(CRD.read_bytes()).hexdigest() == (
        "d8ce0513bb77d5d57753e521fd42e87a87bdaf7abda1be2584aa23c1c03ea290")
    assert (CRD.parent / "LICENSE.pulumi-kubernetes-operator").read_text().lstrip().startswith(
        "Apache License")


@pytest.mark.parametrize("env", environments(REPO))
def test_one_stack_object_per_stack_valid_against_the_operators_crd(env):
    found = objects(env, "--repo-dir", "infra/config")
    stacks = [o for o in found if o["kind"] == "Stack"]
    assert [o["metadata"]["name"] for o in stacks] == [s.name for s in environment_stacks(REPO, env)]
    validator = jsonschema.Draft7Validator(stack_schema())
    declared = stack_schema()["properties"]["spec"]["properties"]
    for stack in stacks:
        assert list(validator.iter_errors(stack)) == [], stack["metadata"]["name"]
        spec = stack["spec"]
        # the API server drops fields its schema does not declare: none of ours may be one
        assert set(spec) <= set(declared)
        env_ref = declared["envRefs"]["additionalProperties"]
        for ref in spec["envRefs"].values():
            assert set(ref) <= set(env_ref["properties"])
            assert set(ref["secret"]) <= set(env_ref["properties"]["secret"]["properties"])
        assert spec["stack"] == f"shop/{stack['metadata']['name']}"
        assert (spec["projectRepo"], spec["branch"], spec["repoDir"]) == (
            "https://github.com/shop/config.git", "refs/heads/main", "infra/config")
        assert spec["refresh"] is True and spec["continueResyncOnCommitMatch"] is True
        assert spec["resyncFrequencySeconds"] == 3600 and spec["destroyOnFinalize"] is False
        assert spec["serviceAccountName"] == ownership.stack_account(stack["metadata"]["name"])
    platform, *shards = stacks
    assert "prerequisites" not in platform["spec"]
    assert all(s["spec"]["prerequisites"][0]["name"] == env for s in shards)


def test_the_crd_rejects_what_the_operator_would():
    # a control: the same validation fails a Stack the operator would refuse
    validator = jsonschema.Draft7Validator(stack_schema())
    [stack] = [o for o in objects("dev") if o["kind"] == "Stack"][:1]
    broken = {**stack, "spec": {k: v for k, v in stack["spec"].items() if k != "stack"}}
    assert any("'stack' is a required property" in e.message for e in validator.iter_errors(broken))
    typed = {**stack, "spec": {**stack["spec"], "resyncFrequencySeconds": "hourly"}}
    assert list(validator.iter_errors(typed))


def _rights(found: list[dict], account: str) -> dict[str, set[tuple[str, str]]]:
    """namespace -> (apiGroup, resource) the account may write there, from its Roles."""
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in found
             if o["kind"] == "Role"}
    rights: dict[str, set[tuple[str, str]]] = {}
    for binding in (o for o in found if o["kind"] == "RoleBinding"):
        if any(s["name"] == account for s in binding["subjects"]):
            ns = binding["metadata"]["namespace"]
            role = roles[(ns, binding["roleRef"]["name"])]
            rights[ns] = {(g, r) for rule in role["rules"] if "create" in rule["verbs"]
                          for g in rule["apiGroups"] for r in rule["resources"]}
    return rights


@pytest.mark.parametrize("env", environments(REPO))
def test_each_account_may_write_exactly_what_its_stack_declares_in_its_namespaces(env):
    found = objects(env)
    fleet = plan_environment(REPO, env, workers=1)  # each stack's own plan
    declared: dict[str, set[tuple[str, str]]] = {}  # namespace -> what its stack writes there
    writer: dict[str, str] = {}  # namespace -> the one stack that declares objects in it
    plural = {"ConfigMap": "configmaps", "ServiceAccount": "serviceaccounts", "Role": "roles",
              "RoleBinding": "rolebindings", "ExternalSecret": "externalsecrets",
              "SecretStore": "secretstores", "VaultDynamicSecret": "vaultdynamicsecrets",
              "Issuer": "issuers", "Certificate": "certificates", "CronJob": "cronjobs"}
    for fleet_stack, plan in zip(fleet.stacks, fleet.plans, strict=True):
        for r in plan.resources:
            meta = r.inputs.get("metadata") or {}
            if r.custom and r.type.startswith("kubernetes:") and meta.get("namespace"):
                group = r.inputs["apiVersion"].rpartition("/")[0]
                declared.setdefault(meta["namespace"], set()).add((group, plural[r.inputs["kind"]]))
                assert writer.setdefault(meta["namespace"], fleet_stack.name) == fleet_stack.name
    # no kind left out of MANAGED (a service's namespace) or BACKUP_MANAGED (the platform's)
    assert set().union(*declared.values()) <= set(MANAGED) | set(BACKUP_MANAGED)
    by_stack = service_stacks(REPO, env)
    model, _ = load_or_issues(REPO, env)
    model_ns = {s: model.services[s].namespace for s in by_stack}
    for stack in environment_stacks(REPO, env):
        account = ownership.stack_account(stack.name)
        rights = _rights(found, account)
        mine = {model_ns[s] for s, st in by_stack.items() if st == stack}
        if stack.kind == "platform" and model.platform.backup:  # the Vault snapshot's own
            mine = {model.platform.backup.vault_snapshots.namespace}
        assert set(rights) == mine, stack.name  # its own services' namespaces, no other
        for ns in mine:
            assert declared[ns] <= rights[ns] and writer[ns] == stack.name
        cluster = [o for o in found if o["kind"] == "ClusterRole"
                   and o["metadata"]["name"] == f"{account}:namespaces"]
        if stack.kind == "platform" and not mine:
            assert cluster == []
        else:
            [role] = cluster
            named = [r for r in role["rules"] if "resourceNames" in r]
            assert named[0]["resourceNames"] == sorted(mine)
            assert all(r["resources"] == ["namespaces"] for r in role["rules"])


def _roles(found: list[dict]) -> dict[str, str]:
    return {o["metadata"]["name"]: o["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
            for o in found if o["kind"] == "ServiceAccount"}


def test_every_service_account_is_annotated_with_its_stacks_deploy_role():
    stacks = environment_stacks(REPO, "prod")
    platform, shards = stacks[0], stacks[1:]
    assert platform.kind == "platform" and shards
    # a shard's: the role its platform stack plans; the platform's: the bootstrap role
    assert _roles(objects("prod")) == {
        ownership.stack_account("prod"): bootstrap("prod"),
        **{ownership.stack_account(s.name): refs.iam_role_arn(
            "333333333333", ownership.deploy_role_name(s.name)) for s in shards}}
    template = "arn:aws:iam::{account}:role/{{x}}-{environment}-{stack}"
    templated = _roles(objects("prod", "--role-arn", template))
    assert templated == {
        ownership.stack_account("prod"): bootstrap("prod"),
        **{ownership.stack_account(s.name): f"arn:aws:iam::333333333333:role/{{x}}-prod-{s.name}"
           for s in shards}}


DEPLOY_RIGHTS = "configplane:deploy:ShardDeployRights"  # the component's type, in its URN


def planned_trust(project: Path, env: str) -> dict[str, set[str]]:
    """Each deploy role the platform stack plans -> the IRSA subjects its trust policy names
    (read from the offline plan, not from the component's functions)."""
    plan = run_plan(project, env)
    trusted: dict[str, set[str]] = {}
    for r in plan.resources:
        if r.type == "aws:iam/role:Role" and DEPLOY_RIGHTS in (r.parent or ""):
            trust = json.loads(r.inputs["assumeRolePolicy"])
            trusted[r.inputs["name"]] = {
                value for statement in trust["Statement"]
                for key, value in statement["Condition"]["StringEquals"].items()
                if key.endswith(":sub") and value.startswith("system:serviceaccount:")}
    return trusted


@pytest.mark.parametrize("env", environments(REPO))
def test_every_shard_account_is_exactly_the_subject_its_planned_deploy_role_trusts(env):
    assert_accounts_are_trusted(REPO, env, None)


@settings(max_examples=4, deadline=None)
@given(env=st.sampled_from(environments(REPO)),
       namespace=st.from_regex(r"[a-z][a-z0-9-]{0,30}[a-z0-9]", fullmatch=True))
def test_in_any_operator_namespace_each_account_is_what_its_role_trusts(env, namespace):
    model, _ = load_or_issues(REPO, env)
    # a service's name or namespace there is refused (test_a_service_in_the_operators_...)
    assume(namespace not in {n for name, svc in model.services.items()
                             for n in (name, svc.namespace)})
    with tempfile.TemporaryDirectory() as tmp:
        project = copy_project(Path(tmp) / "p")
        set_operator_namespace(project, env, namespace)
        assert_accounts_are_trusted(project, env, namespace)


def assert_accounts_are_trusted(project: Path, env: str, namespace: str | None) -> None:
    """Every ServiceAccount printed for a shard is exactly the IRSA subject its planned deploy
    role trusts, each planned role has its account, and the platform's is the bootstrap role."""
    trusted = planned_trust(project, env)
    found = objects(env, project=project)
    accounts = [o for o in found if o["kind"] == "ServiceAccount"]
    shard_names = {s.name for s in environment_stacks(project, env) if s.kind == "shard"}
    assert shard_names and len(trusted) == len(shard_names)
    matched = set()
    for sa in accounts:
        meta = sa["metadata"]
        stack = meta["labels"]["configplane.io/stack"]
        arn = meta["annotations"]["eks.amazonaws.com/role-arn"]
        if stack == env:  # the platform stack's: the bootstrap role, which no stack plans
            assert arn == bootstrap(env, project) and arn.rpartition("/")[2] not in trusted
            continue
        role = arn.rpartition("/")[2]
        subject = ownership.service_account_subject(meta["namespace"], meta["name"])
        assert trusted[role] == {subject}, (stack, role, subject)
        # and every object that names the account names it in the namespace the role trusts
        for o in found:
            for subject_ref in o.get("subjects", []):
                if subject_ref["name"] == meta["name"]:
                    assert subject_ref["namespace"] == meta["namespace"]
        if o_stack := next((o for o in found if o["kind"] == "Stack"
                            and o["metadata"]["name"] == stack), None):
            assert o_stack["metadata"]["namespace"] == meta["namespace"]
        matched.add(role)
    assert matched == set(trusted)  # every planned deploy role has its account
    assert {sa["metadata"]["namespace"] for sa in accounts} == {namespace or "pulumi-operator"}


def test_a_namespace_other_than_the_environments_setting_is_refused(tmp_path):
    project = copy_project(tmp_path / "p")
    set_operator_namespace(project, "prod", "platform-ops")
    for other in ("pulumi-operator", "ops"):
        run = stacks_cli("prod", "--namespace", other, project=project)
        assert_clean(run, [], codes=(1,))
        assert run.stdout == "" and run.stderr.count("\n") == 1
        # the file and line that set it, the key path, and the fix
        assert re.search(r": Pulumi\.prod\.yaml:\d+: platform\.shards\.operator_namespace ",
                         run.stderr), run.stderr
        assert "Fix:" in run.stderr
        assert "'platform-ops'" in run.stderr and repr(other) in run.stderr
    agreeing = objects("prod", "--namespace", "platform-ops", project=project)
    assert agreeing == objects("prod", project=project)
    # set in the project's defaults only: the message names Pulumi.yaml
    run = stacks_cli("prod", "--namespace", "ops")
    assert_clean(run, [], codes=(1,))
    assert re.search(r": Pulumi\.yaml:\d+: platform\.shards\.operator_namespace ", run.stderr)


@pytest.mark.parametrize("bad", ["", "Ops", "ops_x", "-ops", "o" * 64, "ops\n", "../x"])
def test_a_namespace_kubernetes_would_refuse_is_one_clean_message(tmp_path, bad):
    unsplit = copy_project(tmp_path / "p")
    edit_yaml(unsplit / "Pulumi.yaml",
              lambda d: d["config"]["configplane:defaults"]["value"]["platform"].pop("shards"))
    for project in (REPO, unsplit):
        run = stacks_cli("prod", "--namespace", bad, project=project)
        assert_clean(run, [], codes=(1,))
        assert run.stdout == "" and "--namespace" in run.stderr and "Fix:" in run.stderr


def test_without_the_clusters_oidc_issuer_no_shard_role_trusts_an_account(tmp_path):
    # a split environment whose services need no IRSA validates without the issuer: its
    # shards' deploy roles then trust GitHub only, and no operator account
    project = copy_project(tmp_path / "p")
    for service in ("api", "worker"):  # the services with Secrets Manager secrets
        shutil.rmtree(project / "services" / service)
    edit_yaml(project / "Pulumi.dev.yaml",
              lambda d: d["config"]["configplane:platform"]["aws"].pop("eks_oidc_issuer"))
    trusted = planned_trust(project, "dev")
    assert trusted and all(subjects == set() for subjects in trusted.values())
    run = stacks_cli("dev", project=project)
    assert_clean(run, [], codes=(1,))
    assert run.stdout == "" and "Fix:" in run.stderr
    assert re.search(r"^error: Pulumi\.dev\.yaml:\d+: platform\.aws\.eks_oidc_issuer ",
                     run.stderr), run.stderr
    # deploy roles made outside configplane: their trust is the platform team's
    assert objects("dev", "--role-arn", "arn:aws:iam::{account}:role/own-{stack}",
                   project=project)


def test_an_unsplit_environment_plans_no_deploy_role_so_any_namespace_goes(tmp_path):
    project = copy_project(tmp_path / "p")
    edit_yaml(project / "Pulumi.yaml",
              lambda d: d["config"]["configplane:defaults"]["value"]["platform"].pop("shards"))
    found = objects("prod", "--namespace", "ops", project=project)
    [account_object] = [o for o in found if o["kind"] == "ServiceAccount"]
    assert account_object["metadata"]["namespace"] == "ops"
    assert account_object["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == \
        bootstrap("prod", project)


@pytest.mark.parametrize("arn", [
    None, "", "arn:aws:iam::333333333333:policy/boot", "arn:aws:iam::111111111111:role/boot",
    "arn:aws:sts::333333333333:assumed-role/boot/x", "arn:aws:iam::33333333333:role/boot",
    "arn:aws:iam::333333333333:role/", "arn:aws:iam::333333333333:role/boot\n",
    "arn:aws:iam::333333333333:role/" + "b" * 65, "arn:aws:iam::333333333333:role/a b",
    "configplane-bootstrap-prod", "arn:aws:iam:eu-west-1:333333333333:role/boot"])
def test_the_platform_stacks_role_is_required_and_must_be_a_role_of_the_environment(arn):
    extra = () if arn is None else ("--platform-role-arn", arn)
    run = cli("operator", "stacks", "--env", "prod", "--project-dir", str(REPO), *ARGS, *extra)
    assert_clean(run, [], codes=(1,))
    assert run.stdout == "" and "--platform-role-arn" in run.stderr and "Fix:" in run.stderr
    assert "arn:aws:iam::333333333333:role/" in run.stderr  # what to give
    assert "system:serviceaccount:pulumi-operator:pulumi-prod" in run.stderr  # what it trusts


@pytest.mark.parametrize("arn", ["arn:aws:iam::333333333333:role/boot",
                                 "arn:aws:iam::333333333333:role/ci/deploy/boot+x=y,z.@-",
                                 "arn:aws-us-gov:iam::333333333333:role/boot"])
def test_a_role_of_the_environments_account_is_taken_as_given(arn):
    found = objects("prod", "--platform-role-arn", arn)
    assert _roles(found)[ownership.stack_account("prod")] == arn


@pytest.mark.parametrize("template", ["arn:{acount}", "arn:{", "arn:}", "arn:{0}", "arn:{stack.x}",
                                      "arn:{account!z}"])
def test_a_role_template_configplane_cannot_fill_is_one_clean_message(template):
    run = cli("operator", "stacks", "--env", "dev", "--project-dir", str(REPO), *ARGS,
              "--role-arn", template)
    assert_clean(run, [], codes=(1,))
    assert "--role-arn" in run.stderr and "Fix:" in run.stderr and run.stdout == ""


@pytest.mark.parametrize("operator_ns", ["api-prod", "api"])
def test_a_service_in_the_operators_namespace_is_refused(tmp_path, operator_ns):
    # a shard's account would get Roles in the namespace that holds every stack's account;
    # validate refuses it (tests/validation/test_ownership.py), so the command does too
    def stacks(project):
        return cli("operator", "stacks", "--env", "prod", "--project-dir", str(project), *ARGS,
                   "--platform-role-arn", bootstrap("prod"))
    project = copy_project(tmp_path / "p")
    set_operator_namespace(project, "prod", operator_ns)
    run = stacks(project)
    assert_clean(run, [], codes=(1,))
    assert "service `api`" in run.stderr and "Fix:" in run.stderr and run.stdout == ""
    assert "platform.shards.operator_namespace" in run.stderr
    project = copy_project(tmp_path / "q")
    edit_yaml(project / "services/web/prod.yaml", lambda d: d.update(namespace="pulumi-operator"))
    run = stacks(project)
    assert_clean(run, [], codes=(1,))
    assert "service `web`" in run.stderr and "pulumi-operator" in run.stderr
    set_operator_namespace(project, "prod", "operators")
    found = objects("prod", project=project)  # elsewhere: fine
    assert {o["metadata"]["namespace"] for o in found if o["kind"] == "Role"}.isdisjoint(
        {"operators"})


def test_bad_input_is_one_clean_message(tmp_path):
    for args in (("--env", "prd"), ("--env", "prod\n")):
        run = cli("operator", "stacks", "--project-dir", str(REPO), *ARGS, *args)
        assert_clean(run, [], codes=(1,))
        assert "Fix: use one of: dev, prod, staging" in run.stderr
    project = copy_project(tmp_path / "p")
    edit_yaml(project / "services/api/prod.yaml", lambda d: d.update(app_schema="nope"))
    run = cli("operator", "stacks", "--env", "prod", "--project-dir", str(project), *ARGS)
    assert_clean(run, [], codes=(1,))
    assert "services/api" in run.stderr and "Fix:" in run.stderr


def planned_logins(project: Path, env: str) -> dict[str, dict]:
    """Each Kubernetes auth login role the platform stack plans for a deployer -> its inputs
    (read from the offline plan, not from the component's functions)."""
    return {r.inputs["roleName"]: r.inputs for r in run_plan(project, env).resources
            if r.type == "vault:kubernetes/authBackendRole:AuthBackendRole"
            and DEPLOY_RIGHTS in (r.parent or "")}


def _hcl_strings(text: str) -> dict[str, str]:
    """`key = "value"` pairs of the agent's configuration (its values are JSON strings)."""
    return {k: json.loads(v) for k, v in re.findall(r'^\s*(\w+) = ("(?:[^"\\]|\\.)*")$', text, re.M)}


def _mounts(container: dict, volumes: dict[str, dict]) -> dict[str, tuple[str, dict]]:
    """mount path -> (volume name, volume) of a container."""
    return {m["mountPath"]: (m["name"], volumes[m["name"]]) for m in container["volumeMounts"]}


def assert_workspaces_log_in_as_planned(project: Path, env: str, *extra: str) -> int:
    """Each shard's workspace logs in to Vault exactly as its planned login role demands: the
    role and mount, a projected token of the Stack's own account for the role's audience, in
    the namespace the role binds; the provider reads the Vault token the agent writes. Returns
    how many workspaces log in."""
    found = objects(env, *extra, project=project)
    logins = planned_logins(project, env)
    config_maps = {o["metadata"]["name"]: o for o in found if o["kind"] == "ConfigMap"}
    shards = [o for o in found if o["kind"] == "Stack" and "prerequisites" in o["spec"]]
    checked = 0
    for stack in shards:
        spec, name = stack["spec"], stack["metadata"]["name"]
        role = logins.get(ownership.deploy_login_role(name))
        if role is None:  # no login planned: the workspace is not told to use one
            assert "workspaceTemplate" not in spec and "config" not in spec
            continue
        pod = spec["workspaceTemplate"]["spec"]["podTemplate"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        [agent] = pod["initContainers"]
        assert agent["restartPolicy"] == "Always"  # a sidecar that outlives the init phase
        [program] = [c for c in pod["containers"] if c["name"] == "pulumi"]
        [agent_config] = [v["configMap"]["name"] for v in volumes.values() if "configMap" in v]
        config_map = config_maps[agent_config]
        assert config_map["metadata"]["namespace"] == stack["metadata"]["namespace"]
        hcl = config_map["data"]["agent.hcl"]
        agent_mounts = _mounts(agent, volumes)
        config_dir = next(p for p, (_, v) in agent_mounts.items() if "configMap" in v)
        assert f"-config={config_dir}/agent.hcl" in agent["command"]
        settings_ = _hcl_strings(hcl)
        # the role and mount the platform stack plans
        assert settings_["role"] == role["roleName"]
        assert settings_["mount_path"] == f"auth/{role['backend']}"
        assert 'method "kubernetes"' in hcl
        # the token it logs in with: projected for the Stack's account, the role's audience
        token_dir, token_file = settings_["token_path"].rsplit("/", 1)
        _, projected = agent_mounts[token_dir]
        [source] = projected["projected"]["sources"]
        token = source["serviceAccountToken"]
        assert token["path"] == token_file and token["audience"] == role["audience"]
        assert 600 <= token["expirationSeconds"] <= 3600
        assert role["boundServiceAccountNames"] == [spec["serviceAccountName"]]
        assert role["boundServiceAccountNamespaces"] == [stack["metadata"]["namespace"]]
        # the program gets the Vault token only, never the account's projected token
        sink_dir, sink_file = settings_["path"].rsplit("/", 1)
        program_mounts = _mounts(program, volumes)
        assert program_mounts[sink_dir][0] == agent_mounts[sink_dir][0]
        assert all("projected" not in v for _, v in program_mounts.values())
        assert spec["config"] == {"vault:authLoginTokenFile": {"filename": settings_["path"]}}
        assert agent["startupProbe"]["exec"]["command"][-1] == settings_["path"]
        assert sink_file
        checked += 1
    assert checked == len([r for r in logins if r.startswith("configplane_deploy_")])
    return checked


@pytest.mark.parametrize("env", environments(REPO))
def test_each_shard_workspace_logs_in_to_vault_as_its_planned_role_demands(env):
    shards = [s for s in environment_stacks(REPO, env) if s.kind == "shard"]
    assert assert_workspaces_log_in_as_planned(REPO, env) == len(shards)


def test_without_a_planned_login_no_workspace_is_told_to_log_in(tmp_path):
    # deploy roles made outside configplane and no cluster issuer: no Kubernetes login planned
    project = copy_project(tmp_path / "p")
    for service in ("api", "worker"):
        shutil.rmtree(project / "services" / service)
    edit_yaml(project / "Pulumi.dev.yaml",
              lambda d: d["config"]["configplane:platform"]["aws"].pop("eks_oidc_issuer"))
    extra = ("--role-arn", "arn:aws:iam::{account}:role/own-{stack}")
    assert planned_logins(project, "dev") == {}
    assert assert_workspaces_log_in_as_planned(project, "dev", *extra) == 0
    assert not [o for o in objects("dev", *extra, project=project) if o["kind"] == "ConfigMap"]


@pytest.mark.parametrize("image", ["", "hashicorp/vault:1 x", "vault\n", "a\tb"])
def test_a_vault_agent_image_that_is_no_reference_is_one_clean_message(image):
    run = stacks_cli("dev", "--vault-agent-image", image)
    assert_clean(run, [], codes=(1,))
    assert run.stdout == "" and "--vault-agent-image" in run.stderr and "Fix:" in run.stderr
