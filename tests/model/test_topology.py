"""The fleet's stacks (configplane.model.topology): names, the shard of each service, bounds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from configplane import contract, ownership
from configplane.model import (
    Topology,
    TopologyError,
    environment_stacks,
    environment_topology,
    environments,
    is_stack_name,
    related_environments,
    service_stacks,
    stack_role,
    topology_problems,
)
from configplane.validation import load_or_issues
from tests.projects import REPO, copy_project
from tests.security.conftest import assert_clean, cli, edit_yaml

OWNERS = st.from_regex(contract.OWNER.strip("^$"), fullmatch=True)
LABELS = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)


@given(st.lists(OWNERS, max_size=3), st.sampled_from(["dev", "prod", "a.b_c-1"]))
def test_a_shard_is_a_label_and_its_stack_a_valid_stack_name(owners, environment):
    shard = ownership.team_shard(owners)
    assert ownership.is_service_name(shard) and len(shard) <= 40
    assert is_stack_name(ownership.shard_stack_name(environment, shard))
    assert ownership.shard_of_stack(ownership.shard_stack_name(environment, shard),
                                    environment) == shard


@given(st.lists(OWNERS, min_size=1, max_size=3), st.lists(OWNERS, max_size=3))
def test_the_first_owner_decides_the_shard(owners, others):
    assert ownership.team_shard(owners + others) == ownership.team_shard(owners[:1])


@given(st.lists(LABELS, min_size=1, max_size=4, unique=True), LABELS)
def test_a_stack_name_has_one_role(envs, shard):
    """Every environment's own name is its platform stack; `<env>-<shard>` is the shard of
    the longest environment it extends, and the role names that stack back."""
    for env in envs:
        assert stack_role(REPO, env, envs).kind == "platform"
        role = stack_role(REPO, f"{env}-{shard}", envs)
        if f"{env}-{shard}" not in envs:
            assert role.name == f"{env}-{shard}" and role.kind == "shard"
            assert f"{role.environment}-{role.shard}" == role.name
            assert len(role.environment) >= len(env)


def test_the_sample_environments_are_a_platform_stack_and_one_shard_per_team():
    assert environments(REPO) == ("dev", "prod", "staging")  # shard stack files are not
    for env in environments(REPO):
        names = [s.name for s in environment_stacks(REPO, env)]
        assert names == [env, f"{env}-api-team", f"{env}-payments-team", f"{env}-web-team"]
        assert {k: s.name for k, s in service_stacks(REPO, env).items()} == {
            "api": f"{env}-api-team", "web": f"{env}-web-team", "worker": f"{env}-payments-team"}
    assert stack_role(REPO, "qa").kind == "platform"  # its missing file is the reader's to report
    with pytest.raises(TopologyError, match="not a stack name"):
        stack_role(REPO, "q a")


def test_owners_resolve_through_the_layers_and_fall_back_to_the_platform(tmp_path):
    project = copy_project(tmp_path / "p")
    edit_yaml(project / "services/api/prod.yaml", lambda d: d.update(owners=["@shop/orders"]))
    edit_yaml(project / "services/web/service.yaml", lambda d: d.pop("owners"))
    (project / "services/worker/dev.yaml").write_text("null\n")
    assert {k: s.name for k, s in service_stacks(project, "prod").items()} == {
        "api": "prod-orders", "web": "prod-platform", "worker": "prod-payments-team"}
    assert "worker" not in service_stacks(project, "dev")


def shards_of(project, env="prod", **settings):
    def change(d):
        d["config"]["configplane:platform"]["shards"] = settings
    edit_yaml(project / f"Pulumi.{env}.yaml", change)
    return environment_topology(project, env)


def test_the_platform_overrides_a_team_and_a_service(tmp_path):
    project = copy_project(tmp_path / "p")
    topology = shards_of(project, teams={"@shop/web-team": "storefront"},
                         services={"worker": "storefront"})
    assert topology.shards() == {"api-team": ("api",), "storefront": ("web", "worker")}
    # the dev environment keeps the fleet-wide setting (Pulumi.yaml)
    assert set(environment_topology(project, "dev").shards()) == {"api-team", "payments-team",
                                                                  "web-team"}


def test_an_unsplit_environment_is_one_stack(tmp_path):
    project = copy_project(tmp_path / "p")
    edit_yaml(project / "Pulumi.yaml",
              lambda d: d["config"]["configplane:defaults"]["value"]["platform"].pop("shards"))
    topology = environment_topology(project, "prod")
    assert not topology.sharded and [s.name for s in topology.stacks()] == ["prod"]
    assert topology.services_of(topology.platform) == ("api", "web", "worker")


@given(st.integers(min_value=1, max_value=4))
def test_validate_refuses_a_shard_past_the_bound_and_says_how_to_split(bound):
    topology = environment_topology(REPO, "prod")
    big = type(topology)(topology.environment, True,
                         {f"svc{i}": "one" for i in range(bound + 1)}, bound)
    [(path, file, message)] = topology_problems(big, "Pulumi.prod.yaml")
    assert (path, file) == ("platform.shards", "Pulumi.prod.yaml")
    assert f"holds {bound + 1} services; the bound is {bound}" in message
    assert "Fix: split it" in message and "platform.shards.services" in message
    ok = type(topology)(topology.environment, True, {f"svc{i}": "one" for i in range(bound)},
                        bound)
    assert topology_problems(ok, "Pulumi.prod.yaml") == []


def test_validate_reports_the_bound_with_its_file(tmp_path):
    project = copy_project(tmp_path / "p")
    shards_of(project, max_services=1, teams={"@shop/web-team": "api-team"})
    _, issues = load_or_issues(project, "prod")
    assert [(i.path, i.where) for i in issues] == [("platform.shards", "Pulumi.prod.yaml")]
    assert "shard `api-team` holds 2 services; the bound is 1" in issues[0].message


def test_a_shard_named_like_another_environment_is_refused(tmp_path):
    project = copy_project(tmp_path / "p")
    (project / "Pulumi.prod-eu.yaml").write_text((project / "Pulumi.prod.yaml").read_text())
    edit_yaml(project / "Pulumi.prod-eu.yaml",
              lambda d: d["config"]["configplane:platform"].update(environment="prod-eu"))
    shards_of(project, services={"api": "eu"})
    _, issues = load_or_issues(project, "prod")
    assert any("shard `eu` of environment `prod`" in i.message
               and "the platform stack of environment `prod-eu` (Pulumi.prod-eu.yaml)"
               in i.message and "both take the stack `prod-eu`" in i.message for i in issues)
    # and from the other environment's side (reported beside its own schema problems)
    _, issues = load_or_issues(project, "prod-eu")
    assert any(i.path == "(stack)" and "Pulumi.prod.yaml: platform.shards.services.api"
               in i.message for i in issues)


def _copy_environment(project, name: str, shards: dict) -> None:
    """A new environment `name`, the prod one's settings with its own shards."""
    (project / f"Pulumi.{name}.yaml").write_text((project / "Pulumi.prod.yaml").read_text())

    def change(d):
        d["config"]["configplane:platform"].update(environment=name, shards=shards)
    edit_yaml(project / f"Pulumi.{name}.yaml", change)


def test_validate_refuses_two_environments_whose_shards_take_one_stack_name(tmp_path):
    # prod's shard `api-team` (the api team's) and prod-api's shard `team` are both
    # `prod-api-team`: one state, one lock, one GitHub environment for two deployers
    project = copy_project(tmp_path / "p")
    _copy_environment(project, "prod-api", {"services": {"api": "team"}})
    run = cli("validate", "--stack", "prod", "--project-dir", str(project))
    assert_clean(run, [], codes=(1,))
    assert "prod-api-team" in run.stdout and "Pulumi.prod-api.yaml" in run.stdout
    _, issues = load_or_issues(project, "prod")
    # (the shard file Pulumi.prod-api-team.yaml is now ambiguous too: its secure value is
    # taken for prod-api's, the other problem reported)
    [issue] = [i for i in issues if "both take the" in i.message]
    assert (issue.path, issue.where) == ("services.api.owners", "Pulumi.prod.yaml")
    assert "shard `api-team` of environment `prod` (Pulumi.prod.yaml: services.api.owners)" \
        in issue.message
    assert "shard `team` of environment `prod-api` (Pulumi.prod-api.yaml: " \
        "platform.shards.services.api)" in issue.message
    assert "Fix: rename one of the shards" in issue.message
    _, issues = load_or_issues(project, "prod-api")
    assert any(i.path == "platform.shards.services.api" and i.where == "Pulumi.prod-api.yaml"
               and "Pulumi.prod.yaml: services.api.owners" in i.message for i in issues)
    # renamed: no collision left
    _copy_environment(project, "prod-api", {"services": {"api": "eu-team"}})
    assert not [i for i in load_or_issues(project, "prod")[1] if "both take the" in i.message]


def test_validate_refuses_environments_whose_github_environments_differ_only_in_case(tmp_path):
    project = copy_project(tmp_path / "p")
    _copy_environment(project, "Prod-web-team", {"services": {}})  # an unsplit environment too
    _, issues = load_or_issues(project, "prod")
    [issue] = [i for i in issues if "GitHub" in i.message]
    assert "GitHub environment `prod-web-team` (GitHub ignores case: `Prod-web-team`)" \
        in issue.message
    assert "Pulumi.Prod-web-team.yaml" in issue.message


ENV_PARTS = st.sampled_from(["a", "b", "c", "A", "b-c", "preview", "approval"])
SHARD_NAMES = st.sampled_from(["b", "c", "b-c", "c-d", "preview", "approval", "x-preview"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(ENV_PARTS, min_size=1, max_size=3).map("-".join), min_size=1,
                max_size=4, unique=True),
       st.data())
def test_validate_refuses_exactly_when_two_stacks_of_the_fleet_share_a_name(envs, data):
    """Over generated environments and shards: an environment is refused exactly when one of
    its stacks takes a Pulumi stack name or a GitHub environment (compared regardless of case,
    as GitHub does) that another stack of the fleet takes; each refusal names both files.
    validate reads only the environments related_environments picks: the oracle reads all."""
    topologies = {}
    for env in envs:
        shards = data.draw(st.lists(SHARD_NAMES, max_size=3, unique=True), label=env)
        topologies[env] = Topology(env, bool(shards),
                                   {f"svc{i}": shard for i, shard in enumerate(shards)})
    names: dict[str, set[tuple[str, str]]] = {}  # name, regardless of case -> (env, stack)
    for env, topology in topologies.items():
        for stack in topology.stacks():
            taken = [stack.name] + ([f"{env}-preview", f"{env}-approval"]
                                    if stack.kind == "platform" else [])
            for name in taken:
                names.setdefault(name.lower(), set()).add((env, stack.name))
    clashing = {held for holders in names.values() if len(holders) > 1 for held in holders}
    for env, topology in topologies.items():
        related = [topologies[e] for e in related_environments(env, envs)]
        problems = [p for p in topology_problems(topology, f"Pulumi.{env}.yaml", envs, related)
                    if "both take the" in p[2]]
        mine = {held for held in clashing if held[0] == env}
        assert bool(problems) == bool(mine), (env, mine, problems)
        for _, file, message in problems:
            assert file == f"Pulumi.{env}.yaml" and "Fix:" in message
            assert message.count("Pulumi.") >= 2  # this environment's file and the other's
        # every clashing stack of this environment is named in a refusal
        for _, stack in mine:
            assert any(f"`{stack}`" in m or f"`{stack.lower()}`" in m
                       or f"`{stack.removeprefix(env + '-')}`" in m for _, _, m in problems)


def test_a_secure_value_in_the_wrong_stack_file_is_refused(tmp_path):
    project = copy_project(tmp_path / "p")
    # the api team's key moved into the web team's shard file: web's stack cannot use it,
    # api's stack cannot decrypt it
    (project / "Pulumi.prod-web-team.yaml").write_text(
        (project / "Pulumi.prod-api-team.yaml").read_text())
    (project / "Pulumi.prod-api-team.yaml").unlink()
    _, issues = load_or_issues(project, "prod")
    [issue] = issues
    assert (issue.path, issue.where) == ("services.api.secrets.DATABASE_PASSWORD.config_key",
                                         "Pulumi.prod-web-team.yaml")
    assert ("pulumi config cp --stack prod-web-team --dest prod-api-team "
            "configplane:apiDbPassword") in issue.message


def test_a_shard_file_holds_only_secure_values(tmp_path):
    project = copy_project(tmp_path / "p")
    edit_yaml(project / "Pulumi.prod-api-team.yaml",
              lambda d: d["config"].update({"aws:region": "eu-west-1"}))
    _, issues = load_or_issues(project, "prod-api-team")
    assert [(i.path, i.where) for i in issues] == [("config.aws:region",
                                                    "Pulumi.prod-api-team.yaml")]
    assert "written once in the environment's stack file" in issues[0].message
