"""Flags: flagd's own schemas and test cases, rollouts evaluated by flagd's own evaluator
(openfeature-flagd-core), and a flag flip that renames nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pulumi
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from configplane.cli.commands.flags import command as flags_command
from configplane.contract import FLAGS_DATA_KEY
from configplane.inputs import read_stack_files
from configplane.model import (
    FLAGD_FLAGS_URI,
    FLAGD_TARGETING_URI,
    TARGETING_FIX,
    FlagProblem,
    check_flags,
    flagd_validator,
    render_flags,
)
from configplane.offline import run_plan
from configplane.validation import load_stack
from tests.catalog_compat import edit_stack
from tests.conftest import REPO
from tests.tables import plain_rows
from tests.validation.test_pipeline import run_validate

VENDOR = REPO / "schemas" / "vendor" / "flagd"
CASES = VENDOR / "test"
N = 4000  # targeting keys per rollout measurement
BOOL = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}


def cases(kind: str, sign: str) -> list[Path]:
    return sorted((CASES / kind / sign).glob("*.json"))


def case_id(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.parent.name}/{path.name}"


# --- the vendored schemas behave as upstream's own test says ---------------------------------


def test_upstream_cases_are_all_vendored():
    names = {case_id(p) for kind in ("flags", "targeting") for sign in ("positive", "negative")
             for p in cases(kind, sign)}
    assert len(names) == 34  # 9 + 9 flags, 7 + 9 targeting cases at upstream commit 741a7f8
    assert json.loads((VENDOR / "flags.json").read_text())["$id"] == FLAGD_FLAGS_URI
    assert json.loads((VENDOR / "targeting.json").read_text())["$id"] == FLAGD_TARGETING_URI


@pytest.mark.parametrize("path", [p for s in ("positive", "negative") for k in ("flags", "targeting")
                                  for p in cases(k, s)], ids=case_id)
def test_vendored_schemas_decide_upstream_cases_like_upstream(path: Path):
    """flagd-schemas' json/flagd_definitions_test.go: a file is validated against the schema
    its `$schema` names (targeting cases: targeting.json); positives pass, negatives fail."""
    instance = json.loads(path.read_text())
    schema = instance.get("$schema", "../../../targeting.json")
    uri = schema.replace("../../..", "https://flagd.dev/schema/v0")
    errors = list(flagd_validator(uri).iter_errors(instance))
    assert (not errors) == (path.parent.name == "positive")


# --- `configplane validate` rejects flagd's negative cases -----------------------------------


def strings_in(node) -> set[str]:
    if isinstance(node, str):
        return {node}
    if isinstance(node, dict):
        return {s for v in node.values() for s in strings_in(v)}
    if isinstance(node, list):
        return {s for v in node for s in strings_in(v)}
    return set()


def targeting_flag(targeting) -> dict:
    """A string flag whose variants are every string in the rule, so only flagd's schema can
    object to it."""
    names = sorted(s for s in strings_in(targeting) if s) or ["a"]  # flagd: non-empty keys
    return {"state": "ENABLED", "variants": {n: n for n in names}, "defaultVariant": names[0],
            "targeting": targeting}


def validate_with_web_flags(project: Path, flags, stack: str = "dev") -> tuple[int, dict]:
    def change(config):
        config["configplane:services"].setdefault("web", {})["flags"] = flags

    edit_stack(project, stack, change)
    return run_validate(project, stack)


W = "services.web.flags."
NEGATIVE = {  # case -> the one error `validate` reports: key path, message start
    "flags/negative/empty-variants.json":
        (W + "myBoolFlag.variants", "flagd flags.json: variants is empty."),
    "flags/negative/malformed-flag.json":
        (W + "not-a-flag", "flagd flags.json: 'state' is a required property."),
    "flags/negative/missing-variants.json":
        (W + "myBoolFlag", "flagd flags.json: 'variants' is a required property."),
    "flags/negative/mixed-variant-types.ffconfig.json":
        (W + "myBoolFlag.variants", "flagd flags.json: not a boolean, string, number or object"),
    "flags/negative/state-set-incorrectly.json":
        (W + "myBoolFlag.state", "flagd flags.json: value not allowed. Fix: use one of ENABLED"),
    "flags/negative/with-array-flags.json":  # the catalog's own schema: flags is a mapping
        ("services.web.flags", "wrong type. Fix: use a value of type object."),
    "flags/negative/with-invalid-flag-metadata.json":
        (W + "myBoolFlag.metadata.invalid", "flagd flags.json: metadata values are strings"),
    "flags/negative/with-invalid-targeting.json":
        (W + "targetedFlag.targeting", "flagd targeting.json: not a valid flagd targeting rule"),
    "targeting/negative/fractional-decimal-weighting.json":
        (W + "case.targeting.fractional.1.1", "flagd targeting.json:"),
    "targeting/negative/fractional-invalid-bucketing.json":
        (W + "case.targeting.fractional.0", "flagd targeting.json:"),
    "targeting/negative/fractional-invalid-weighting.json":
        (W + "case.targeting.fractional.1.1", "flagd targeting.json:"),
    "targeting/negative/fractional-negative-weighting.json":
        (W + "case.targeting.fractional.1.1", "flagd targeting.json:"),
    "targeting/negative/invalid-ends-with-param.json":
        (W + "case.targeting.if.0.ends_with.1", "flagd targeting.json:"),
    "targeting/negative/invalid-flagd-props.json":
        (W + "case.targeting.if.0.==.0.var", "flagd targeting.json:"),
    "targeting/negative/invalid-starts-with-param.json":
        (W + "case.targeting.if.0.starts_with.1", "flagd targeting.json:"),
    "targeting/negative/sem-ver-invalid-range-specifier.json":
        (W + "case.targeting.if.0.sem_ver.1", "flagd targeting.json:"),
    "targeting/negative/sem-ver-invalid-ver-expression.json":
        (W + "case.targeting.if.0.sem_ver.2", "flagd targeting.json:"),
}
# Flag-set metadata (a top-level `metadata` beside `flags`) has no place in the catalog: the
# program writes only `$schema` and `flags`, so this case cannot be written in a stack file.
NOT_EXPRESSIBLE = {"flags/negative/with-invalid-flag-set-metadata.json"}


def test_every_negative_case_is_covered():
    negatives = {case_id(p) for k in ("flags", "targeting") for p in cases(k, "negative")}
    assert negatives == set(NEGATIVE) | NOT_EXPRESSIBLE


def as_stack_flags(path: Path):
    document = json.loads(path.read_text())
    if path.parent.parent.name == "targeting":
        return {"case": targeting_flag(document)}
    return document["flags"]


def as_map(flags):
    """flagd.json's array form (`[{key, ...flag}]`) as the catalog's map form."""
    if isinstance(flags, list):
        return {f["key"]: {k: v for k, v in f.items() if k != "key"} for f in flags}
    return flags


@pytest.mark.parametrize("case", sorted(NEGATIVE))
def test_validate_rejects_flagd_negative_case(project, case):
    code, report = validate_with_web_flags(project, as_stack_flags(CASES / case))
    path, start = NEGATIVE[case]
    assert code == 1
    assert [(e["path"], e["file"]) for e in report["errors"]] == [(path, "services/web/dev.yaml")]
    message = report["errors"][0]["message"]
    assert message.startswith(start) and "Fix:" in message
    if case.startswith("targeting/"):
        assert message == f"flagd targeting.json: not a valid flagd targeting rule. {TARGETING_FIX}"


@pytest.mark.parametrize("path", cases("flags", "positive") + cases("targeting", "positive"),
                         ids=case_id)
def test_validate_accepts_flagd_positive_case(project, path):
    assert validate_with_web_flags(project, as_map(as_stack_flags(path))) == (
        0, {"stack": "dev", "valid": True, "errors": []})


# --- the decimal rollout of the issue ---------------------------------------------------------

DECIMAL = {"fractional": [["on", 10.5], ["off", 89.5]]}


def served(document: dict, flag: str, keys) -> dict[str, int]:
    """How many of `keys` flagd's evaluator serves each variant (None: no targetingKey)."""
    core = FlagdCore()
    core.set_flags(json.dumps(document))
    counts: dict[str, int] = {}
    for key in keys:
        ctx = EvaluationContext(targeting_key=key) if key is not None else EvaluationContext()
        variant = core.resolve_boolean_value(flag, False, ctx).variant
        counts[variant] = counts.get(variant, 0) + 1
    return counts


def test_decimal_weights_serve_off_to_everyone_in_flagd_and_validate_rejects_them(project):
    # What slipped through before: flagd's evaluator drops the whole fractional rule.
    document = {"flags": {"new-checkout": {**BOOL, "targeting": DECIMAL}}}
    assert served(document, "new-checkout", [f"user-{i}" for i in range(2000)]) == {"off": 2000}

    edit = {"new-checkout": {"rollout": None, "targeting": DECIMAL}}
    code, report = validate_with_web_flags(project, edit, stack="prod")
    assert (code, report["errors"]) == (1, [{
        "path": "services.web.flags.new-checkout.targeting.fractional.1.1",
        "file": "services/web/prod.yaml",
        "line": 9,  # `fractional:` (a list is one value: it has the line of its key)
        "message": f"flagd targeting.json: not a valid flagd targeting rule. {TARGETING_FIX}",
    }])
    assert "10.5" not in json.dumps(report) and "89.5" not in json.dumps(report)


# --- rollouts, evaluated by flagd's evaluator -------------------------------------------------


def within_binomial(count: int, n: int, percent: int) -> bool:
    """flagd buckets a key by murmur3 of CBOR([flagKey, targetingKey]) into 0..99 (weights
    sum to 100); for a well-mixed hash the number of n keys below `percent` is
    Binomial(n, p). Four standard deviations (n = 4000, p = 0.1: sigma 19, band 324..476):
    a correct split falls outside with probability < 1e-4; a rollout off by 3 points would
    be 6 sigma out. The hash is deterministic, so the count is the same on every run."""
    p = percent / 100
    return abs(count - n * p) <= 4 * math.sqrt(n * p * (1 - p))


def prod_web_flags() -> dict:
    return load_stack(read_stack_files(REPO, "prod")).services["web"].spec.flags


def test_prod_10_percent_rollout_serves_about_10_percent():
    svc = load_stack(read_stack_files(REPO, "prod")).services["web"]
    document = json.loads(svc.flags.data[FLAGS_DATA_KEY])  # exactly what the ConfigMap holds
    assert document["flags"]["new-checkout"]["targeting"] == {
        "fractional": [["on", 10], ["off", 90]]}
    counts = served(document, "new-checkout", [f"user-{i}" for i in range(N)])
    assert set(counts) == {"on", "off"} and counts["on"] + counts["off"] == N
    assert within_binomial(counts["on"], N, 10), counts


def test_each_rollout_step_serves_its_share_and_never_takes_the_feature_away():
    flags = prod_web_flags()
    keys = [f"user-{i}" for i in range(N)]
    had: set[str] = set()
    for percent in (0, 10, 50, 100):
        spec = {**flags["new-checkout"],
                "rollout": {**flags["new-checkout"]["rollout"], "percent": percent}}
        assert check_flags({"new-checkout": spec}) == []
        document = render_flags({"new-checkout": spec})
        core = FlagdCore()
        core.set_flags(json.dumps(document))
        on = {k for k in keys if core.resolve_boolean_value(
            "new-checkout", False, EvaluationContext(targeting_key=k)).value}
        if percent in (0, 100):
            assert len(on) == N * percent // 100
        else:
            assert within_binomial(len(on), N, percent), (percent, len(on))
        assert had <= on  # a step up keeps everyone who had the feature
        had = on
    # at 100 % the variant is the default: evaluations without a targetingKey get it too
    assert served(document, "new-checkout", [None]) == {"on": 1}


@given(steps=st.lists(st.integers(1, 100), min_size=1, max_size=6, unique=True).map(sorted),
       data=st.data())
def test_any_declared_step_renders_a_flagd_valid_split_of_100(steps, data):
    percent = data.draw(st.sampled_from([0, *steps]))
    spec = {**BOOL, "rollout": {"variant": "on", "steps": steps, "percent": percent}}
    assert check_flags({"f": spec}) == []
    flag = render_flags({"f": spec})["flags"]["f"]
    assert "rollout" not in flag
    if percent in (0, 100):
        assert "targeting" not in flag
        assert flag["defaultVariant"] == ("on" if percent == 100 else "off")
    else:
        assert flag == {**BOOL, "targeting": {"fractional": [["on", percent],
                                                              ["off", 100 - percent]]}}


@given(steps=st.lists(st.integers(1, 100), min_size=1, max_size=6, unique=True).map(sorted),
       percent=st.integers(-5, 105))
def test_a_percent_outside_the_steps_is_one_problem_at_rollout_percent(steps, percent):
    spec = {**BOOL, "rollout": {"variant": "on", "steps": steps, "percent": percent}}
    problems = check_flags({"f": spec})
    if percent == 0 or percent in steps:
        assert problems == []
    else:
        allowed = ", ".join(map(str, [0, *steps]))
        assert problems == [FlagProblem(("f", "rollout", "percent"), (
            "rollout.percent must be 0 (rolled back) or one of the declared steps. Fix: use one "
            f"of {allowed}, or add the step to rollout.steps in review."))]


ROLLOUT = {"variant": "on", "steps": [10, 50, 100], "percent": 10}
ROLLOUT_CASES = {
    "unknown-variant": ({**BOOL, "rollout": {**ROLLOUT, "variant": "yes"}}, [
        (("f", "rollout", "variant"), "rollout.variant must name one of the flag's variants. "
         "Fix: use one of on, off.")]),
    "default-variant": ({**BOOL, "rollout": {**ROLLOUT, "variant": "off"}}, [
        (("f", "rollout", "variant"), "rollout.variant is the defaultVariant: nothing would "
         "roll out. Fix: roll out another variant; the rest of the targeting keys get the "
         "defaultVariant.")]),
    "with-targeting": ({**BOOL, "targeting": {"fractional": [["on", 1]]}, "rollout": ROLLOUT}, [
        (("f", "targeting"), "targeting and rollout both decide who gets which variant. Fix: "
         "remove one (the rollout generates its own fractional targeting).")]),
    "steps-not-increasing": ({**BOOL, "rollout": {**ROLLOUT, "steps": [50, 10], "percent": 0}}, [
        (("f", "rollout", "steps"), "rollout.steps must be a non-empty, strictly increasing "
         "list of whole percentages in 1..100. Fix: e.g. `steps: [10, 50, 100]`.")]),
    "decimal-step": ({**BOOL, "rollout": {**ROLLOUT, "steps": [10.5, 100], "percent": 0}}, [
        (("f", "rollout", "steps"), "rollout.steps must be a non-empty, strictly increasing "
         "list of whole percentages in 1..100. Fix: e.g. `steps: [10, 50, 100]`.")]),
    "unknown-key": ({**BOOL, "rollout": {**ROLLOUT, "speed": 3}}, [
        (("f", "rollout", "speed"), "unknown rollout key. Fix: use only percent, steps, "
         "variant.")]),
    "not-a-mapping": ({**BOOL, "rollout": [10, 50]}, [
        (("f", "rollout"), 'rollout must be a mapping {variant, steps, percent}. Fix: e.g. '
         '`rollout: {variant: "on", steps: [10, 50, 100], percent: 10}`.')]),
    "typo-in-flag": ({**BOOL, "defualtVariant": "on"}, [
        (("f", "defualtVariant"), "unknown flag key (flagd would ignore it). Fix: use only "
         "defaultVariant, metadata, state, targeting, variants or rollout.")]),
    "fractional-names-no-variant": ({**BOOL, "targeting": {"fractional": [["onn", 5],
                                                                          ["off", 95]]}}, [
        (("f", "targeting", "fractional", "0", "0"), "a fractional bucket names no variant of "
         "the flag (flagd would answer with an error). Fix: use one of on, off.")]),
    "bad-rollout-and-bad-state": ({**BOOL, "state": "ON", "rollout": {**ROLLOUT, "percent": 30}}, [
        (("f", "rollout", "percent"), "rollout.percent must be 0 (rolled back) or one of the "
         "declared steps. Fix: use one of 0, 10, 50, 100, or add the step to rollout.steps in "
         "review."),
        (("f", "state"), "flagd flags.json: value not allowed. Fix: use one of ENABLED, "
         "DISABLED.")]),
    "default-names-no-variant": ({**BOOL, "defaultVariant": "maybe"}, [
        (("f", "defaultVariant"), "defaultVariant must name one of the flag's variants (flagd "
         "would answer with an error). Fix: use one of on, off.")]),
}


@pytest.mark.parametrize("case", sorted(ROLLOUT_CASES))
def test_configplane_checks_beyond_flagd_schema(case):
    spec, expected = ROLLOUT_CASES[case]
    assert check_flags({"f": spec}) == [FlagProblem(p, m) for p, m in expected]


def test_validate_names_the_stack_file_for_a_bad_percent(project):
    code, report = validate_with_web_flags(project, {"new-checkout": {"rollout": {"percent": 30}}},
                                           stack="prod")
    assert (code, [(e["path"], e["file"]) for e in report["errors"]]) == (
        1, [("services.web.flags.new-checkout.rollout.percent", "services/web/prod.yaml")])


# --- a flag flip renames nothing (Pulumi SDK mocks) -------------------------------------------


def comparable(value):
    """Inputs as values: an unknown is one marker, an archive what it holds (secret values stay
    inside their wrappers, so a changed secret would show)."""
    if isinstance(value, pulumi.output.Unknown):
        return "(unknown)"
    if isinstance(value, pulumi.AssetArchive):
        return {k: comparable(v) for k, v in value.assets.items()}
    if isinstance(value, pulumi.Asset | pulumi.Archive):
        return [type(value).__name__, getattr(value, "text", None), getattr(value, "path", None)]
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def test_a_flag_flip_changes_only_the_flags_configmap_data(project):
    before = run_plan(project, "prod", one_stack=True)

    def flip(config):
        config["configplane:services"]["web"]["flags"]["dark-mode"]["defaultVariant"] = "on"

    edit_stack(project, "prod", flip)
    after = run_plan(project, "prod", one_stack=True)

    old = {r.urn: comparable(r.inputs) for r in before.resources}
    new = {r.urn: comparable(r.inputs) for r in after.resources}
    assert set(old) == set(new)
    changed = sorted(urn for urn in old if old[urn] != new[urn])
    flags_urn = ("urn:pulumi:prod::configplane::configplane:config:ServiceConfig$"
                 "kubernetes:core/v1:ConfigMap::web-config-flags")
    assert changed == [flags_urn]
    a, b = old[flags_urn], new[flags_urn]
    assert sorted(k for k in a if a[k] != b[k]) == ["data"]
    assert a["metadata"]["name"] == b["metadata"]["name"] == "web-flags"
    assert a["immutable"] is False
    assert a["metadata"]["annotations"] == {"configplane.io/schema": "flags"}  # no Reloader match
    flip = json.loads(b["data"][FLAGS_DATA_KEY])["flags"]["dark-mode"]["defaultVariant"]
    assert flip == "on"
    # config hash, ConfigMap names: nothing a pod template reads changes
    assert comparable(before.outputs) == comparable(after.outputs)


# --- `configplane flags` ----------------------------------------------------------------------


def run_flags(*args: str, project: Path = REPO) -> tuple[int, str]:
    result = CliRunner().invoke(flags_command, [*args, "--project-dir", str(project)],
                                env={"COLUMNS": "200"})  # one table row per flag
    return result.exit_code, result.output


def test_flags_command_shows_what_each_variant_gets():
    code, output = run_flags("--stack", "prod", "--format", "json")
    assert code == 0
    assert json.loads(output) == {"stack": "prod", "services": {"web": {
        "configmap": "web-flags",
        "flags": [
            {"flag": "dark-mode", "state": "ENABLED", "defaultVariant": "off",
             "variants": ["on", "off"], "split": {"off": 100.0},
             "targeting": "none (everyone: off)", "rollout": None},
            {"flag": "new-checkout", "state": "ENABLED", "defaultVariant": "off",
             "variants": ["on", "off"], "split": {"on": 10.0, "off": 90.0},
             "targeting": "fractional (no targetingKey: off)",
             "rollout": {"variant": "on", "steps": [10, 50, 100], "percent": 10}},
        ]}}}
    code, output = run_flags("--stack", "staging", "--service", "web")
    assert code == 0
    rows = plain_rows(output, "flag ")
    assert rows == [
        ["web/dark-mode", "ENABLED", "on 100%", "", "none (everyone: on)"],
        ["web/new-checkout", "ENABLED", "on 50%, off 50%", "on 50%: 10 -> [50] -> 100",
         "fractional (no targetingKey: off)"],
    ]
    assert output.endswith("web: ConfigMap web-flags (stable name, updated in place; flagd "
                           "reloads it live)\n")


def test_flags_command_user_errors(project):
    assert run_flags("--stack", "prod", "--service", "nope") == (
        1, "error: stack prod has no service nope. Fix: use one of api, web, worker.\n")
    validate_with_web_flags(project, {"new-checkout": {"rollout": {"percent": 30}}}, "prod")
    code, output = run_flags("--stack", "prod", "--format", "json", project=project)
    assert code == 1
    assert [e["path"] for e in json.loads(output)["errors"]] == [
        "services.web.flags.new-checkout.rollout.percent"]
