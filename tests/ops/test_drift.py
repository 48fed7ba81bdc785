"""Drift reports from recorded `pulumi preview --json` documents, and `configplane drift`.

Where the fixture format comes from (tests/fixtures/preview/, see its README.md):
- the preview documents follow `previewDigest` / `previewStep` / `propertyDiff` as
  `ShowJSONEvents` / `ShowPreviewDigest` builds them in pulumi/pulumi
  pkg/backend/display/json.go (types now in sdk/pkg/display/json.go): `steps[]` with `op`,
  `urn`, `provider`, `oldState`/`newState` (`apitype.ResourceV3`, secrets printed as
  "[secret]"), `diffReasons`, `replaceReasons`, `detailedDiff` ({path: {kind, inputDiff}}, null
  when absent), then `duration` (ns) and `changeSummary`;
- the `*.events.jsonl` logs are `apitype.EngineEvent` lines (sdk/go/common/apitype/events.go) as
  `--event-log` writes them: `policyEvent`, `resourcePreEvent`/`resOutputsEvent` with
  `StepEventMetadata` (`detailedDiff` there uses `diffKind`); refresh steps carry op "refresh"
  and, after they ran, what refresh found (`RefreshStep.Diffs/DetailedDiff`,
  pkg/resource/deploy/step.go).
They were written to that shape for configplane's resources, not captured from a live cloud.
"""

from __future__ import annotations

import copy
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from configplane.cli.commands.drift import command as drift_command
from configplane.cli.commands.drift_render import render_json, render_markdown
from configplane.cli.commands.drift_report import command as report_command
from configplane.hashing import hashed_name
from configplane.ops import (
    EXPECTED,
    DriftInputError,
    build_report,
    parse_events,
    parse_path,
    parse_preview,
    preview_schema,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "preview"
REPO = Path(__file__).resolve().parents[2]
CANARY = "CANARY-d41f5e0c9b"
FIX = "expected the output of `pulumi preview --json`"


def fixture(name: str) -> dict:
    return parse_preview((FIXTURES / name).read_text(), name)


def events(name: str) -> list[dict]:
    return parse_events((FIXTURES / name).read_text(), name)


def rows(report) -> list[tuple]:
    return [
        (r.name, r.type, r.op, r.classification, [(p.path, p.kind, p.origin) for p in r.paths])
        for r in report.resources
    ]


def run_report(*args: str, input: str | None = None):
    return CliRunner().invoke(report_command, list(args), input=input)


# --- classification ----------------------------------------------------------------------------


def test_no_changes_is_exit_0_with_no_resources():
    report = build_report(fixture("no-changes.json"))
    assert (report.status, report.exit_code, report.resources) == ("no-changes", 0, ())
    assert (report.project, report.stack) == ("configplane", "dev")
    assert report.change_summary == {"same": 14}


def test_config_change_replaces_the_hashed_configmap():
    report = build_report(fixture("config-change.json"), events("config-change.events.jsonl"))
    assert rows(report) == [
        ("api-config", "kubernetes:core/v1:ConfigMap", "replace", "replacement",
         [("data.LOG_LEVEL", "update-replace", "code"), ("metadata.name", "update-replace", "code")]),
        ("api-secrets", "kubernetes:external-secrets.io/v1:ExternalSecret", "update",
         "config-changed", [("spec.refreshInterval", "update", "code")]),
        ("api-stripe-key", "vault:kv/secretV2:SecretV2", "create", "creation", []),
    ]
    assert (report.status, report.exit_code) == ("changes", 7)
    assert [v.as_dict() for v in report.violations] == [{
        "policy_pack": "configplane",
        "policy": "externalsecret-refresh-interval",
        "level": "advisory",
        "urn": "urn:pulumi:dev::configplane::configplane:service:Service"
        "$kubernetes:external-secrets.io/v1:ExternalSecret::api-secrets",
        "message": "ExternalSecret api-secrets refreshes every 15m: each refresh reads Vault; "
        "use 1h or more unless the secret rotates faster.",  # Pulumi's colour tags removed
    }]


def test_config_change_fixture_names_follow_the_kustomize_hash():
    step = fixture("config-change.json")["steps"][1]
    for state in ("oldState", "newState"):
        inputs = step[state]["inputs"]
        assert inputs["metadata"]["name"] == hashed_name("api-config", inputs["data"])


def test_drift_found_by_refresh_with_the_event_log():
    report = build_report(fixture("drift.json"), events("drift.events.jsonl"))
    assert rows(report) == [
        ("api-k8s-role", "vault:kubernetes/authBackendRole:AuthBackendRole", "update", "drift",
         [("tokenPolicies[1]", "delete", "outside-pulumi")]),
        ("api-secrets", "kubernetes:external-secrets.io/v1:ExternalSecret", "update", "drift",
         [("spec.refreshInterval", "update", "outside-pulumi")]),
    ]
    assert [r.reason for r in report.resources] == ["changed outside Pulumi (refresh found it)"] * 2
    assert (report.status, report.exit_code) == ("drift", 7)
    assert [(v.policy, v.level) for v in report.violations] == [
        ("secret-rotation-schedule", "advisory")
    ]


def test_drift_without_the_event_log_is_inferred_from_inputs_only():
    # Kubernetes keeps the program's inputs through a refresh: unchanged input + state diff =
    # drift. The Vault provider rewrites inputs on refresh, so only the event log proves it.
    report = build_report(fixture("drift.json"))
    assert [(r.name, r.classification, r.reason) for r in report.resources] == [
        ("api-k8s-role", "config-changed", "configuration changed in code"),
        ("api-secrets", "drift", "changed outside Pulumi (inputs unchanged, state differs)"),
    ]
    assert (report.status, report.exit_code) == ("drift", 7)


def test_rotated_secrets_are_reported_not_alarmed():
    report = build_report(fixture("rotated-secret.json"), events("rotated-secret.events.jsonl"))
    assert rows(report) == [
        ("api-db-initial", "aws:secretsmanager/secretVersion:SecretVersion", "update",
         "secret-rotated", [("versionStages[0]", "update", "outside-pulumi")]),
        # no step in the preview: only the refresh event shows the new Vault KV version
        ("api-secret", "vault:kv/secretV2:SecretV2", "refresh", "secret-rotated",
         [("metadata", "update", "outside-pulumi")]),
    ]
    assert (report.status, report.exit_code) == ("secret-rotations-only", 0)
    without_events = build_report(fixture("rotated-secret.json"))
    assert [(r.name, r.classification) for r in without_events.resources] == [
        ("api-db-initial", "secret-rotated")
    ]
    assert without_events.exit_code == 0


def test_a_changed_secret_value_next_to_a_rotation_is_not_a_rotation():
    doc = fixture("rotated-secret.json")
    doc["steps"][1]["detailedDiff"]["secretStringWoVersion"] = {"kind": "update", "inputDiff": True}
    report = build_report(doc)
    assert [(r.name, r.classification) for r in report.resources] == [
        ("api-db-initial", "config-changed")
    ]
    assert report.exit_code == 7


def test_deletion_of_a_removed_service():
    report = build_report(fixture("deletion.json"))
    assert [(r.name, r.op, r.classification) for r in report.resources] == [
        ("billing-secrets", "delete", "deletion"),
        ("billing-config", "delete", "deletion"),
        ("billing-k8s-role", "delete", "deletion"),
        ("billing-read", "delete", "deletion"),
        ("billing-db", "delete", "deletion"),
        ("billing", "delete", "deletion"),
    ]
    assert (report.status, report.exit_code) == ("changes", 7)


def test_replacement_steps_fold_into_one_replacement():
    # `--show-replacement-steps` adds create-replacement and delete-replaced for the same URN.
    doc = fixture("config-change.json")
    replace = doc["steps"][1]
    doc["steps"][2:2] = [dict(replace, op="create-replacement"), dict(replace, op="delete-replaced")]
    report = build_report(doc)
    assert rows(report) == rows(build_report(fixture("config-change.json")))
    assert [(r.name, r.op, r.classification) for r in report.resources][0] == (
        "api-config", "replace", "replacement")


def test_a_resource_deleted_outside_pulumi_is_drift():
    doc = fixture("config-change.json")
    urn = doc["steps"][3]["urn"]  # the Vault secret the preview wants to create
    gone = {"resOutputsEvent": {"metadata": {
        "op": "refresh", "urn": urn, "type": "vault:kv/secretV2:SecretV2",
        "old": {"type": "vault:kv/secretV2:SecretV2", "urn": urn, "inputs": {}, "outputs": {}},
        "new": None, "detailedDiff": None}}}
    report = build_report(doc, [gone])
    change = report.resources[2]
    assert (change.name, change.op, change.classification) == ("api-stripe-key", "create", "drift")
    assert change.reason == ("deleted outside Pulumi (refresh found it gone); `pulumi up` "
                             "creates it again")
    assert report.status == "drift"


def test_secrets_are_never_compared_as_equal():
    # "[secret]" on both sides says nothing about the value: not evidence of drift.
    doc = fixture("rotated-secret.json")
    doc["steps"][1]["detailedDiff"] = {"secretStringWo": {"kind": "update", "inputDiff": False}}
    report = build_report(doc)
    assert rows(report)[0][3:] == ("config-changed", [("secretStringWo", "update", "code")])


def test_diff_reasons_are_the_fallback_without_detailed_diff():
    doc = fixture("config-change.json")
    doc["steps"][2]["detailedDiff"] = None
    doc["steps"][1]["detailedDiff"] = None
    report = build_report(doc)
    assert rows(report)[:2] == [
        ("api-config", "kubernetes:core/v1:ConfigMap", "replace", "replacement",
         [("data", "update-replace", "code"), ("metadata", "update-replace", "code")]),
        ("api-secrets", "kubernetes:external-secrets.io/v1:ExternalSecret", "update",
         "config-changed", [("spec", "update", "code")]),
    ]


def test_mandatory_policy_violation_and_preview_errors_exit_1():
    mandatory = [{"sequence": 1, "policyEvent": {
        "resourceUrn": "", "message": "stack output dbPassword looks like a secret",
        "policyName": "no-secret-outputs", "policyPackName": "configplane",
        "enforcementLevel": "mandatory"}}]
    assert build_report(fixture("no-changes.json"), mandatory).exit_code == 1
    doc = fixture("no-changes.json")
    doc["diagnostics"] = [{"message": "error: Preview failed: unauthorized", "severity": "error"},
                          {"message": "a warning", "severity": "warning"}]
    report = build_report(doc)
    assert (report.errors, report.exit_code) == (("error: Preview failed: unauthorized",), 1)


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("data.LOG_LEVEL", ("data", "LOG_LEVEL")),
        ("tokenPolicies[1]", ("tokenPolicies", 1)),
        ('metadata.annotations["reloader.stakater.com/auto"]',
         ("metadata", "annotations", "reloader.stakater.com/auto")),
        ("spec.data[0].remoteRef.key", ("spec", "data", 0, "remoteRef", "key")),
        ("metadata", ("metadata",)),
    ],
)
def test_parse_path(path, segments):
    assert parse_path(path) == segments


# --- rendering ---------------------------------------------------------------------------------


def test_markdown_for_drift():
    report = build_report(fixture("drift.json"), events("drift.events.jsonl"))
    md = render_markdown(report)
    lines = md.splitlines()
    assert lines[0] == "## configplane drift report: `configplane/prod`"
    assert lines[2] == "**Drift detected.** Resources were changed outside Pulumi."
    assert "2 resource(s): 2 drift." in lines
    assert (
        "| `api-k8s-role` | `vault:kubernetes/authBackendRole:AuthBackendRole` | update "
        "| **drift** | `tokenPolicies[1]` (delete, outside Pulumi) "
        "| changed outside Pulumi (refresh found it) |"
    ) in lines
    assert (
        "| advisory | `configplane/secret-rotation-schedule` | `api-db` | Secret api-db: rotation "
        "runs every 30 days; prod wants 7 days or less for database credentials. |"
    ) in lines
    assert lines[-1] == "Exit status: 7."


def test_markdown_for_no_changes_is_short():
    md = render_markdown(build_report(fixture("no-changes.json")))
    assert md == (
        "## configplane drift report: `configplane/dev`\n\n"
        "**No drift.** The stack matches the code.\n\n"
        "Exit status: 0.\n"
    )


def test_json_rendering_round_trips():
    report = build_report(fixture("config-change.json"))
    data = json.loads(render_json(report))
    assert data == json.loads(json.dumps(report.as_dict()))
    assert data["status"] == "changes" and data["exit_code"] == 7
    assert data["summary"] == {"drift": 0, "config-changed": 1, "replacement": 1,
                               "deletion": 0, "creation": 1, "secret-rotated": 0}
    assert data["change_summary"] == {"create": 1, "replace": 1, "same": 11, "update": 1}


def _plant(value):
    """Every string value (not key) in a state gets the canary; equality between sides holds."""
    if isinstance(value, dict):
        return {k: _plant(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plant(v) for v in value]
    return f"{CANARY}-{value}" if isinstance(value, str) else value


@pytest.mark.parametrize("name", ["config-change", "drift", "rotated-secret", "deletion"])
def test_state_values_never_reach_either_rendering(name):
    doc = copy.deepcopy(fixture(f"{name}.json"))
    for step in doc["steps"]:
        for key in ("oldState", "newState"):
            if step.get(key):
                step[key]["inputs"] = _plant(step[key].get("inputs") or {})
                step[key]["outputs"] = _plant(step[key].get("outputs") or {})
    doc["config"] = _plant(doc["config"])
    evs = events(f"{name}.events.jsonl") if (FIXTURES / f"{name}.events.jsonl").exists() else []
    for ev in evs:
        meta = (ev.get("resOutputsEvent") or ev.get("resourcePreEvent") or {}).get("metadata")
        for key in ("old", "new"):
            if meta and meta.get(key):
                meta[key]["inputs"] = _plant(meta[key]["inputs"])
                meta[key]["outputs"] = _plant(meta[key]["outputs"])
    planted = build_report(doc, evs)
    assert rows(planted) == rows(build_report(fixture(f"{name}.json"), evs))
    for text in (render_markdown(planted), render_json(planted)):
        assert CANARY not in text
        assert "[secret]" not in text  # no value is printed, so no placeholder either
        assert "api-config-2dbdmmkgdt" not in text and "AWSCURRENT" not in text


# --- the drift-report command ------------------------------------------------------------------


def test_cli_reads_files_and_exits_with_the_report_status():
    drift = str(FIXTURES / "drift.json")
    result = run_report(drift, "--events", str(FIXTURES / "drift.events.jsonl"), "--format", "json")
    assert result.exit_code == 7
    assert result.output == render_json(build_report(fixture("drift.json"),
                                                     events("drift.events.jsonl")))
    assert json.loads(result.output)["status"] == "drift"
    result = run_report(str(FIXTURES / "rotated-secret.json"))
    assert result.exit_code == 0
    assert result.output == render_markdown(build_report(fixture("rotated-secret.json")))
    assert "**No drift.** Only secrets rotated outside Pulumi, as expected." in result.output


def test_cli_reads_stdin():
    result = run_report("-", input=(FIXTURES / "no-changes.json").read_text())
    assert result.exit_code == 0
    assert result.output == render_markdown(build_report(fixture("no-changes.json")))


def test_cli_mandatory_violation_prints_the_report_then_fails(tmp_path):
    log = tmp_path / "events.jsonl"
    log.write_text(json.dumps({"sequence": 0, "policyEvent": {
        "resourceUrn": "", "message": "x", "policyName": "no-secret-outputs",
        "policyPackName": "configplane", "enforcementLevel": "mandatory"}}) + "\n")
    result = run_report(str(FIXTURES / "no-changes.json"), "--events", str(log))
    assert result.exit_code == 1
    assert "| mandatory | `configplane/no-secret-outputs` | (stack) | x |" in result.output
    assert "error: 1 mandatory policy violation(s); see the report above" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "x.json: the file is empty; expected the output of `pulumi preview --json` (did the "
         "preview fail?)"),
        ("[]", "x.json: a JSON list; expected the output of `pulumi preview --json` (one object)"),
        ('{"steps": {}}', "x.json: steps: expected a list of steps"),
        ('{"steps": [{"op": "update"}]}', "x.json: steps[0].urn: expected a non-empty string"),
        ('{"steps": [{"op": "update", "urn": "api"}]}',
         "x.json: steps[0].urn: expected a URN (urn:pulumi:<stack>::<project>::<type>::<name>)"),
        ('{"steps": [{"op": "update", "urn": "urn:pulumi:a::b::c::d", "detailedDiff": '
         '{"data": {"diffKind": "update"}}}]}',
         'x.json: steps[0].detailedDiff["data"]: expected an object with a "kind"'),
        ('{"steps": [{"urn": "urn:pulumi:a::b::c::d"}]}',
         "x.json: steps[0].op: expected a non-empty string"),
        ('{"steps": ["update"]}', "x.json: steps[0]: expected an object"),
        ('{"steps": [{"op": "update", "urn": "urn:pulumi:a::b::c::d", "oldState": []}]}',
         "x.json: steps[0].oldState: expected an object or null"),
        ('{"steps": [{"op": "update", "urn": "urn:pulumi:a::b::c::d", "newState": '
         '{"inputs": "CANARY-d41f5e0c9b"}}]}', "x.json: steps[0].newState.inputs: expected an object"),
        ('{"steps": [{"op": "update", "urn": "urn:pulumi:a::b::c::d", "replaceReasons": '
         '["data", 3]}]}', "x.json: steps[0].replaceReasons: expected a list of property names"),
        ('{"steps": [{"op": "update", "urn": "urn:pulumi:a::b::c::d", "detailedDiff": []}]}',
         "x.json: steps[0].detailedDiff: expected an object or null"),
        ('{"steps": [{"op": "update", "urn": "urn:pulumi:a::b::c::d", "detailedDiff": '
         '{"spec.data[0]": {"kind": 2}}}]}',
         'x.json: steps[0].detailedDiff["spec.data[0]"]: expected an object with a "kind"'),
        ('{"changeSummary": {"same": "14"}}', "x.json: changeSummary: expected an object of counts"),
        ('{"steps": null, "diagnostics": ["error"]}', "x.json: diagnostics: expected a list of objects"),
        ("{}", "x.json: no steps, no changeSummary, no diagnostics; expected the output of "
         "`pulumi preview --json`"),
        ('{"sequence": 3, "policyEvent": {}}',
         "x.json: this is an engine event, not a preview document; pass the event log with "
         "--events and the preview JSON as the file"),
    ],
)
def test_cli_names_the_file_and_the_key_for_bad_preview_input(tmp_path, monkeypatch, content,
                                                              message):
    (tmp_path / "x.json").write_text(content)
    monkeypatch.chdir(tmp_path)
    result = run_report("x.json")
    assert result.exit_code == 1
    schema_error = ": expected " in message
    assert result.output == f"error: {message}{'; ' + FIX if schema_error else ''}\n"
    assert "Traceback" not in result.output and CANARY not in result.output


def test_the_preview_schema_is_valid_and_accepts_every_recorded_preview():
    Draft202012Validator.check_schema(preview_schema())
    recorded = sorted(p.name for p in FIXTURES.glob("*.json") if p.name != "malformed.json")
    assert recorded == ["config-change.json", "deletion.json", "drift.json", "no-changes.json",
                        "rotated-secret.json"]
    validator = Draft202012Validator(preview_schema())
    for name in recorded:
        assert list(validator.iter_errors(json.loads((FIXTURES / name).read_text()))) == [], name


def _with_expected(schema: object) -> list[str]:
    """Every JSON pointer of a subschema that says what it expects."""
    found = []

    def walk(node: object, at: str) -> None:
        if isinstance(node, dict):
            if EXPECTED in node:
                found.append(at)
            for key, value in node.items():
                walk(value, f"{at}/{key}")
    walk(schema, "")
    return found


def test_every_constraint_of_the_preview_schema_has_a_message():
    # a shape the schema checks, but no `x-expected` on the way to it, would print "another shape"
    assert _with_expected(preview_schema()) == [
        "/properties/steps", "/properties/changeSummary", "/properties/diagnostics",
        "/$defs/step", "/$defs/step/properties/op", "/$defs/step/properties/urn",
        "/$defs/step/properties/detailedDiff",
        "/$defs/step/properties/detailedDiff/additionalProperties",
        "/$defs/state", "/$defs/state/properties/inputs", "/$defs/propertyNames",
    ]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.just(CANARY),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["kind", "inputs", "type", "op", "urn", "data"]), inner, max_size=3),
    max_leaves=6,
)
STEP_KEYS = ["op", "urn", "oldState", "newState", "diffReasons", "replaceReasons", "detailedDiff"]
# near-miss shapes: a map or a list of anything, where the report expects one of a kind
NEAR = {
    "detailedDiff": st.dictionaries(st.sampled_from(["data", "spec.x[0]"]), JSON, max_size=2),
    "oldState": st.dictionaries(st.sampled_from(["inputs", "type", "outputs"]), JSON, max_size=3),
    "steps": st.lists(st.dictionaries(st.sampled_from(STEP_KEYS), JSON, max_size=4), max_size=2),
    "diagnostics": st.lists(st.dictionaries(st.sampled_from(["severity", "message"]), JSON)),
    "changeSummary": st.dictionaries(st.sampled_from(["same", "update"]), JSON, max_size=2),
}
NEAR["newState"] = NEAR["oldState"]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), where=st.sampled_from(["steps", "changeSummary", "diagnostics", *STEP_KEYS]),
       step=st.integers(0, 3))
def test_what_the_schema_accepts_the_classifier_reads(data, where, step):
    """Any value at any key the report reads: either the schema refuses it with a message that
    quotes no value (keys are property paths: those it may name), or the report is built and
    rendered without an error: the schema covers everything the classifier relies on."""
    value = data.draw(NEAR[where] | JSON if where in NEAR else JSON)
    doc = fixture("config-change.json")
    if where in STEP_KEYS:
        doc["steps"][step][where] = value
    else:
        doc[where] = value
    try:
        checked = parse_preview(json.dumps(doc), "x.json")
    except DriftInputError as e:
        assert str(e).startswith("x.json: ") and str(e).endswith(
            "expected the output of `pulumi preview --json`")
        assert CANARY not in str(e) and "another shape" not in str(e)
        return
    report = build_report(checked, events("config-change.events.jsonl"))
    assert report.exit_code in (0, 1, 7)
    assert render_markdown(report).endswith(f"Exit status: {report.exit_code}.\n")
    assert json.loads(render_json(report))["exit_code"] == report.exit_code


def test_cli_truncated_preview_missing_and_directory_inputs(tmp_path):
    result = run_report(str(FIXTURES / "malformed.json"))
    assert result.exit_code == 1
    with pytest.raises(json.JSONDecodeError) as cut:
        json.loads((FIXTURES / "malformed.json").read_text())
    assert result.output == (
        f"error: {FIXTURES / 'malformed.json'}: not JSON (line {cut.value.lineno}, column "
        f"{cut.value.colno}: {cut.value.msg}); expected the output of `pulumi preview --json`, "
        "complete (a preview that was cut off leaves a truncated document)\n")
    missing = tmp_path / "nope.json"
    assert run_report(str(missing)).output == f"error: {missing}: no such file\n"
    assert run_report(str(tmp_path)).output == (f"error: {tmp_path}: is a directory, expected a "
                                                "file. Fix: name a file.\n")


def test_cli_bad_event_log_names_the_line(tmp_path):
    log = tmp_path / "events.jsonl"
    log.write_text('{"sequence": 0}\n\nnot json\n')
    result = run_report(str(FIXTURES / "drift.json"), "--events", str(log))
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {log}:3: not a JSON engine event")
    preview = str(FIXTURES / "drift.json")
    swapped = run_report(preview, "--events", preview)  # the pretty-printed preview as a log
    assert swapped.exit_code == 1
    assert swapped.output.startswith(f"error: {preview}:1: not a JSON engine event")


def test_parse_events_rejects_a_preview_document_line():
    with pytest.raises(DriftInputError, match=r"e\.jsonl:1: this is a preview document"):
        parse_events('{"steps": [], "changeSummary": {}}\n', "e.jsonl")


# --- the drift command: its seams -------------------------------------------------------------


def _project(tmp_path: Path, stack: str = "prod") -> Path:
    project = tmp_path / "project"
    (project / "policies" / "config").mkdir(parents=True)
    (project / "Pulumi.yaml").write_text("name: configplane\nruntime: python\n")
    (project / "policies" / "PulumiPolicy.yaml").write_text("runtime: python\n")
    (project / "policies" / "config" / f"{stack}.json").write_text("{}\n")
    return project


RUN_DRIFT = "from configplane.cli.commands.drift import command; command(prog_name='configplane drift')"


def test_drift_without_the_pulumi_cli_says_how_to_install_it(tmp_path):
    # For real: a child process whose PATH has no `pulumi` at all.
    empty = tmp_path / "bin"
    empty.mkdir()
    project = _project(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PULUMI_HOME",)}
    env["PATH"] = str(empty)
    proc = subprocess.run(
        [sys.executable, "-c", RUN_DRIFT, "--stack", "prod", "--project-dir", str(project)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: the Pulumi CLI is not installed: no `pulumi` on PATH.")
    assert "curl -fsSL https://get.pulumi.com | sh" in proc.stderr
    assert "Traceback" not in proc.stderr


# Stands in for the Pulumi CLI binary that the Automation API (pulumi.automation) drives. It
# answers the three calls the SDK makes: `pulumi version` (it claims 3.200.0: up to 3.205 the
# SDK reads engine events from the --event-log FILE, which a fake can write; newer CLIs stream
# them over gRPC), `pulumi stack select`, and `pulumi preview`, for which it records its argv,
# appends a recorded event log to --event-log, prints a recorded preview JSON and exits as told.
FAKE_PULUMI = textwrap.dedent('''\
    #!{python}
    import json, os, sys
    args = sys.argv[1:]
    if args == ["version"]:
        print("v3.200.0")
        sys.exit(0)
    if "stack" in args and "select" in args:
        sys.exit(0)
    if "preview" in args:
        with open(os.environ["FAKE_PULUMI_RECORD"], "w") as f:
            json.dump({{"args": args, "cwd": os.getcwd()}}, f)
        events = os.environ.get("FAKE_PULUMI_EVENTS")
        if events:
            with open(args[args.index("--event-log") + 1], "a") as log:
                log.write(open(events).read())
        preview = os.environ.get("FAKE_PULUMI_PREVIEW")
        if preview:
            sys.stdout.write(open(preview).read())
        sys.stderr.write(os.environ.get("FAKE_PULUMI_STDERR", ""))
        sys.exit(int(os.environ["FAKE_PULUMI_EXIT"]))
    sys.stderr.write("fake pulumi: unexpected call %r\\n" % (args,))
    sys.exit(2)
''')


@pytest.fixture
def fake_pulumi(tmp_path):
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    exe = bin_dir / "pulumi"
    exe.write_text(FAKE_PULUMI.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    record = tmp_path / "record.json"

    def run(preview: str | None, events_file: str | None, exit_code: int, *extra: str,
            stderr: str = ""):
        project = _project(tmp_path)
        env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "FAKE_PULUMI_RECORD": str(record),
            "FAKE_PULUMI_PREVIEW": str(FIXTURES / preview) if preview else "",
            "FAKE_PULUMI_EVENTS": str(FIXTURES / events_file) if events_file else "",
            "FAKE_PULUMI_EXIT": str(exit_code),
            "FAKE_PULUMI_STDERR": stderr,
        }
        result = CliRunner().invoke(
            drift_command, ["--stack", "prod", "--project-dir", str(project), *extra], env=env
        )
        recorded = json.loads(record.read_text()) if record.exists() else None
        return result, recorded, project

    return run


def test_drift_runs_refresh_preview_with_the_policy_pack(fake_pulumi):
    result, recorded, project = fake_pulumi("drift.json", "drift.events.jsonl", 7,
                                            "--format", "json")
    args = recorded["args"]
    assert args[:2] == ["--non-interactive", "preview"]
    for flag in ("--refresh", "--expect-no-changes", "--json"):
        assert flag in args
    assert args[args.index("--policy-pack") + 1] == str(project / "policies")
    assert args[args.index("--policy-pack-config") + 1] == str(
        project / "policies" / "config" / "prod.json")
    assert args[-2:] == ["--stack", "prod"]
    assert recorded["cwd"] == str(project)
    assert result.exit_code == 7
    data = json.loads(result.output)
    # the engine events reached the report through on_event: refresh evidence and policies
    assert [(r["name"], r["classification"], r["reason"]) for r in data["resources"]] == [
        ("api-k8s-role", "drift", "changed outside Pulumi (refresh found it)"),
        ("api-secrets", "drift", "changed outside Pulumi (refresh found it)"),
    ]
    assert [v["policy"] for v in data["policy_violations"]] == ["secret-rotation-schedule"]
    assert data == build_report(fixture("drift.json"), events("drift.events.jsonl")).as_dict()


def test_drift_only_rotations_exit_0_although_pulumi_says_7(fake_pulumi):
    result, _, _ = fake_pulumi("rotated-secret.json", "rotated-secret.events.jsonl", 7)
    assert result.exit_code == 0
    # the events came through the Automation API's on_event: the same report as from the log
    assert result.output == render_markdown(build_report(fixture("rotated-secret.json"),
                                                         events("rotated-secret.events.jsonl")))


def test_drift_no_changes(fake_pulumi):
    result, recorded, _ = fake_pulumi("no-changes.json", "no-changes.events.jsonl", 0,
                                            "--no-policy")
    assert result.exit_code == 0
    assert "--policy-pack" not in recorded["args"]
    assert result.output == render_markdown(build_report(fixture("no-changes.json")))


def test_drift_reports_a_failed_preview(fake_pulumi):
    result, _, _ = fake_pulumi(None, None, 3, stderr="error: [401] Unauthorized: No credentials\n")
    assert result.exit_code == 1
    assert result.output == (
        "error: pulumi preview failed (exit 3): error: [401] Unauthorized: No credentials\n"
    )


def test_drift_checks_its_inputs_before_running_pulumi(tmp_path):
    result = CliRunner().invoke(drift_command, ["--stack", "prod", "--project-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output == (
        f"error: {tmp_path}: no Pulumi.yaml here; pass the project with --project-dir\n"
    )
    project = _project(tmp_path)
    result = CliRunner().invoke(drift_command, [
        "--stack", "prod", "--project-dir", str(project), "--policy-pack-config", "nope.json"])
    assert result.output == "error: nope.json: no such policy config file\n"


def test_the_library_classifies_and_only_the_drift_commands_render():
    from tests.test_architecture import imported_modules

    renderers = {str(p.relative_to(REPO)) for p in (REPO / "configplane").rglob("*.py")
                 if "configplane.cli.commands.drift_render" in imported_modules(p)}
    assert renderers == {"configplane/cli/commands/drift.py", "configplane/cli/commands/drift_report.py"}
    for library in ("drift.py", "drift_input.py", "pulumi_paths.py"):
        imported = imported_modules(REPO / "configplane" / "ops" / library)
        assert not {m for m in imported if m.startswith(("configplane.cli.commands", "click"))}, library
