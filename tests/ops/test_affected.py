"""`configplane affected`: changed files mapped to stacks, on real git repositories made in tmp
(committed, staged, unstaged and untracked changes; deletions, renames, owner changes, odd
paths), and the mapping's laws as properties of the pure scope function."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from configplane import ownership
from configplane.model import environment_stacks, environments
from configplane.ops import scope_of
from configplane.ops.affected import NO_STACK, TreeTopology, resolve
from tests.offline.test_compare import git
from tests.projects import REPO, copy_project
from tests.security.conftest import assert_clean, cli, edit_yaml

ENVS = ("dev", "prod", "staging")
# The sample's shards: api-team owns api, web-team web, payments-team worker.
TEAM = {"api": "api-team", "web": "web-team", "worker": "payments-team"}


def make_repo(target: Path) -> Path:
    copy_project(target)
    (target / "docs").mkdir()
    (target / "docs" / "guide.md").write_text("# guide\n")
    git(target, "init", "-q", "-b", "main")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "base")
    git(target, "checkout", "-q", "-b", "change")
    return target


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def affected(repo: Path, *extra: str, base: str = "main") -> dict:
    run = cli("affected", "--base", base, "--project-dir", str(repo), "--format", "json", *extra)
    assert run.code == 0, run.text
    return json.loads(run.stdout)


def stacks(repo: Path, *extra: str, base: str = "main") -> set[str]:
    return {s["stack"] for s in affected(repo, *extra, base=base)["stacks"]}


def every_stack(project: Path) -> set[str]:
    return {s.name for e in environments(project) for s in environment_stacks(project, e)}


def commit(repo: Path, message: str = "change") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


# --- one service, one shard -------------------------------------------------------------------


def test_an_overlay_change_reaches_one_shard_in_one_environment(repo):
    edit_yaml(repo / "services/api/dev.yaml", lambda d: d["config"].update(LOG_LEVEL="warn"))
    commit(repo)
    result = affected(repo)
    assert [s["stack"] for s in result["stacks"]] == ["dev-api-team"]
    assert result["stacks"][0]["paths"] == ["services/api/dev.yaml"]
    assert result["commit"] == git(repo, "rev-parse", "main")


def test_a_base_file_change_reaches_the_service_shard_in_every_environment(repo):
    edit_yaml(repo / "services/web/service.yaml", lambda d: d["config"].update(PORT=3001))
    assert stacks(repo) == {f"{e}-web-team" for e in ENVS}  # uncommitted counts too


def test_a_one_service_change_previews_one_shard_per_environment_for_every_service(repo):
    all_stacks = every_stack(repo)
    for service, team in TEAM.items():
        (repo / "services" / service / "notes.txt").write_text("untracked\n")
        found = stacks(repo)
        assert found == {f"{e}-{team}" for e in ENVS}, service
        assert found < all_stacks  # a strict part of the fleet
        (repo / "services" / service / "notes.txt").unlink()


def test_staged_unstaged_committed_and_untracked_changes_all_count(repo):
    edit_yaml(repo / "services/api/dev.yaml", lambda d: d["config"].update(LOG_LEVEL="warn"))
    commit(repo)  # committed
    edit_yaml(repo / "services/web/prod.yaml", lambda d: d["config"].update(LOG_LEVEL="info"))
    git(repo, "add", "services/web/prod.yaml")  # staged
    edit_yaml(repo / "services/worker/staging.yaml", lambda d: d.update(config={"X": "1"}))
    (repo / "services/api/extra.yaml").write_text("x: 1\n")  # untracked: an unknown overlay
    assert stacks(repo) == {"dev-api-team", "prod-web-team", "staging-payments-team",
                            "staging-api-team", "prod-api-team"}


def test_a_change_undone_in_the_working_tree_reaches_nothing(repo):
    path = repo / "services/api/dev.yaml"
    original = path.read_text()
    path.write_text(original + "# a comment\n")
    commit(repo)
    path.write_text(original)
    assert affected(repo)["stacks"] == []


def test_the_base_is_where_head_branched_off(repo):
    # main moves on after the branch: its change is not this branch's
    git(repo, "checkout", "-q", "main")
    edit_yaml(repo / "services/web/dev.yaml", lambda d: d["config"].update(LOG_LEVEL="info"))
    commit(repo, "on main")
    git(repo, "checkout", "-q", "change")
    edit_yaml(repo / "services/api/prod.yaml", lambda d: d["config"].update(LOG_LEVEL="info"))
    commit(repo)
    assert stacks(repo) == {"prod-api-team"}


# --- deletions, renames, owners ---------------------------------------------------------------


# A service that enters, leaves or changes shards also reaches its environment's platform
# stack: the deploy rights there name each shard's services (docs/fleet.md).


def test_a_deleted_service_still_maps_to_its_old_shard(repo):
    shutil.rmtree(repo / "services/worker")
    commit(repo)
    assert stacks(repo) == {f"{e}-payments-team" for e in ENVS} | set(ENVS)


def test_a_new_service_reaches_its_shard_and_the_platform_stacks_that_grant_it(repo):
    shutil.copytree(repo / "services/web", repo / "services/shop")
    for overlay in (repo / "services/shop").glob("*.yaml"):
        if overlay.name != "service.yaml":
            overlay.unlink()
    result = affected(repo)
    assert {s["stack"] for s in result["stacks"]} == {f"{e}-web-team" for e in ENVS} | set(ENVS)
    assert [s["kind"] for s in result["stacks"]][:2] == ["platform", "shard"]  # platform first


def test_a_service_removed_from_one_environment_maps_to_its_old_shard_there(repo):
    (repo / "services/web/prod.yaml").write_text("null\n")
    assert stacks(repo) == {"prod-web-team", "prod"}


def test_an_owner_change_reaches_the_old_and_the_new_shard(repo):
    edit_yaml(repo / "services/api/service.yaml", lambda d: d.update(owners=["@shop/orders"]))
    assert stacks(repo) == {f"{e}-{t}" for e in ENVS for t in ("api-team", "orders")} | set(ENVS)


def test_a_service_the_platform_moves_reaches_the_shard_it_names(repo):
    """affected asks the real topology: platform.shards.services decides before the owners."""
    def move(d):
        shards = d["config"]["configplane:defaults"]["value"]["platform"]["shards"]
        shards.setdefault("services", {})["web"] = "storefront"
    edit_yaml(repo / "Pulumi.yaml", move)
    commit(repo, "move web")
    (repo / "services/web/notes.txt").write_text("untracked\n")
    assert stacks(repo, base="HEAD") == {f"{e}-storefront" for e in ENVS}


def test_an_unsplit_environment_is_its_one_stack(repo):
    """Without platform.shards an environment is one stack: a service's change reaches it."""
    edit_yaml(repo / "Pulumi.yaml", lambda d: d["config"]["configplane:defaults"]["value"][
        "platform"].pop("shards"))
    commit(repo, "one stack each")
    (repo / "services/api/notes.txt").write_text("untracked\n")
    result = affected(repo, base="HEAD")
    assert [(s["stack"], s["kind"]) for s in result["stacks"]] == [(e, "platform") for e in
                                                                    sorted(ENVS)]


def test_a_renamed_service_reaches_both_names(repo):
    shutil.move(repo / "services/web", repo / "services/storefront")
    edit_yaml(repo / "services/storefront/service.yaml",
              lambda d: d.update(owners=["@shop/storefront-team"]))
    commit(repo)
    assert stacks(repo) == {f"{e}-{t}" for e in ENVS
                            for t in ("web-team", "storefront-team")} | set(ENVS)


def test_a_new_service_that_does_not_read_is_refused_naming_its_file(repo):
    (repo / "services/billing").mkdir()
    (repo / "services/billing/service.yaml").write_text("owners: [@shop/billing\n")
    run = cli("affected", "--base", "main", "--project-dir", str(repo))
    assert_clean(run, [], codes=(1,))
    assert "services/billing/service.yaml" in run.stderr and "Fix:" in run.stderr


# --- platform files ---------------------------------------------------------------------------


def test_a_stack_file_reaches_its_platform_stack_and_its_shards_only(repo):
    edit_yaml(repo / "Pulumi.prod.yaml", lambda d: d["config"].update({"aws:region": "eu-west-2"}))
    found = affected(repo)["stacks"]
    assert {s["stack"] for s in found} == {s.name for s in environment_stacks(repo, "prod")}
    assert found[0] == {"stack": "prod", "environment": "prod", "kind": "platform",
                        "shard": None, "paths": ["Pulumi.prod.yaml"]}


@pytest.mark.parametrize("path", ["Pulumi.yaml", "services/defaults.yaml", "__main__.py",
                                  "components/vault.py", "schemas/stack.schema.json",
                                  "requirements.txt", "lambdas/rotation/handler.py"])
def test_what_every_stack_reads_reaches_every_stack(repo, path):
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a") as f:
        f.write("\n# touched\n")
    assert stacks(repo) == every_stack(repo)


def test_a_shard_stack_file_reaches_that_shard_only(repo):
    # a shard's own stack file (no platform settings) is no environment: it configures its stack
    (repo / "Pulumi.prod-api-team.yaml").write_text("config:\n  aws:region: eu-west-1\n")
    assert environments(repo) == ("dev", "prod", "staging")
    assert stacks(repo) == {"prod-api-team"}
    (repo / "Pulumi.prod-nobody.yaml").write_text("config: {}\n")  # no such shard
    assert stacks(repo) == {s.name for s in environment_stacks(repo, "prod")}


def test_a_new_environment_reaches_its_stacks_and_a_removed_one_its_old_stacks(repo):
    shutil.copy(repo / "Pulumi.dev.yaml", repo / "Pulumi.qa.yaml")
    (repo / "Pulumi.staging.yaml").unlink()
    old = {s.name for s in environment_stacks(REPO, "staging")}
    found = stacks(repo)
    assert found == {s.name for s in environment_stacks(repo, "qa")} | old
    assert "qa-api-team" in found and "staging-web-team" in found


def test_documents_and_tests_reach_no_stack(repo):
    (repo / "docs/guide.md").write_text("# changed\n")
    (repo / "tests").mkdir()
    (repo / "tests/test_x.py").write_text("")
    (repo / "README.md").write_text("readme\n")
    result = affected(repo)
    assert result["stacks"] == []
    assert {p["path"]: p["scope"] for p in result["paths"]} == {
        "docs/guide.md": "none", "tests/test_x.py": "none", "README.md": "none"}
    matrix = cli("affected", "--base", "main", "--project-dir", str(repo), "--format",
                 "github-matrix")
    assert (matrix.code, json.loads(matrix.stdout)) == (0, {"include": []})


# --- names and paths --------------------------------------------------------------------------


def test_odd_paths_are_read_whole_and_mapped(repo):
    (repo / "services/api/new\nline.yaml").write_text("x: 1\n")
    (repo / "docs/sp ace \u00e9\u2028.md").write_text("x\n")
    os.makedirs(repo / "docs" / os.fsdecode(b"bad\xffbyte"))
    (repo / "docs" / os.fsdecode(b"bad\xffbyte") / "f.md").write_text("x\n")
    result = affected(repo)
    paths = {p["path"]: p["scope"] for p in result["paths"]}
    assert paths["services/api/new\nline.yaml"] == "service"
    assert paths["docs/sp ace \u00e9\u2028.md"] == "none"
    assert paths["docs/bad\\xffbyte/f.md"] == "none"  # not UTF-8: shown escaped
    assert {s["stack"] for s in result["stacks"]} == {f"{e}-api-team" for e in ENVS}
    table = cli("affected", "--base", "main", "--project-dir", str(repo))
    assert_clean(table, [], codes=(0,))
    assert "new\\nline.yaml" in table.stdout  # shown on one line, escaped


@pytest.mark.parametrize("name", ["API", "web ", "-web", "web\n", "we_b", "a" * 64, "a.b", "kube_x"])
def test_a_directory_not_named_like_a_service_reaches_every_stack(repo, name):
    (repo / "services" / name).mkdir(exist_ok=True)
    (repo / "services" / name / "service.yaml").write_text("owners: ['@shop/x']\n")
    result = affected(repo)
    assert {s["stack"] for s in result["stacks"]} == every_stack(repo), name
    [entry] = [p for p in result["paths"] if p["path"].startswith("services/")]
    assert entry["scope"] == "every"


def test_a_project_in_a_subdirectory_counts_only_its_own_files(tmp_path):
    outer = tmp_path / "outer"
    copy_project(outer / "infra")
    (outer / "app").mkdir()
    (outer / "app" / "main.go").write_text("package main\n")
    git(outer, "init", "-q", "-b", "main")
    commit(outer, "base")
    (outer / "app" / "main.go").write_text("package app\n")
    edit_yaml(outer / "infra/services/api/dev.yaml", lambda d: d["config"].update(LOG_LEVEL="x"))
    result = affected(outer / "infra")
    assert [p["path"] for p in result["paths"]] == ["services/api/dev.yaml"]
    assert [s["stack"] for s in result["stacks"]] == ["dev-api-team"]


@pytest.mark.parametrize("ref", ["", "-x", "--output=/tmp/x", "nope", "main\n", "main^{tree}"])
def test_a_bad_base_is_one_clean_message(repo, ref):
    run = cli("affected", "--base", ref, "--project-dir", str(repo))
    assert_clean(run, [], codes=(1,))
    assert run.stderr.startswith("error: --base") and "Fix:" in run.stderr


def test_base_and_all_are_one_or_the_other(repo):
    for args in ((), ("--base", "main", "--all")):
        run = cli("affected", "--project-dir", str(repo), *args)
        assert_clean(run, [], codes=(1,))
        assert "--base" in run.stderr and "--all" in run.stderr


# --- outputs ----------------------------------------------------------------------------------


def test_all_lists_every_stack_platform_first_and_filters_whole_names(repo):
    run = cli("affected", "--all", "--project-dir", str(repo), "--format", "github-matrix")
    matrix = json.loads(run.stdout)["include"]
    assert {m["stack"] for m in matrix} == every_stack(repo)
    for env in ENVS:
        mine = [m for m in matrix if m["environment"] == env]
        assert mine[0] == {"stack": env, "environment": env, "kind": "platform", "shard": None,
                           "github_environment": env}
        assert all(m["kind"] == "shard" and m["stack"] == f"{env}-{m['shard']}"
                   == m["github_environment"] for m in mine[1:])
    run = cli("affected", "--all", "--project-dir", str(repo), "--environment", "prod",
              "--kind", "shard", "--format", "github-matrix")
    assert {m["stack"] for m in json.loads(run.stdout)["include"]} == {
        f"prod-{t}" for t in TEAM.values()}
    for env in ("pro", "prod ", "Prod", "prod\n"):
        bad = cli("affected", "--all", "--project-dir", str(repo), "--environment", env)
        assert_clean(bad, [], codes=(1,))
        assert "Fix: use one of: dev, prod, staging" in bad.stderr


def test_the_matrix_and_the_json_list_the_same_stacks(repo):
    edit_yaml(repo / "Pulumi.dev.yaml", lambda d: d["config"].update({"aws:region": "x"}))
    (repo / "services/web/notes.txt").write_text("x\n")
    listed = [s["stack"] for s in affected(repo)["stacks"]]
    run = cli("affected", "--base", "main", "--project-dir", str(repo), "--format",
              "github-matrix")
    assert run.stdout.count("\n") == 1  # one line, for $GITHUB_OUTPUT
    assert [m["stack"] for m in json.loads(run.stdout)["include"]] == listed



def test_the_json_names_the_services_each_stack_holds_in_the_working_tree(repo):
    """`--services`: what plan-diff.yml passes to `plan --compare --service`: a shard's own services, none
    in a split environment's platform stack or in a stack only the base has; every service in
    an environment's one stack. Only asked for, in the JSON."""
    edit_yaml(repo / "Pulumi.yaml", lambda d: d["config"]["configplane:defaults"]["value"][
        "platform"]["shards"].update(services={"web": "api-team"}))  # web-team's shard empties
    held = {s["stack"]: s["services"] for s in affected(repo, "--services")["stacks"]}
    assert held == {stack: services for e in ENVS for stack, services in (
        (e, []), (f"{e}-api-team", ["api", "web"]), (f"{e}-payments-team", ["worker"]),
        (f"{e}-web-team", []))}
    run = cli("affected", "--all", "--project-dir", str(repo), "--format", "json",
              "--environment", "prod", "--services")
    assert {s["stack"]: s["services"] for s in json.loads(run.stdout)["stacks"]} == {
        "prod": [], "prod-api-team": ["api", "web"], "prod-payments-team": ["worker"]}
    assert all("services" not in s for s in affected(repo)["stacks"])  # only when asked
    run = cli("affected", "--all", "--project-dir", str(repo), "--format", "github-matrix",
              "--services")
    assert run.code == 1 and "Fix: add --format json" in run.text
    edit_yaml(repo / "Pulumi.yaml", lambda d: d["config"]["configplane:defaults"]["value"][
        "platform"].pop("shards"))
    run = cli("affected", "--all", "--project-dir", str(repo), "--format", "json", "--services")
    assert {s["stack"]: s["services"] for s in json.loads(run.stdout)["stacks"]} == {
        e: sorted(TEAM) for e in ENVS}

def test_a_matrix_past_githubs_limit_is_refused_with_the_split_to_use(repo):
    for i in range(86):  # 86 teams x 3 environments + 3 platform stacks = 261 stacks
        target = repo / "services" / f"web-{i:03d}"
        shutil.copytree(repo / "services/web", target)
        edit_yaml(target / "service.yaml", lambda d, i=i: d.update(owners=[f"@shop/t-{i:03d}"]))
    run = cli("affected", "--all", "--project-dir", str(repo), "--format", "github-matrix")
    assert_clean(run, [], codes=(1,))
    assert "at most 256 jobs" in run.stderr and "--environment" in run.stderr
    per_env = cli("affected", "--all", "--project-dir", str(repo), "--format", "github-matrix",
                  "--environment", "prod")
    assert len(json.loads(per_env.stdout)["include"]) == 1 + 86 + 3


# --- the laws of the mapping ------------------------------------------------------------------

SEGMENT = st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)),
                  min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))
PATHS = st.lists(SEGMENT, min_size=1, max_size=4).map("/".join)
SERVICE = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)


@given(PATHS)
def test_only_the_known_inert_paths_reach_nothing(path):
    scope = scope_of(path, ENVS)
    if scope.kind == "none":
        assert path in NO_STACK or any(path.startswith(p) for p in NO_STACK if p.endswith("/"))


@given(SERVICE, PATHS)
def test_a_file_in_a_service_directory_reaches_that_service(name, inner):
    scope = scope_of(f"services/{name}/{inner}", ENVS)
    assert (scope.kind, scope.service) == ("service", name)
    stem = inner[:-5] if inner.endswith(".yaml") else None
    assert scope.environment == (stem if stem in ENVS else None)


@given(SEGMENT, PATHS)
def test_a_directory_not_named_like_a_service_reaches_every_stack_property(name, inner):
    scope = scope_of(f"services/{name}/{inner}", ENVS)
    assert scope.kind == ("service" if ownership.is_service_name(name) else "every")


TREE = TreeTopology(REPO)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(
    PATHS, SERVICE.map(lambda s: f"services/{s}/service.yaml"),
    st.sampled_from([f"services/{s}/{e}.yaml" for s in TEAM for e in ENVS]
                    + [f"Pulumi.{e}.yaml" for e in ENVS] + ["docs/x.md", "Pulumi.yaml"])),
    max_size=6))
def test_the_stacks_of_a_change_are_the_union_of_the_stacks_of_its_files(paths):
    scopes = {p: scope_of(p, ENVS) for p in paths}
    together = {s.stack for s in resolve(scopes, [TREE])}
    apart = {s.stack for p, scope in scopes.items() for s in resolve({p: scope}, [TREE])}
    assert together == apart
    assert all(s.paths for s in resolve(scopes, [TREE]))  # every stack says why
