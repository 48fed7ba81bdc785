"""`validate`'s report is the same on every run: the order of its errors depends on the
documents, never on Python's string hashing (PYTHONHASHSEED, random per process by default).
Each service's errors sit under `services` in the stack schema; jsonschema descends into such
keys in the order of a set of their names (configplane.inputs.in_document_order fixes that)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from configplane.inputs import in_document_order
from tests.projects import copy_project

SERVICES = 10  # 10! orders: two seeds agree by chance with probability < 1e-6


def broken_fleet(project: Path) -> None:
    """Services each broken several ways: schema errors (out of range, wrong types), names
    two services claim, references to what a service does not own, a tenant's bad value."""
    for i in range(SERVICES):
        directory = project / "services" / f"svc{i}"
        directory.mkdir()
        (directory / "service.yaml").write_text(yaml.safe_dump({
            "owners": [f"@shop/team{i % 3}"], "app_schema": "worker",
            "namespace": "shared-ns" if i % 2 else f"ns{i}",
            "config": {"LOG_LEVEL": 5, "CONCURRENCY": "x", f"EXTRA_{i}": 1},
            "secrets": {
                "A_KEY": {"source": "secure", "store": "vault", "config_key": f"k{i}"},
                "B_KEY": {"source": "reference", "store": "vault",
                          "ref": f"vault:other/svc{(i + 1) % SERVICES}#x"},
                "C": {"source": "generated", "store": "aws", "length": 3}},
            "tls": {"extra_dns_names": [f"svc{(i + 1) % SERVICES}.ns1.svc", "x.example.com"]},
            "tenants": {f"t{i}": {"config": {"CONCURRENCY": "bad"}}}}))


def validate(project: Path, seed: str, *extra: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    run = subprocess.run([sys.executable, "-m", "configplane", "validate", "--stack", "dev",
                          "--project-dir", str(project), *extra],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    return run.returncode, run.stdout


def test_validate_reports_a_broken_fleet_in_one_order_whatever_the_hash_seed(tmp_path):
    project = copy_project(tmp_path / "p")
    broken_fleet(project)
    for extra in (("--format", "json"), ()):
        runs = {seed: validate(project, seed, *extra) for seed in ("1", "2", "3")}
        codes = {code for code, _ in runs.values()}
        assert codes == {1}, runs
        outputs = {out for _, out in runs.values()}
        assert len(outputs) == 1, "the report's order depends on PYTHONHASHSEED"
    errors = json.loads(validate(project, "0", "--format", "json")[1])["errors"]
    # every broken service is reported, and in the catalog's order of services
    services = [e["path"].split(".")[1] for e in errors if e["path"].startswith("services.svc")]
    assert {f"svc{i}" for i in range(SERVICES)} <= set(services)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True), min_size=2, max_size=12,
                unique=True))
def test_extra_keys_are_reported_in_the_documents_order(keys):
    """The keyword's errors come in the instance's key order, whatever the names."""
    schema = {"type": "object", "properties": {},
              "additionalProperties": {"type": "object", "properties": {"n": {"minimum": 1}},
                                       "additionalProperties": {"type": "string"}}}
    validator = in_document_order(jsonschema.Draft7Validator)(schema)
    instance = {key: {"n": 0, "x": 1, "y": 2} for key in keys}
    found = [list(e.absolute_path) for e in validator.iter_errors(instance)]
    assert [path[0] for path in found] == [k for k in keys for _ in range(3)]
    # within one key, nested extras in its own order too (after its properties' errors)
    assert [path[1:] for path in found[:3]] == [["n"], ["x"], ["y"]]
    # the same errors as jsonschema's own, only ordered
    plain = [list(e.absolute_path) for e in jsonschema.Draft7Validator(schema).iter_errors(instance)]
    assert sorted(map(str, plain)) == sorted(map(str, found))
