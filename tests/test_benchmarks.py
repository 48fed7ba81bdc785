"""The scale benchmark's inputs are honest: a valid, varied fleet, and a floor program that
declares exactly the resources the real program declares (no timings are asserted here)."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.fleet import STACKS, generate, service_defaults, service_name, service_overrides
from benchmarks.floor import FLOOR_MAIN, FloorRunner, probe_classes, write_floor
from benchmarks.scale import commit_stamp, run_header
from configplane.inputs import read_stack_files
from configplane.offline import marshal_properties, run_plan
from configplane.validation import load_or_issues


@pytest.fixture(scope="module")
def small_fleet(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("fleet") / "project", 3)


def test_generated_fleet_validates_in_every_stack(tmp_path: Path):
    project = generate(tmp_path / "project", 20)
    for stack in STACKS:
        model, issues = load_or_issues(project, stack)
        assert issues == []
        assert sorted(model.services) == sorted(service_name(i) for i in range(20))
    assert (project / "__main__.py").read_text() == (Path(__file__).parents[1] /
                                                     "__main__.py").read_text()


def test_fleet_mixes_schemas_secret_sources_tenants_and_flags():
    specs = [service_defaults(i)[0] for i in range(20)]
    prod = [service_overrides(i, "prod") for i in range(20)]
    assert Counter(s["app_schema"] for s in specs) == {"http-api": 9, "worker": 7,
                                                       "web-frontend": 4}
    sources = {(sec["source"], sec["store"]) for s in specs for sec in s["secrets"].values()}
    sources |= {(sec["source"], sec["store"]) for o in prod
                for sec in o.get("secrets", {}).values() if "source" in sec}
    assert sources == {("secure", "aws"), ("secure", "vault"), ("generated", "vault"),
                       ("reference", "vault"), ("reference", "aws")}
    assert sum("tenants" in o for o in prod) == 3  # workers 9, 12, 15
    assert sum("flags" in s for s in specs) == 6  # the 4 web frontends, APIs 0 and 5
    assert sum("rotation" in o.get("secrets", {}).get("DATABASE_PASSWORD", {})
               for o in prod) == 3  # APIs 0, 3, 6


def test_generated_secure_keys_are_declared_and_encrypted(small_fleet: Path):
    inputs = read_stack_files(small_fleet, "prod")
    secure = sorted(k for k, v in inputs.values.items() if v.secure)
    assert secure == ["configplane:catalogApi0002DbPassword", "configplane:ordersApi0000DbPassword",
                      "configplane:paymentsApi0001DbPassword",
                      "configplane:shopVaultDbPassword",  # the sample platform's database engine
                      "configplane:vaultTokenReviewerJwt"]  # and its Vault's reviewer token
    assert all(inputs.declarations[k].secret and inputs.declarations[k].type == "string"
               for k in secure)


@pytest.mark.parametrize("stack", STACKS)
def test_floor_declares_exactly_the_resources_of_the_real_program(small_fleet: Path,
                                                                  tmp_path: Path, stack: str):
    classes = probe_classes(small_fleet, stack)
    real = run_plan(small_fleet, stack, one_stack=True)
    floor_dir = write_floor(real, classes, tmp_path / "floor")
    floor = FloorRunner(small_fleet, stack, floor_dir).run()

    def key(r):
        return (r.type, r.name)

    assert sorted(map(key, floor.resources)) == sorted(map(key, real.resources))
    assert len(real.resources) == len({r.urn for r in real.resources}) > 60
    floor_by_urn = {r.urn: r for r in floor.resources}
    for r in real.resources:
        twin = floor_by_urn[r.urn]  # same URN: same type chain of parents and same name
        assert (twin.parent, twin.custom) == (r.parent, r.custom), r.urn
        # As the engine holds them: secrets wrapped, unknowns as the sentinel, assets by path.
        assert marshal_properties(twin.inputs) == marshal_properties(r.inputs), r.urn
        assert marshal_properties(twin.outputs) == marshal_properties(r.outputs), r.urn


def test_floor_program_has_no_configplane_logic(small_fleet: Path, tmp_path: Path):
    classes = probe_classes(small_fleet, "dev")
    floor_dir = write_floor(run_plan(small_fleet, "dev", one_stack=True), classes, tmp_path / "floor")
    assert "configplane" not in FLOOR_MAIN and "components" not in FLOOR_MAIN
    declared = json.loads((floor_dir / "resources.json").read_text())
    modules = {r["class"].split(".")[0] for r in declared if r["class"]}
    assert modules == {"pulumi_kubernetes", "pulumi_vault", "pulumi_aws", "pulumi_random"}
    components = {r["type"].split(":")[0] for r in declared if r["class"] is None}
    assert components == {"configplane"}  # declared as plain ComponentResources


def test_fleet_is_in_the_catalog_and_config_stays_small(tmp_path: Path):
    from benchmarks.fleet import SECURE_SERVICES, kind_of, platform_secure_keys
    from configplane.validation import config_size

    project = generate(tmp_path / "project", SECURE_SERVICES + 6)
    names = sorted(p.name for p in (project / "services").iterdir() if p.is_dir())
    assert names == sorted(service_name(i) for i in range(SECURE_SERVICES + 6))
    assert sorted(p.name for p in (project / "services" / names[0]).iterdir()) == [
        "dev.yaml", "prod.yaml", "service.yaml", "staging.yaml"]
    inputs = read_stack_files(project, "prod")
    assert inputs.notes == ()  # nothing in Pulumi config but platform and secure values
    secure = {k for k, v in inputs.values.items() if v.secure}
    # One per secret of the first SECURE_SERVICES services (not web frontends), plus the
    # sample platform's own (platform.database's root logins), whatever the fleet's size.
    platform = {f"configplane:{key}" for key in platform_secure_keys()}
    assert platform == {"configplane:shopVaultDbPassword", "configplane:vaultTokenReviewerJwt"}
    assert len(secure - platform) == sum(kind_of(i) != "web" for i in range(SECURE_SERVICES))
    assert platform <= secure
    assert config_size(inputs).total < 8 * 1024


def test_policy_timing_runs_the_pack_and_the_trivial_pack_with_the_cli_config(
        small_fleet: Path, tmp_path: Path):
    import pickle

    from benchmarks.runs import time_policy
    from configplane.validation import config_size

    plan = run_plan(small_fleet, "prod", one_stack=True)
    kept = tmp_path / "plan.pickle"
    kept.write_bytes(pickle.dumps(plan))
    repo = Path(__file__).parents[1]
    count, pack, trivial, size = time_policy(repo / "policies", small_fleet, kept, 1, 0.0)
    assert count == len(plan.resources) + 1
    assert (pack.error, trivial.error, pack.mandatory, trivial.mandatory) == (None, None, 0, 0)
    assert pack.seconds > 0 and trivial.seconds > 0
    assert size == config_size(read_stack_files(small_fleet, "prod")).total


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_benchmark_header_names_the_date_and_the_commit_measured(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "a")
    head = _git(repo, "rev-parse", "--short", "HEAD")
    when = datetime.datetime(2026, 12, 1, 23, 5, tzinfo=datetime.UTC)
    assert run_header(when, repo) == f"configplane benchmark, 2026-12-01 23:05 UTC, commit {head}"
    (repo / "a.txt").write_text("two\n")  # a tracked file changed: the figures are not HEAD's
    assert commit_stamp(repo) == f"{head} + uncommitted changes"
    (repo / "a.txt").write_text("one\n")
    (repo / "new.txt").write_text("untracked files do not count\n")
    assert commit_stamp(repo) == head
    assert commit_stamp(tmp_path / "not-a-checkout") == "uncommitted"


def test_the_cli_benchmark_measures_each_command_against_the_bare_interpreter(tmp_path, capsys):
    # A tiny fleet, one round: every command runs (timed() fails on a non-zero exit) and each
    # gets its row, with the goals judged against the baseline of the same run.
    from benchmarks.cli import measure, report

    results = measure(3, 1, tmp_path)
    assert list(results) == ["python -c pass", "configplane --help",
                             "validate --service (of 3)", "plan --service (of 3)",
                             "plan --service (of 3), schema cache off"]
    # the timed runs found the cache the untimed first run filled, in the benchmark's own
    # directory (never the user's)
    assert list((tmp_path / "cache" / "configplane").glob("schema-*.bin"))
    assert all(cpu > 0 and wall > 0 for cpu, wall in results.values())
    rows = report(results)
    assert len(rows) == 2 + len(results)
    bare = results["python -c pass"][0]
    helped = results["configplane --help"][0]
    assert rows[3].endswith(f"| <= 3x: {'met' if helped <= 3 * bare else 'NOT met'} |")


def test_the_shard_benchmark_runs_end_to_end_on_a_small_fleet(capsys):
    from benchmarks.shards import main
    assert main(["--services", "6", "--teams", "2", "--no-whole"]) == 0
    out = capsys.readouterr().out
    assert "dev 3, staging 3, prod 3" in out  # a platform stack and two shards each
    assert "3 of 9 stacks" in out
    assert "met      a one-service pull request previews its shard, one per environment" in out
    assert re.search(r"plan of one shard < 5 s \(a pull request's CI job\)", out)
    assert "ESTIMATE" in out


def test_teams_own_the_generated_services_in_turn(tmp_path):
    from configplane.model import service_stacks
    project = generate(tmp_path / "p", 8, teams=3)
    shards = {name: s.shard for name, s in service_stacks(project, "prod").items()}
    assert shards == {service_name(i): f"team-{i % 3:02d}" for i in range(8)}
