"""`plan --compare`: real git repositories made in tmp, the base materialised from a commit
and planned with its own program and pack, the working tree beside it; and the comparison
itself (configplane.offline.compare) as a pure function of two snapshots."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from configplane.offline import (
    changed_paths,
    compare,
    run_plan,
    snapshot,
)
from configplane.ops import GitRefError, materialise, resolve_base
from tests.projects import REPO, copy_project
from tests.security.conftest import assert_clean, cli, edit_yaml

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, **GIT_ENV}).stdout.strip()


def make_repo(target: Path) -> Path:
    """The sample project (with its pack and the facts its links reach) committed in a new
    repository: the base of every comparison here."""
    copy_project(target)
    shutil.copytree(REPO / "policies", target / "policies", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (target / "configplane").mkdir()
    for link in (REPO / "policies").iterdir():  # the facts the pack's links reach
        if link.is_symlink() and link.resolve().parent == REPO / "configplane":
            shutil.copy(link.resolve(), target / "configplane" / link.resolve().name)
    git(target, "init", "-q", "-b", "main")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "base")
    return target


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def compare_json(repo: Path, *extra: str, ref: str = "main") -> dict:
    run = cli("plan", "--stack", "dev", "--project-dir", str(repo), "--compare", ref,
              "--format", "json", *extra)
    assert run.code == 0, run.text
    return json.loads(run.stdout)


def config_rows(diff: dict, service: str) -> list[dict]:
    return diff["services"][service]["config"]


# --- the scenarios ---------------------------------------------------------------------------


def test_a_one_key_change_shows_that_key_and_nothing_else(repo):
    edit_yaml(repo / "services/api/dev.yaml", lambda d: d["config"].update(LOG_LEVEL="warn"))
    run = cli("plan", "--stack", "dev", "--project-dir", str(repo), "--compare", "main",
              "--format", "markdown", "--no-policy")
    assert run.code == 0, run.text
    md = run.stdout
    assert re.findall(r"^#### .*$", md, re.M) == ["#### Service `api` (changed)"]
    assert "| `LOG_LEVEL` | `debug` | `warn` |" in md
    rows = [line for line in md.splitlines() if line.startswith("| `")]
    config_lines = [line for line in rows if line.count("|") == 4]  # key | old | new
    assert config_lines == ["| `LOG_LEVEL` | `debug` | `warn` |"]
    other_keys = {"PORT", "DATABASE_POOL_SIZE", "REQUEST_TIMEOUT_MS", "CORS_ALLOWED_ORIGINS"}
    assert not [k for k in other_keys if k in md]
    diff = compare_json(repo, "--no-policy")
    assert config_rows(diff, "api") == [{"key": "LOG_LEVEL", "old": "debug", "new": "warn"}]
    api = diff["services"]["api"]
    assert api["config_hash"]["old"] != api["config_hash"]["new"]
    assert (api["flags"], api["secrets"], api["tenants"]) == ([], [], {})
    # the hash-named ConfigMap gets a new name: a replacement; the Role naming it, an update
    assert {(r["op"], r["name"]) for r in api["resources"]} == {
        ("replace", "api-config-config"), ("update", "api-access-role")}
    assert diff["shared"]["resources"] == [] and list(diff["services"]) == ["api"]


def test_a_new_service_is_created_with_all_its_config(repo):
    shutil.copytree(repo / "services/worker", repo / "services/billing")

    def as_billing(document):  # a new team's service: worker's secure key stays worker's
        document.update(owners=["@shop/billing-team"])
        document["secrets"].pop("PAYMENTS_API_KEY")

    edit_yaml(repo / "services/billing/service.yaml", as_billing)
    diff = compare_json(repo, "--no-policy")
    billing = diff["services"]["billing"]
    assert billing["change"] == "created" and set(diff["services"]) == {"billing"}
    assert billing["config"] and all(r["old"] is None for r in billing["config"])
    assert billing["resources"] and {r["op"] for r in billing["resources"]} == {"create"}
    assert billing["config_hash"]["old"] is None


def test_a_removed_service_is_deleted(repo):
    shutil.rmtree(repo / "services/worker")
    diff = compare_json(repo, "--no-policy")
    worker = diff["services"]["worker"]
    assert worker["change"] == "deleted" and set(diff["services"]) == {"worker"}
    assert {r["op"] for r in worker["resources"]} == {"delete"}
    assert all(r["new"] is None for r in worker["config"])
    assert diff["summary"]["services_deleted"] == 1 and diff["summary"]["create"] == 0


def test_a_flag_percentage_change_shows_the_split(repo):
    def rollout(doc):
        doc.setdefault("flags", {}).setdefault("new-checkout", {})["rollout"] = {"percent": 50}

    before = yaml.safe_load((repo / "services/web/dev.yaml").read_text())
    assert before.get("flags", {}).get("new-checkout", {}).get("rollout", {}).get("percent") != 50
    edit_yaml(repo / "services/web/dev.yaml", rollout)
    diff = compare_json(repo, "--no-policy")
    [flag] = diff["services"]["web"]["flags"]
    fields = {f["field"]: (f["old"], f["new"]) for f in flag["fields"]}
    assert flag["flag"] == "new-checkout" and flag["change"] == "changed"
    assert fields["split"][1] == {"on": 50.0, "off": 50.0}
    assert fields["rollout"][1]["percent"] == 50
    # flags are updated in place (stable name, flagd hot-reloads): no config hash change
    web = diff["services"]["web"]
    assert web["config_hash"] is None and web["config"] == []
    assert [(r["op"], r["name"]) for r in web["resources"]] == [("update", "web-config-flags")]


def test_a_secure_value_change_is_only_changed_by_metadata(repo):
    key = "configplane:apiDbPassword"  # services/api: DATABASE_PASSWORD, source secure
    shard = repo / "Pulumi.dev-api-team.yaml"  # the api's shard holds it (docs/fleet.md)
    document = yaml.safe_load(shard.read_text())
    old = document["config"][key]["secure"]
    new = "v1:QUFBQUFBQUFBQUFB:" + "Q0FOQVJZY2FuYXJ5" * 4
    shard.write_text(shard.read_text().replace(old, new))
    runs = [cli("plan", "--stack", "dev", "--project-dir", str(repo), "--compare", "main",
                "--format", fmt, "--no-policy") for fmt in ("json", "table", "markdown")]
    for run in runs:  # neither ciphertext, nor either part of one, in any format
        assert_clean(run, [old, new, *old.split(":")[1:], *new.split(":")[1:]], codes=(0,))
    diff = json.loads(runs[0].stdout)
    assert list(diff["services"]) == ["api"]
    assert diff["services"]["api"]["secrets"] == [
        {"secret": "DATABASE_PASSWORD", "change": "changed", "fields": [], "value": "changed"}]
    assert diff["shared"]["secure"] == [key]
    assert "secret DATABASE_PASSWORD changed: value changed (never shown)" in runs[1].stdout
    assert "| `DATABASE_PASSWORD` | changed | value |  | changed (never shown) |" in runs[2].stdout


def test_a_new_policy_violation_is_shown_on_its_service(repo):
    edit_json = repo / "policies/config/dev.json"
    config = json.loads(edit_json.read_text())
    config["secrets-manager-rotation"]["maxRotationDays"] = 30  # api rotates every 90 days
    edit_json.write_text(json.dumps(config, indent=2))
    diff = compare_json(repo)
    new = [(name, v["policy"]) for name, svc in diff["services"].items()
           for v in svc["policy"]["new"]]
    assert new and {policy for _, policy in new} == {"secrets-manager-rotation"}
    assert {name for name, _ in new} == {"api"}
    assert diff["summary"]["new_violations"] == len(new)
    assert diff["summary"]["resolved_violations"] == 0
    # the pack's config is not a resource: nothing else changes
    assert all(svc["resources"] == [] and svc["config"] == [] for svc in diff["services"].values())


def test_an_unchanged_tree_shows_nothing_in_every_format(repo):
    for fmt, expected in (("table", "no changes"), ("markdown", "No changes.")):
        run = cli("plan", "--stack", "dev", "--project-dir", str(repo), "--compare", "main",
                  "--format", fmt, "--no-policy")
        assert run.code == 0 and expected in run.stdout, run.text
    diff = compare_json(repo, "--no-policy")
    assert diff["changed"] is False and diff["services"] == {}
    assert diff["base"] == {"ref": "main", "commit": git(repo, "rev-parse", "main")}


def test_a_stack_the_change_adds_is_all_created(repo):
    shutil.copy(repo / "Pulumi.dev.yaml", repo / "Pulumi.dev-eu.yaml")
    for shard in ("api-team", "payments-team"):  # its shards' secure values
        shutil.copy(repo / f"Pulumi.dev-{shard}.yaml", repo / f"Pulumi.dev-eu-{shard}.yaml")
    for overlay in repo.glob("services/*/dev.yaml"):
        shutil.copy(overlay, overlay.with_name("dev-eu.yaml"))
    run = cli("plan", "--stack", "dev-eu", "--project-dir", str(repo), "--compare", "main",
              "--format", "json", "--no-policy")
    assert run.code == 0, run.text
    diff = json.loads(run.stdout)
    assert {n: s["change"] for n, s in diff["services"].items()} == dict.fromkeys(
        ["api", "web", "worker"], "created")
    assert diff["summary"]["create"] > 0 and diff["shared"]["resources"]
    assert diff["summary"]["update"] == diff["summary"]["replace"] == diff["summary"]["delete"] == 0


# --- the base: which refs, what is copied ----------------------------------------------------


@pytest.mark.parametrize("ref", ["", "-h", "--output=/tmp/x", "no-such-branch", "main\nmain",
                                 "main^{tree}", "HEAD:Pulumi.yaml", "0" * 40])
def test_a_ref_that_is_not_a_commit_is_refused_cleanly(repo, ref):
    with pytest.raises(GitRefError) as caught:
        resolve_base(repo, ref)
    assert "Fix:" in str(caught.value) and "\n" not in str(caught.value)
    run = cli("plan", "--stack", "dev", "--project-dir", str(repo), "--compare", ref)
    assert run.code == 1 and run.stderr.startswith("error: --compare") and "Traceback" not in run.text


def test_a_commit_without_the_project_is_refused(repo):
    git(repo, "checkout", "-q", "--orphan", "empty")
    git(repo, "rm", "-rq", "--cached", ".")
    (repo / "README").write_text("nothing here\n")
    git(repo, "add", "README")
    git(repo, "commit", "-q", "-m", "empty")
    git(repo, "checkout", "-q", "-f", "main")
    with pytest.raises(GitRefError, match="has no Pulumi.yaml"):
        resolve_base(repo, "empty")


def test_outside_a_repository_is_refused(tmp_path):
    project = copy_project(tmp_path / "plain")
    with pytest.raises(GitRefError, match="not inside a git repository"):
        resolve_base(project, "main")


def test_a_link_out_of_the_project_is_never_followed(repo, tmp_path):
    (repo / "services/api/leak.yaml").symlink_to("/etc/passwd")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a link out")
    with pytest.raises(GitRefError, match="points outside the project"):
        materialise(resolve_base(repo, "main"), tmp_path / "out")
    assert not (tmp_path / "out/services/api/leak.yaml").exists()


def test_the_base_is_the_commit_not_the_working_tree(repo, tmp_path):
    edit_yaml(repo / "services/api/dev.yaml", lambda d: d["config"].update(LOG_LEVEL="warn"))
    (repo / "untracked.txt").write_text("not committed\n")
    base = materialise(resolve_base(repo, "main"), tmp_path / "base")
    assert yaml.safe_load((base / "services/api/dev.yaml").read_text())["config"][
        "LOG_LEVEL"] == "debug"
    assert not (base / "untracked.txt").exists() and not (base / ".git").exists()
    assert (base / "policies/contract.py").is_symlink()  # the pack's links, kept inside
    assert (base / "policies/contract.py").resolve().is_relative_to(base.resolve())


def test_a_project_in_a_subdirectory_is_compared_from_there(tmp_path):
    outer = tmp_path / "mono"
    make_repo(outer / "infra")
    shutil.move(str(outer / "infra/.git"), str(outer / ".git"))
    git(outer, "add", "-A")
    git(outer, "commit", "-q", "-m", "moved into infra/")
    base = resolve_base(outer / "infra", "HEAD")
    assert base.prefix == "infra"
    copy = materialise(base, tmp_path / "base")
    assert (copy / "Pulumi.yaml").is_file() and not (copy / "infra").exists()


# --- the comparison as a function -----------------------------------------------------------


def test_a_plan_compared_with_itself_shows_nothing():
    side = snapshot(run_plan(REPO, "dev", one_stack=True, policy=False))
    assert compare(side, side)["changed"] is False
    assert compare(side, side)["summary"] == dict.fromkeys(
        ["create", "update", "replace", "delete", "new_violations", "resolved_violations",
         "services_created", "services_changed", "services_deleted"], 0)


def test_every_resource_of_the_sample_has_the_owner_its_labels_name():
    plan = run_plan(REPO, "dev", one_stack=True, policy=False)
    side = snapshot(plan)
    for service, data in side["services"].items():
        for resource in data["resources"].values():
            labels = (resource["inputs"].get("metadata") or {}).get("labels") or {}
            assert labels.get("app.kubernetes.io/name", service) == service
            assert resource["name"].startswith(f"{service}-") or \
                resource["name"].startswith(f"rotation-dev-{service}")
    shared = {r["name"].split("-")[0] for r in side["shared"]["resources"].values()}
    # the platform's own: the environment's Vault, CA and engine, and each shard's deploy rights
    assert shared == {"vault", "pki", "database", "deploy"}


keys = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8)
values = st.one_of(st.none(), st.booleans(), st.integers(), keys)
trees = st.recursive(values, lambda inner: st.dictionaries(keys, inner, max_size=4), max_leaves=12)
resources = st.dictionaries(keys, st.builds(
    lambda t, i, opts: {"type": t, "name": "r", "inputs": i, "options": opts},
    st.sampled_from(["kubernetes:core/v1:ConfigMap", "random:index/randomPassword:RandomPassword",
                     "vault:index/policy:Policy"]),
    st.dictionaries(keys, trees, max_size=4),
    st.fixed_dictionaries({"protect": st.booleans()})), max_size=3)
services = st.builds(
    lambda config, flags, secrets, res: {
        "config": config, "config_hash": str(sorted(config.items())), "tenants": {},
        "flags": flags, "secrets": secrets, "resources": res, "violations": []},
    st.dictionaries(keys, keys, max_size=4),
    st.dictionaries(keys, st.dictionaries(keys, values, max_size=3), max_size=2),
    st.dictionaries(keys, st.dictionaries(keys, values, max_size=3), max_size=2),
    resources)
snapshots = st.builds(
    lambda svcs, shared: {"stack": "s", "services": svcs,
                          "shared": {"resources": shared, "violations": [], "secure": {}}},
    st.dictionaries(keys, services, max_size=3), resources)


@settings(max_examples=150, deadline=None)
@given(snapshots)
def test_any_snapshot_compared_with_itself_shows_nothing(side):
    assert compare(side, side)["changed"] is False


@settings(max_examples=150, deadline=None)
@given(snapshots, snapshots)
def test_comparing_the_other_way_swaps_old_and_new(a, b):
    forward, back = compare(a, b), compare(b, a)
    swap = {"created": "deleted", "deleted": "created", "changed": "changed"}
    assert {n: swap[s["change"]] for n, s in forward["services"].items()} == {
        n: s["change"] for n, s in back["services"].items()}
    for name, s in forward["services"].items():
        assert [(r["key"], r["new"], r["old"]) for r in s["config"]] == [
            (r["key"], r["old"], r["new"]) for r in back["services"][name]["config"]]
    ops = {"create": "delete", "delete": "create", "update": "change", "replace": "change"}
    back_ops = {"create": "create", "delete": "delete", "update": "change", "replace": "change"}
    assert sorted((ops[r["op"]], r["urn"]) for r in forward["shared"]["resources"]) == sorted(
        (back_ops[r["op"]], r["urn"]) for r in back["shared"]["resources"])
    assert forward["changed"] == back["changed"] == (forward["services"] != {} or bool(
        forward["shared"]["resources"]))


@given(trees, trees)
def test_changed_paths_are_empty_exactly_when_equal(a, b):
    assert (changed_paths(a, b) == []) == (a == b)


def test_a_plaintext_secure_value_in_the_base_never_shows(repo):
    canary = "cnryBASE" + "Zq81LmNp0Xr7" * 2
    shard = repo / "Pulumi.dev-api-team.yaml"  # the api's shard holds its key
    document = yaml.safe_load(shard.read_text())
    valid = document["config"]["configplane:apiDbPassword"]["secure"]
    text = shard.read_text()
    shard.write_text(text.replace(valid, canary))  # plaintext under secure
    git(repo, "commit", "-qam", "a plaintext value under secure:")
    git(repo, "tag", "broken")
    shard.write_text(text)  # the working tree repairs it
    for fmt in ("table", "json", "markdown"):
        run = cli("plan", "--stack", "dev", "--project-dir", str(repo), "--compare", "broken",
                  "--format", fmt, "--no-policy")
        assert_clean(run, [canary], codes=(0,))
        assert "configplane:apiDbPassword" in run.stdout  # shown as changed, by name only


def test_an_invalid_base_is_one_clean_error(repo):
    edit_yaml(repo / "services/api/dev.yaml", lambda d: d["config"].update(LOG_LEVEL="loud"))
    git(repo, "commit", "-qam", "an invalid value")
    git(repo, "tag", "broken")
    git(repo, "checkout", "-q", "HEAD~1", "--", "services")  # the working tree: valid again
    run = cli("plan", "--stack", "dev", "--project-dir", str(repo), "--compare", "broken",
              "--no-policy")
    assert run.code == 1 and run.stdout == "", run.text
    assert run.stderr.startswith("error: the base 'broken' (")
    assert "services/api/dev.yaml" in run.stderr and "LOG_LEVEL" in run.stderr
    assert "Fix:" in run.stderr and "Traceback" not in run.stderr
