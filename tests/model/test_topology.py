"""The fleet's stacks (configplane.model.topology, provisional): names and the sample's shape."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from configplane import contract, ownership
from configplane.model import environment_stacks, environments, is_stack_name, service_stacks, shard_name
from tests.projects import REPO, copy_project
from tests.security.conftest import edit_yaml

OWNERS = st.from_regex(contract.OWNER.strip("^$"), fullmatch=True)


@given(st.lists(OWNERS, max_size=3), st.sampled_from(["dev", "prod", "a.b_c-1"]))
def test_a_shard_is_a_label_and_its_stack_a_valid_stack_name(owners, environment):
    shard = shard_name(owners)
    assert ownership.is_service_name(shard)
    assert is_stack_name(f"{environment}-{shard}")


@given(st.lists(OWNERS, min_size=1, max_size=3), st.lists(OWNERS, max_size=3))
def test_the_first_owner_decides_the_shard(owners, others):
    assert shard_name(owners + others) == shard_name(owners[:1])


def test_the_sample_environments_are_a_platform_stack_and_one_shard_per_team():
    assert environments(REPO) == ("dev", "prod", "staging")
    for env in environments(REPO):
        names = [s.name for s in environment_stacks(REPO, env)]
        assert names == [env, f"{env}-api-team", f"{env}-payments-team", f"{env}-web-team"]
        assert {k: s.name for k, s in service_stacks(REPO, env).items()} == {
            "api": f"{env}-api-team", "web": f"{env}-web-team", "worker": f"{env}-payments-team"}


def test_owners_resolve_through_the_layers_and_fall_back_to_the_platform(tmp_path):
    project = copy_project(tmp_path / "p")
    edit_yaml(project / "services/api/prod.yaml", lambda d: d.update(owners=["@shop/orders"]))
    edit_yaml(project / "services/web/service.yaml", lambda d: d.pop("owners"))
    (project / "services/worker/dev.yaml").write_text("null\n")
    assert {k: s.name for k, s in service_stacks(project, "prod").items()} == {
        "api": "prod-orders", "web": "prod-platform", "worker": "prod-payments-team"}
    assert "worker" not in service_stacks(project, "dev")
    (project / "Pulumi.bad name.yaml").write_text("config: {}\n")
    assert environments(project) == ("dev", "prod", "staging")
