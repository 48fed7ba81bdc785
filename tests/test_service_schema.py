"""A service's own app schema (configplane/service_schema.py): composed with its kind's schema it
can only add keys of its own and narrow; hostile files are refused with messages, never a
traceback or a hang; validate and the pack (run as a process by the offline plan) agree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configplane import contract, service_schema
from configplane.cli.commands.validate import command as validate
from configplane.inputs import load_validator, service_validator
from configplane.redaction import detector_for
from configplane.service_schema import MAX_BYTES, MAX_DEPTH, compose, parse
from tests.projects import REPO, copy_project

KINDS = {p.name.removesuffix(".schema.json"): json.loads(p.read_text())
         for p in (REPO / "schemas" / "services").glob("*.schema.json")}
DETECTOR = detector_for(REPO)


def secret_key(key: str) -> bool:
    return DETECTOR.key_kind(key).secret_slot


def re2_ok(pattern: str) -> bool:
    from configplane.inputs.schemafiles import _re2_compiles  # the one used by validate

    return _re2_compiles(pattern)


def composed(kind: str, service: object) -> tuple[dict | None, list]:
    return compose(KINDS[kind], service, secret_key, re2_ok)


def test_the_copied_facts_match_the_contract() -> None:
    assert service_schema.SECRET_KEYS == contract.SCHEMA_SECRET_KEYS
    assert service_schema.TENANT_KEYS == contract.SCHEMA_TENANT_KEYS
    assert f"^{service_schema.DATA_KEY}$" == contract.CONFIGMAP_DATA_KEY


# --- the property: a service schema only adds its own keys and narrows the kind's ----------

NEW_KEYS = ["FEATURE_X", "SEARCH_URL", "MAX_ITEMS", "MODE"]
leaf = st.one_of(
    st.just(True), st.just(False), st.just({}),
    st.sampled_from([{"type": t} for t in ("string", "integer", "boolean", "number", "null")]),
    st.builds(lambda lo: {"minimum": lo}, st.integers(-5, 70000)),
    st.builds(lambda hi: {"maximum": hi}, st.integers(-5, 70000)),
    st.builds(lambda n: {"maxLength": n}, st.integers(0, 12)),
    st.builds(lambda vs: {"enum": vs}, st.lists(st.one_of(st.integers(0, 9), st.sampled_from(
        ["info", "debug", "x", "https://a"])), min_size=1, max_size=3)),
    st.sampled_from([{"pattern": p} for p in ("^https://", "^[a-z]+$", "a|b", "^$")]),
    st.sampled_from([{"additionalProperties": True}, {"type": ["string", "integer"]}]),
)
subschema = st.recursive(leaf, lambda inner: st.one_of(
    st.builds(lambda s: {"not": s}, inner),
    st.builds(lambda ss: {"anyOf": ss}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda ss: {"allOf": ss}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda ss: {"oneOf": ss}, st.lists(inner, min_size=1, max_size=2)),
), max_leaves=6)


@st.composite
def kind_and_service(draw):
    kind = draw(st.sampled_from(sorted(KINDS)))
    keys = sorted(KINDS[kind]["properties"]) + NEW_KEYS
    properties = draw(st.dictionaries(st.sampled_from(keys), subschema, max_size=5))
    service: dict = {"properties": properties}
    declared = sorted(set(KINDS[kind]["properties"]) | set(properties))
    if draw(st.booleans()):
        service["required"] = draw(st.lists(st.sampled_from(declared), unique=True, max_size=3))
    if draw(st.booleans()):
        service[draw(st.sampled_from(["anyOf", "not", "dependentRequired", "minProperties"]))] = \
            draw(st.one_of(st.just({"required": ["FEATURE_X"]}), st.just(1)))
    if draw(st.booleans()):
        service["additionalProperties"] = draw(st.sampled_from([False, True, {}]))
    if draw(st.booleans()):
        service["$defs"] = {"d": draw(subschema)}
        service["properties"]["MODE"] = {"$ref": "#/$defs/d"}
    own = sorted(k for k in properties if k not in KINDS[kind]["properties"])
    for listed in (contract.SCHEMA_TENANT_KEYS, contract.SCHEMA_SECRET_KEYS):
        if draw(st.booleans()):
            service[listed] = draw(st.lists(st.sampled_from(own + ["LOG_LEVEL"]), unique=True,
                                            max_size=2))
    return kind, service


value = st.one_of(st.integers(-3, 70000), st.sampled_from(["info", "debug", "x", "", "https://a",
                                                           "abc", "a"]), st.booleans(),
                  st.none())


@st.composite
def config(draw, kind: str):
    keys = sorted(KINDS[kind]["properties"]) + NEW_KEYS + ["UNKNOWN"]
    return draw(st.dictionaries(st.sampled_from(keys), value, max_size=len(keys)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_service_schema_accepts_what_its_kind_refuses(data) -> None:
    """Whatever the service writes, a config the composed schema accepts is one its kind
    accepts once the service's own (new) keys are set aside; with no key of its own, exactly
    one the kind accepts. And the kind's secret and tenant keys stay as the kind says."""
    kind_name, service = data.draw(kind_and_service())
    kind = KINDS[kind_name]
    effective, problems = composed(kind_name, service)
    if effective is None:
        assert problems  # refused: every refusal says why
        return
    own = set(effective["properties"]) - set(kind["properties"])
    assert set(kind.get(contract.SCHEMA_SECRET_KEYS, [])) <= set(
        effective.get(contract.SCHEMA_SECRET_KEYS, []))
    assert set(effective.get(contract.SCHEMA_TENANT_KEYS, [])) - set(
        kind.get(contract.SCHEMA_TENANT_KEYS, [])) <= own
    assert set(effective.get(contract.SCHEMA_SECRET_KEYS, [])) - set(
        kind.get(contract.SCHEMA_SECRET_KEYS, [])) <= own
    assert not any(secret_key(k) for k in own - set(effective.get(
        contract.SCHEMA_SECRET_KEYS, [])))
    accepts = jsonschema.Draft202012Validator(effective).is_valid
    kind_accepts = jsonschema.Draft202012Validator(kind).is_valid
    for _ in range(8):
        candidate = data.draw(config(kind_name))
        if accepts(candidate):
            assert kind_accepts({k: v for k, v in candidate.items() if k not in own})


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
                        ["properties", "required", "$ref", "$defs", "allOf", "not", "type",
                         "pattern", "X", "FEATURE_X", "PORT", "additionalProperties",
                         "x-configplane-secret-keys", "#", "#/$defs/X"]), inner, max_size=4),
                    max_leaves=20))
def test_any_json_is_composed_or_refused_never_raised(document) -> None:
    effective, problems = composed("http-api", document)
    assert (effective is None) == bool(problems)
    for problem in problems:
        assert problem.message.rstrip().endswith(".") and "Fix:" in problem.message


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_refused(data: bytes) -> None:
    document, problems = parse(data)
    assert document is None or not problems


# --- hostile files ---------------------------------------------------------------------------

def refusal(kind: str, service: object) -> list[tuple[str, str]]:
    effective, problems = composed(kind, service)
    assert effective is None
    return [(".".join(p.path), p.message) for p in problems]


@pytest.mark.parametrize("ref", [
    "https://evil.example.com/schema.json", "../worker/schema.json", "/etc/passwd",
    "schema.json#/$defs/x", "file:///etc/passwd", "#/$defs/../../x",
])
def test_a_reference_outside_the_file_is_refused(ref: str) -> None:
    paths = [path for path, _ in refusal("http-api", {"properties": {"X": {"$ref": ref}}})]
    assert paths == ["properties.X.$ref"]


def test_reference_loops_and_bombs_are_refused() -> None:
    loop = {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}]}},
            "properties": {"X": {"$ref": "#/$defs/a"}}}
    assert [p for p, _ in refusal("http-api", loop)] == ["$defs.b.anyOf.0.$ref"]
    itself = {"properties": {"X": {"$ref": "#"}}}
    assert [p for p, _ in refusal("http-api", itself)] == ["properties.X.$ref"]
    bomb = {"$defs": {f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 4} for i in range(20)}}
    bomb["$defs"]["d20"] = {"type": "string"}
    bomb["properties"] = {"X": {"$ref": "#/$defs/d0"}}
    [(path, message)] = refusal("http-api", bomb)
    assert "more than" in message and "Fix:" in message
    wide = {"$defs": {"big": {"enum": ["v" * 200] * 300}},
            "properties": {f"K{i}": {"$ref": "#/$defs/big"} for i in range(40)}}
    [(path, message)] = refusal("http-api", wide)
    assert "bytes of values" in message


@pytest.mark.parametrize("service, path", [
    ({"$id": "https://evil.example.com/"}, "$id"),
    ({"properties": {"X": {"$anchor": "a"}}}, "properties.X.$anchor"),
    ({"properties": {"X": {"$dynamicRef": "#a"}}}, "properties.X.$dynamicRef"),
    ({"patternProperties": {".*": {}}}, "patternProperties"),
    ({"additionalProperties": True}, "additionalProperties"),
    ({"additionalProperties": {"type": "string"}}, "additionalProperties"),
    ({"unevaluatedProperties": True}, "unevaluatedProperties"),
    ({"type": "array"}, "type"),
    ({"$schema": "http://json-schema.org/draft-04/schema#"}, "$schema"),
    ({"properties": {"X": {"pattern": "(a)\\1"}}}, "properties.X.pattern"),
    ({"properties": {"X": {"pattern": "(?=a)"}}}, "properties.X.pattern"),
    ({"properties": {"X": {"maxLenght": 3}}}, "properties.X.maxLenght"),
    ({"properties": {"X": 5}}, "properties.X"),
    ({"properties": {"BAD KEY": {}}}, "properties.BAD KEY"),
    ({"required": ["NOT_DECLARED"]}, "required"),
    ({"x-configplane-secret-keys": ["LOG_LEVEL"]}, "x-configplane-secret-keys"),
    ({"x-configplane-tenant-overridable": ["PORT"]}, "x-configplane-tenant-overridable"),
    ({"properties": "no"}, "properties"),
    ([], ""),
])
def test_what_would_loosen_the_kind_or_change_references_is_refused(service, path) -> None:
    problems = refusal("http-api", service)
    assert path in [p for p, _ in problems]
    assert all("Fix:" in message for _, message in problems)


@pytest.mark.parametrize("key", ["PARTNER_TOKEN", "DB_PASSWORD", "STRIPE_API_KEY", "SIGNING_SECRET",
                                 "DATABASE_PASSWORD"])
def test_a_secret_named_key_cannot_be_plain_config(key: str) -> None:
    [(path, message)] = refusal("web-frontend", {"properties": {key: {"type": "string"}}})
    assert path == f"properties.{key}" and "secrets:" in message


def test_a_secret_named_key_a_secret_delivers_may_be_typed() -> None:
    effective, problems = composed("web-frontend", {
        "properties": {"PARTNER_TOKEN": {"type": "string", "minLength": 20}},
        contract.SCHEMA_SECRET_KEYS: ["PARTNER_TOKEN"]})
    assert problems == [] and "PARTNER_TOKEN" in effective[contract.SCHEMA_SECRET_KEYS]


def test_parse_bounds_size_depth_and_strictness() -> None:
    assert "bytes" in parse(b" " * (MAX_BYTES + 1))[1][0].message
    assert "deeper" in parse(b"[" * 30000 + b"]" * 30000)[1][0].message
    assert "deeper" in parse(b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1))[1][0].message
    assert parse(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}')[1] == []  # in a string
    assert "twice" in parse(b'{"a": 1, "a": 2}')[1][0].message
    assert "NaN" in parse(b'{"a": NaN}')[1][0].message
    assert "UTF-8" in parse(b'{"a": "\xff"}')[1][0].message


# --- validate and the pack, on a copy of the project ----------------------------------------

def project_with_pack(tmp_path: Path) -> Path:
    """A copy whose pack is its own (the pack reads the catalog beside its schemas)."""
    project = copy_project(tmp_path / "project")
    shutil.copytree(REPO / "policies", project / "policies", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "configplane", project / "configplane",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return project


def validate_json(project: Path, *extra: str) -> tuple[int, dict]:
    result = CliRunner().invoke(validate, ["--stack", "dev", "--project-dir", str(project),
                                           "--format", "json", *extra])
    return result.exit_code, json.loads(result.output)


def test_validate_reports_each_problem_of_the_file_by_path(project: Path) -> None:
    (project / "services/api/schema.json").write_text(json.dumps({
        "properties": {"PARTNER_TOKEN": {}, "X": {"$ref": "https://evil.example.com/x"},
                       "Y": {"minimum": "ten"}},
        "additionalProperties": True}))
    code, report = validate_json(project)
    assert code == 1
    assert sorted((e["file"], e["path"]) for e in report["errors"]) == [
        ("services/api/schema.json", p) for p in
        ("additionalProperties", "properties.PARTNER_TOKEN", "properties.X.$ref",
         "properties.Y.minimum")]


def test_a_link_out_of_the_service_directory_is_refused(project: Path) -> None:
    (project / "services/api/schema.json").symlink_to(project / "schemas/services/worker.schema.json")
    code, report = validate_json(project)
    assert code == 1 and [(e["file"], e["path"]) for e in report["errors"]] == [
        ("services/api/schema.json", "(root)")]


def test_a_catastrophic_pattern_runs_in_linear_time(tmp_path: Path) -> None:
    """`(a+)+$` on 40 a's and a `!` takes Python's re 2^40 steps; RE2 decides at once (the
    timeout only stops a hang, it measures nothing)."""
    project = copy_project(tmp_path / "project")
    (project / "services/web/schema.json").write_text(json.dumps({
        "properties": {"SEARCH_MODE": {"type": "string", "pattern": "^(a+)+$"}}}))
    service = project / "services/web/service.yaml"
    service.write_text(service.read_text().replace("config:\n", "config:\n  SEARCH_MODE: "
                                                   + "a" * 40 + "!\n", 1))
    run = subprocess.run([sys.executable, "-m", "configplane", "validate", "--stack", "dev",
                          "--service", "web", "--project-dir", str(project), "--format", "json"],
                         capture_output=True, text=True, timeout=120, cwd=project)
    assert run.returncode == 1, run.stderr
    [error] = json.loads(run.stdout)["errors"]
    assert error["path"] == "services.web.config.SEARCH_MODE" and "pattern" in error["message"]


def test_a_service_extends_its_kind_and_the_plan_and_pack_accept_it(tmp_path: Path) -> None:
    project = project_with_pack(tmp_path)
    (project / "services/api/schema.json").write_text(json.dumps({
        "properties": {"SEARCH_URL": {"type": "string", "pattern": "^https://"},
                       "PORT": {"maximum": 9000}},
        "required": ["SEARCH_URL"]}, indent=2))
    code, report = validate_json(project)
    assert code == 1 and [(e["path"], e["message"]) for e in report["errors"]] == [
        ("services.api.config", "app schema HTTP API service + services/api/schema.json: "
         "'SEARCH_URL' is a required property. Fix: add it.")]
    service = project / "services/api/service.yaml"
    service.write_text(service.read_text().replace(
        "config:\n", "config:\n  SEARCH_URL: https://search.example.com\n", 1))
    assert validate_json(project)[0] == 0
    run = subprocess.run([sys.executable, "-m", "configplane", "plan", "--stack", "dev",
                          "--service", "api", "--project-dir", str(project), "--format", "json"],
                         capture_output=True, text=True, timeout=600, cwd=project)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    plan = json.loads(run.stdout)
    # the pack composed the same schema: without it, configmap-schema refuses SEARCH_URL
    assert plan["violations"] == []
    assert any(r["type"] == "kubernetes:core/v1:ConfigMap"
               and (r.get("inputs") or {}).get("data", {}).get("SEARCH_URL")
               for r in plan["resources"]), [sorted(r) for r in plan["resources"][:1]]
    # narrowing a kind key is enforced by the pack too: PORT 9001 is refused by both
    service.write_text(service.read_text().replace("PORT: 8080", "PORT: 9001"))
    code, report = validate_json(project)
    assert [e["path"] for e in report["errors"]] == ["services.api.config.PORT"]


def test_service_validator_is_the_kind_without_a_file(tmp_path: Path) -> None:
    kind = load_validator(REPO / "schemas/services/worker.schema.json")
    assert service_validator(kind, tmp_path, "services/x/schema.json", secret_key) == (kind, [])
