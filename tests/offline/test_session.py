"""The offline policy run: a real pack process driven through the Analyzer protocol."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pulumi
import pytest
from google.protobuf import json_format

from configplane.offline import (
    ARCHIVE_SIG,
    ASSET_SIG,
    OUTPUT_SIG,
    RESOURCE_SIG,
    SIG_KEY,
    UNKNOWN,
    AnalyzedResource,
    PolicyConfig,
    PolicyConfigError,
    PolicyPackError,
    PolicyPackSession,
    Remediation,
    ResourceOptions,
    Violation,
    load_policy_config_file,
    marshal_properties,
    run_policy_pack,
    secret,
)
from configplane.redaction import SECRET_SIG_VALUE

PACK = Path(__file__).resolve().parents[1] / "fixtures" / "minimal_pack"
CANARY = "canary-Pa55w0rd-7f3e9c"
CM = "kubernetes:core/v1:ConfigMap"
ROOT = "urn:pulumi:dev::proj::pulumi:pulumi:Stack::proj-dev"
SVC = "urn:pulumi:dev::proj::configplane:svc:Service::svc"

D_FORBIDDEN = "ConfigMaps carry no key named 'forbidden'."
D_SMALL = "ConfigMaps stay small."
D_FEW = "The stack has few ConfigMaps."
D_PARENT = "Every ConfigMap belongs to a component."
D_SECRET = "Reports what the pack sees of a probe's password."
D_STACK = "Reports what the pack sees of the stack."


def cm_urn(name: str, parent: bool = False) -> str:
    kind = f"configplane:svc:Service${CM}" if parent else CM
    return f"urn:pulumi:dev::proj::{kind}::{name}"


def configmap(name: str, data: object, parent: bool = False) -> AnalyzedResource:
    return AnalyzedResource(urn=cm_urn(name, parent), type=CM, inputs={"data": data},
                            outputs={"data": data}, parent=SVC if parent else None)


STACK = [
    AnalyzedResource(urn=ROOT, type="pulumi:pulumi:Stack"),
    AnalyzedResource(urn=SVC, type="configplane:svc:Service", parent=ROOT),
    configmap("bad", {"forbidden": "1", "a": "2", "b": "3"}),
    configmap("ok", {"a": "1"}, parent=True),
    configmap("two", {"a": "1", "b": "2"}, parent=True),
]


def run(tmp_path: Path, policy_config: dict | None = None, resources=STACK, **kw):
    path = None
    if policy_config is not None:
        path = tmp_path / "policy-config.json"
        path.write_text(json.dumps(policy_config))
    kw.setdefault("config", {"test:pidfile": str(tmp_path / "pid")})
    return run_policy_pack(PACK, project="proj", stack="dev", resources=resources,
                           policy_config_file=path, **kw)


def assert_pack_gone(tmp_path: Path) -> None:
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# --- marshalling -------------------------------------------------------------------------


def test_marshal_properties_keeps_secrets_unknowns_and_assets_as_the_engine_does():
    props = {
        "password": secret(CANARY),
        "__defaults": ["name"],
        "nested": {"__inner": 1, "k": UNKNOWN, "u": pulumi.output.Unknown(), "n": None},
        "asset": pulumi.StringAsset("hi"),
        "archive": pulumi.AssetArchive({"a.txt": pulumi.FileAsset("a.txt")}),
        "ref": {SIG_KEY: RESOURCE_SIG, "urn": "urn:x", "id": "i-1"},
        "ref_unknown_id": {SIG_KEY: RESOURCE_SIG, "urn": "urn:x", "id": ""},
        "component_ref": {SIG_KEY: RESOURCE_SIG, "urn": "urn:c"},
        "out": {SIG_KEY: OUTPUT_SIG, "value": "v", "secret": True},
        "out_unknown": {SIG_KEY: OUTPUT_SIG},
        "list": [1, True, "s", (2, 3)],
    }
    assert json_format.MessageToDict(marshal_properties(props)) == {
        "password": {SIG_KEY: SECRET_SIG_VALUE, "value": CANARY},
        "nested": {"k": UNKNOWN, "u": UNKNOWN, "n": None},
        "asset": {SIG_KEY: ASSET_SIG, "text": "hi"},
        "archive": {SIG_KEY: ARCHIVE_SIG, "assets": {"a.txt": {SIG_KEY: ASSET_SIG,
                                                               "path": "a.txt"}}},
        "ref": "i-1",
        "ref_unknown_id": UNKNOWN,
        "component_ref": "urn:c",
        "out": {SIG_KEY: SECRET_SIG_VALUE, "value": "v"},
        "out_unknown": UNKNOWN,
        "list": [1.0, True, "s", [2.0, 3.0]],
    }
    kept = json_format.MessageToDict(marshal_properties(props, skip_internal_keys=False))
    assert kept["__defaults"] == ["name"] and kept["nested"]["__inner"] == 1.0


def test_marshal_properties_rejects_unknown_types_naming_the_path():
    with pytest.raises(PolicyPackError) as e:
        marshal_properties({"spec": {"items": [1, object()]}})
    assert str(e.value) == "property spec.items[1]: cannot marshal a value of type object"


# --- policy config file --------------------------------------------------------------------


def test_load_policy_config_file_levels_and_objects(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({
        "all": "advisory", "a": "mandatory",
        "b": {"enforcementLevel": "disabled", "max": 3}, "c": {"max": 4}, "d": {},
    }))
    assert load_policy_config_file(path) == {
        "all": PolicyConfig("advisory", None), "a": PolicyConfig("mandatory", None),
        "b": PolicyConfig("disabled", {"max": 3}), "c": PolicyConfig(None, {"max": 4}),
    }
    path.write_text("  \n")
    assert load_policy_config_file(path) == {}


@pytest.mark.parametrize("text,error", [
    ('{"a": "strict"}',
     "a: 'strict' is not a valid enforcement level; "
     "use one of advisory, mandatory, remediate, disabled"),
    ('{"a": {"enforcementLevel": 1}}',
     "a.enforcementLevel: 1 is not a valid enforcement level; "
     "use one of advisory, mandatory, remediate, disabled"),
    ('{"a": 5}',
     "a: must be an enforcement level string or an object with \"enforcementLevel\" and the "
     "policy's properties"),
    ('["a"]', 'the top level must be an object mapping policy names (or "all") to a level or '
              'an object'),
    ('{"a": "mandatory",}',
     "not valid JSON (line 1, column 19: Expecting property name enclosed in double quotes); "
     "fix the syntax"),
])
def test_load_policy_config_file_errors_name_the_file_and_key(tmp_path, text, error):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(PolicyConfigError) as e:
        load_policy_config_file(path)
    assert str(e.value) == f"{path}: {error}"


def test_missing_policy_config_file_is_a_clean_error(tmp_path):
    with pytest.raises(PolicyConfigError) as e:
        run_policy_pack(PACK, project="proj", stack="dev", resources=[],
                        policy_config_file=tmp_path / "no.json")
    assert str(e.value) == f"{tmp_path / 'no.json'}: cannot read the policy config file: " \
                           "No such file or directory"


# --- the real pack through the protocol ----------------------------------------------------


def test_default_config_exact_violations_and_pack_info(tmp_path):
    report = run(tmp_path)
    assert report.violations == (
        Violation("no-forbidden-key", cm_urn("bad"),
                  f"{D_FORBIDDEN}\nConfigMap bad has the key 'forbidden'; remove it.",
                  "mandatory", D_FORBIDDEN),
        Violation("max-data-keys", cm_urn("bad"),
                  f"{D_SMALL}\nConfigMap bad has 3 data keys; at most 2.", "advisory", D_SMALL),
        # A stack diagnostic without a URN is attributed to the root stack, as the CLI does.
        Violation("max-configmaps", ROOT, f"{D_FEW}\nthe stack has 3 ConfigMaps; at most 2.",
                  "advisory", D_FEW),
        Violation("configmap-needs-parent", cm_urn("bad"),
                  f"{D_PARENT}\nConfigMap bad has no parent component.", "advisory", D_PARENT),
    )
    assert not report.passed and [v.policy for v in report.mandatory] == ["no-forbidden-key"]
    # PulumiPolicy.yaml's version wins over the SDK's 0.0.1, as in the CLI.
    assert (report.pack_name, report.pack_version) == ("minimal-pack", "1.2.3")
    assert [(p.name, p.type, p.enforcement_level, dict(p.config)) for p in report.policies] == [
        ("configmap-needs-parent", "stack", "advisory", {}),
        ("crash-probe", "resource", "disabled", {}),
        ("max-configmaps", "stack", "advisory", {"max": 2.0}),
        ("max-data-keys", "resource", "advisory", {"maxKeys": 2.0}),  # pack's initial config
        ("no-forbidden-key", "resource", "mandatory", {}),
        ("secret-probe", "resource", "disabled", {}),
        ("stack-probe", "stack", "disabled", {}),
        ("strip-forbidden", "resource", "disabled", {}),
    ]
    assert report.warnings == () and report.logs == ()
    assert_pack_gone(tmp_path)


def test_config_file_overrides_initial_config_and_schema_defaults(tmp_path):
    report = run(tmp_path, {"max-data-keys": {"maxKeys": 4}, "max-configmaps": {"max": 5}})
    assert [(v.policy, v.urn, v.level) for v in report.violations] == [
        ("no-forbidden-key", cm_urn("bad"), "mandatory"),
        ("configmap-needs-parent", cm_urn("bad"), "advisory"),
    ]
    config = {p.name: (p.enforcement_level, dict(p.config)) for p in report.policies}
    assert config["max-data-keys"] == ("advisory", {"maxKeys": 4})
    assert config["max-configmaps"] == ("advisory", {"max": 5})


def test_all_sets_every_level_but_keeps_properties(tmp_path):
    report = run(tmp_path, {"all": "mandatory"})
    assert [(v.policy, v.urn, v.level) for v in report.violations] == [
        ("no-forbidden-key", cm_urn("bad"), "mandatory"),
        ("max-data-keys", cm_urn("bad"), "mandatory"),  # maxKeys still 2
        ("max-configmaps", ROOT, "mandatory"),
        ("configmap-needs-parent", cm_urn("bad"), "mandatory"),
        ("stack-probe", ROOT, "mandatory"),  # "all" enables the disabled probe too
    ]
    assert report.violations[-1].message == (
        f"{D_STACK}\nproject=proj stack=dev org=organization dry_run=True flag=None tags={{}}")


def test_policy_entry_beats_all_and_disabled_reports_nothing(tmp_path):
    report = run(tmp_path, {"all": "disabled", "no-forbidden-key": "mandatory"})
    assert [(v.policy, v.urn, v.level) for v in report.violations] == [
        ("no-forbidden-key", cm_urn("bad"), "mandatory")]
    report = run(tmp_path, {"no-forbidden-key": "disabled"})
    assert "no-forbidden-key" not in {v.policy for v in report.violations}
    assert report.passed


def test_object_entry_sets_level_and_threshold(tmp_path):
    report = run(tmp_path, {"max-data-keys": {"enforcementLevel": "mandatory", "maxKeys": 1}})
    assert [(v.policy, v.urn, v.level, v.message.splitlines()[1])
            for v in report.violations if v.policy == "max-data-keys"] == [
        ("max-data-keys", cm_urn("bad"), "mandatory", "ConfigMap bad has 3 data keys; at most 1."),
        ("max-data-keys", cm_urn("two", True), "mandatory",
         "ConfigMap two has 2 data keys; at most 1."),
    ]


def test_remediations_run_first_and_analyze_sees_their_result(tmp_path):
    report = run(tmp_path, {"strip-forbidden": "remediate"})
    assert report.remediations == (
        Remediation("strip-forbidden", cm_urn("bad"),
                    "Removes the 'forbidden' key from ConfigMaps."),)
    # no-forbidden-key and max-data-keys (2 keys left) see the remediated inputs; the stack
    # policies see the outputs as given.
    assert [(v.policy, v.urn) for v in report.violations] == [
        ("max-configmaps", ROOT), ("configmap-needs-parent", cm_urn("bad"))]


def test_schema_violations_in_the_config_file_are_reported_and_the_pack_stopped(tmp_path):
    with pytest.raises(PolicyConfigError) as e:
        run(tmp_path, {"max-data-keys": {"maxKeys": "lots"}, "max-configmaps": {"max": 1.5}})
    path = tmp_path / "policy-config.json"
    assert str(e.value) == (
        f"invalid policy config ({path}):\n"
        "  max-configmaps: max: 1.5 is not of type 'integer'\n"
        "  max-data-keys: maxKeys: 'lots' is not of type 'integer'")
    assert_pack_gone(tmp_path)


def test_unknown_policy_names_warn_or_fail_like_the_cli(tmp_path):
    report = run(tmp_path, {"no-such-policy": "mandatory"})
    path = tmp_path / "policy-config.json"
    assert report.warnings == (f"{path}: 'no-such-policy' names no policy of pack minimal-pack",)
    with pytest.raises(PolicyConfigError) as e:
        run(tmp_path, {"no-such-policy": {"max": 1}})
    assert str(e.value) == (f"{path}: no-such-policy: names no policy of this pack and sets no "
                            "enforcementLevel; fix the policy name or remove the entry")


def probe(**kw) -> AnalyzedResource:
    return AnalyzedResource(urn="urn:pulumi:dev::proj::configplane:svc:Service$test:index:Probe"
                                "::probe", type="test:index:Probe", parent=SVC, **kw)


def test_secret_inputs_arrive_in_the_pack_and_never_leak(tmp_path):
    resources = [probe(inputs={"password": secret(CANARY)}, outputs={"password": secret(CANARY)})]
    report = run(tmp_path, {"secret-probe": "advisory"}, resources=resources)
    digest = hashlib.sha256(CANARY.encode()).hexdigest()[:16]
    # pulumi_policy unwraps the secret: the plaintext arrives, the marker does not.
    assert report.violations == (
        Violation("secret-probe", resources[0].urn,
                  f"{D_SECRET}\nsha256={digest} type=str echo=[secret]", "advisory", D_SECRET),)
    assert CANARY not in repr(report)


def test_a_crashing_policy_gives_a_clean_redacted_error(tmp_path):
    resources = [probe(inputs={"password": secret(CANARY)})]
    with pytest.raises(PolicyPackError) as e:
        run(tmp_path, {"crash-probe": "advisory"}, resources=resources)
    assert str(e.value).startswith(
        f"policy pack {PACK} failed during Analyze of {resources[0].urn}: UNKNOWN: "
        "Exception calling application: probe crashed on [secret]")
    assert CANARY not in str(e.value)
    assert_pack_gone(tmp_path)


def test_stack_analysis_sees_outputs_graph_options_provider_and_stack_settings(tmp_path):
    prov = "urn:pulumi:dev::proj::pulumi:providers:kubernetes::k8s"
    ok = cm_urn("ok", parent=True)
    resources = [
        AnalyzedResource(urn=ROOT, type="pulumi:pulumi:Stack"),
        AnalyzedResource(urn=SVC, type="configplane:svc:Service", parent=ROOT),
        AnalyzedResource(urn=prov, type="pulumi:providers:kubernetes",
                         inputs={"namespace": "team-a", "__internal": "x"}),
        configmap("ok", {"a": "1"}, parent=True),
        probe(inputs={"password": "x"}, outputs={"out": 1},
              dependencies=[ok], property_dependencies={"password": [ok], "empty": []},
              provider=f"{prov}::prov-id",
              options=ResourceOptions(protect=True, ignore_changes=("password",))),
    ]
    report = run(tmp_path, {"stack-probe": "advisory"}, resources=resources, dry_run=False,
                 organization="acme", tags={"env": "dev"},
                 config={"test:flag": "on", "test:pidfile": str(tmp_path / "pid")})
    assert [(v.urn, v.message.splitlines()[1]) for v in report.violations] == [
        (resources[-1].urn,
         f"parent=svc deps=['{ok}'] propdeps={{'password': ['{ok}']}} protect=True "
         "ignore=['password'] provider=k8s:{'namespace': 'team-a'} outputs={'out': 1.0}"),
        (ROOT, "project=proj stack=dev org=acme dry_run=False flag=on tags={'env': 'dev'}"),
    ]


def test_unknown_inputs_make_policies_advisory_during_preview(tmp_path):
    report = run(tmp_path, resources=[STACK[1], configmap("later", UNKNOWN, parent=True)])
    prefix = "from policy pack 'minimal-pack@v0.0.1' during preview: string value at .data " \
             "can't be known during preview"
    assert report.violations == (
        Violation("no-forbidden-key", cm_urn("later", True),
                  f"can't run policy 'no-forbidden-key' {prefix}", "advisory", D_FORBIDDEN),
        Violation("max-data-keys", cm_urn("later", True),
                  f"can't run policy 'max-data-keys' {prefix}", "advisory", D_SMALL),
    )


def test_session_stops_the_process(tmp_path):
    with PolicyPackSession(PACK, project="proj", stack="dev") as session:
        pid = session.pid
        assert session.run([]).violations == ()
        os.kill(pid, 0)  # alive while the session is open
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# --- packs that do not start ---------------------------------------------------------------


def make_pack(tmp_path: Path, main: str, runtime: str = "python") -> Path:
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "PulumiPolicy.yaml").write_text(f"runtime: {runtime}\nversion: 0.1.0\n")
    (pack / "__main__.py").write_text(main)
    return pack


def test_a_pack_that_crashes_at_startup_gives_its_stderr_tail(tmp_path):
    pack = make_pack(tmp_path, 'raise RuntimeError("boom")\n')
    with pytest.raises(PolicyPackError) as e:
        run_policy_pack(pack, project="proj", stack="dev", resources=[])
    message = str(e.value)
    assert message.startswith(
        f"policy pack {pack} failed to start (exit code 1)\nlast output of the pack:\n")
    assert message.endswith("\n  RuntimeError: boom")


def test_a_pack_that_prints_no_port_is_stopped(tmp_path):
    pack = make_pack(tmp_path, 'import time\nprint("hello")\ntime.sleep(60)\n')
    session = PolicyPackSession(pack, project="proj", stack="dev")
    try:
        session.start()
        pid = session.pid
        with pytest.raises(PolicyPackError) as e:
            session.run([])
    finally:
        session.close()
    assert str(e.value) == f"policy pack {pack} wrote an invalid port to stdout: 'hello'"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_pack_that_never_answers_times_out_and_is_stopped(tmp_path):
    pack = make_pack(tmp_path, "import time\ntime.sleep(60)\n")
    session = PolicyPackSession(pack, project="proj", stack="dev", startup_timeout=1)
    try:
        session.start()
        pid = session.pid
        with pytest.raises(PolicyPackError) as e:
            session.run([])
    finally:
        session.close()
    assert str(e.value) == f"policy pack {pack} did not print its port within 1s"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_engine_address_is_live_and_pack_output_is_kept(tmp_path):
    # The CLI passes its engine address; a pack may log there. Output is kept, redacted.
    pack = make_pack(tmp_path, f"""
import sys
import grpc
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc
from pulumi_policy import PolicyPack, ResourceValidationPolicy

engine = engine_pb2_grpc.EngineStub(grpc.insecure_channel(sys.argv[1]))
engine.Log(engine_pb2.LogRequest(severity=engine_pb2.WARNING, message="hello engine"))
root = engine.GetRootResource(engine_pb2.GetRootResourceRequest()).urn
print("root is", root, "and {CANARY}", file=sys.stderr, flush=True)
PolicyPack(name="talky", policies=[ResourceValidationPolicy(
    name="nothing", description="Never fires.", validate=lambda args, report: None)])
""")
    report = run_policy_pack(pack, project="proj", stack="dev", resources=[],
                             config={"proj:db": CANARY}, config_secret_keys=["proj:db"])
    assert report.logs == ("warning: hello engine", f"root is {ROOT} and [secret]")


def test_only_python_packs_run_offline(tmp_path):
    pack = make_pack(tmp_path, "", runtime="nodejs")
    with pytest.raises(PolicyPackError) as e:
        run_policy_pack(pack, project="proj", stack="dev", resources=[])
    assert str(e.value) == (f"{pack / 'PulumiPolicy.yaml'}: runtime must be python (got "
                            "'nodejs'); only Python policy packs can be run offline")
