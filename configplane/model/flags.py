"""Feature flags: rollout steps expanded into flagd targeting, checked by flagd's own schemas.

The catalog holds flagd flag definitions (state, variants, defaultVariant, targeting,
metadata) plus one configplane key, `rollout`:

    rollout:
      variant: "on"          # the variant being rolled out
      steps: [10, 50, 100]   # the agreed plan, percent of targeting keys, increasing
      percent: 10            # where this stack is: 0 (rolled back) or one of the steps

`render_flags` turns that into the flagd document the flags ConfigMap carries: at 0 % no
targeting (everyone gets defaultVariant), between 0 and 100 % `{"fractional": [[variant, p],
[defaultVariant, 100 - p]]}`, at 100 % defaultVariant becomes the variant (so evaluations
without a targetingKey get it too). The rendered document is validated with flagd's own
schemas (schemas/vendor/flagd, flags.json + targeting.json, through a `referencing`
registry) and a few checks the schemas cannot express (defaultVariant and fractional
variants name a variant; no unknown keys in a flag). Messages name the key path and the fix,
never a value.

Plain Python: no Pulumi here. The checker (service_checks.py) calls `check_flags`;
rendering.py calls `render_flags`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

from configplane.inputs import SCHEMAS_DIR, SchemaCache, in_document_order
from configplane.projectfiles import read_text
from configplane.schema_messages import deepest as _deepest

VENDOR_DIR = "vendor"  # under schemas/: third-party schemas, each resolvable by its $id
FLAGD_FLAGS_URI = "https://flagd.dev/schema/v0/flags.json"
FLAGD_TARGETING_URI = "https://flagd.dev/schema/v0/targeting.json"
FLAG_KEYS = ("defaultVariant", "metadata", "state", "targeting", "variants")  # flagd's own
ROLLOUT_KEYS = ("percent", "steps", "variant")
FLAGD_DOCS = "https://flagd.dev/reference/flag-definitions/"


@dataclass(frozen=True)
class FlagProblem:
    path: tuple[str, ...]  # below the service's `flags`
    message: str


# --- flagd's schemas ----------------------------------------------------------------------------


@cache
def vendored_schemas(schemas_dir: Path = SCHEMAS_DIR) -> dict[str, Any]:
    """Every vendored schema by its `$id` (schemas/vendor/**/*.json, test cases excluded)."""
    found = {}
    for path in sorted((schemas_dir / VENDOR_DIR).rglob("*.json")):
        if "test" in path.relative_to(schemas_dir / VENDOR_DIR).parts:
            continue
        contents = json.loads(read_text(schemas_dir, path.relative_to(schemas_dir).as_posix()))
        if isinstance(contents, dict) and "$id" in contents:
            found[contents["$id"]] = contents
    return found


@cache
def vendored_registry(schemas_dir: Path = SCHEMAS_DIR) -> Registry:
    """The vendored schemas as a registry, so a schema can `$ref` flagd's by its URI."""
    return Registry().with_resources(
        (uri, Resource.from_contents(contents))
        for uri, contents in vendored_schemas(schemas_dir).items())


@cache
def flagd_fast_check(uri: str = FLAGD_FLAGS_URI, schemas_dir: Path = SCHEMAS_DIR,
                     cache: SchemaCache | None = None) -> Any:
    """fastjsonschema's compiled check of one of flagd's schemas (its `$ref`s resolved from the
    vendored copies, never fetched), or None; kept in `cache` (SchemaCache.from_environment()
    when None) across runs, keyed by the vendored schemas' content. Like
    `schemacheck.schema_errors`, only its "valid" is trusted: jsonschema runs when there is
    something to report. tests/inputs/test_schemacheck.py checks both agree on upstream's cases
    and mutated documents."""
    schemas = vendored_schemas(schemas_dir)
    store = cache or SchemaCache.from_environment()
    root = {"$ref": uri}
    try:
        key = store.key(root, {}, json.dumps(schemas, sort_keys=True))
        return store.load(key, {}) or store.build(key, root, {},
                                                  handlers={"https": schemas.__getitem__})
    except Exception:  # noqa: BLE001 - not installed, or a schema it cannot compile
        return None


@cache
def flagd_validator(uri: str = FLAGD_FLAGS_URI,
                    schemas_dir: Path = SCHEMAS_DIR) -> jsonschema.protocols.Validator:
    """A validator for one of flagd's schemas, by URI (draft 7, as flagd declares them).

    The root is a `$ref` to the URI: flags.json's own root `$ref` sits beside its `$id`, which
    draft 7 ignores, so the base URI for its relative `./targeting.json` is the retrieval URI.
    """
    return in_document_order(jsonschema.Draft7Validator)(
        {"$ref": uri}, registry=vendored_registry(schemas_dir))


# --- rollout ------------------------------------------------------------------------------------


def rollout_targeting(rollout: Mapping[str, Any], default: str) -> dict[str, Any] | None:
    """The flagd targeting for a rollout at `percent` (None at 0 and 100 %)."""
    percent = rollout.get("percent") or 0
    if percent in (0, 100):
        return None
    return {"fractional": [[rollout["variant"], percent], [default, 100 - percent]]}


def render_flag(spec: Mapping[str, Any]) -> dict[str, Any]:
    """One catalog flag as flagd reads it (rollout expanded, the `rollout` key gone)."""
    flag = {k: v for k, v in spec.items() if k != "rollout"}
    rollout = spec.get("rollout")
    if isinstance(rollout, Mapping):
        if rollout.get("percent") == 100:
            flag["defaultVariant"] = rollout["variant"]
            flag.pop("targeting", None)
        else:
            targeting = rollout_targeting(rollout, str(spec.get("defaultVariant")))
            if targeting is not None:
                flag["targeting"] = targeting
    return flag


def render_flags(flags: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The flagd document for a service's (valid) catalog flags."""
    return {"$schema": FLAGD_FLAGS_URI,
            "flags": {name: render_flag(spec) for name, spec in flags.items()}}


def _rollout_problems(name: str, spec: Mapping[str, Any]) -> Iterator[FlagProblem]:
    rollout = spec["rollout"]
    at = (name, "rollout")
    if not isinstance(rollout, Mapping):
        yield FlagProblem(at, "rollout must be a mapping {variant, steps, percent}. Fix: e.g. "
                          "`rollout: {variant: \"on\", steps: [10, 50, 100], percent: 10}`.")
        return
    for key in sorted(set(rollout) - set(ROLLOUT_KEYS)):
        yield FlagProblem((*at, str(key)), f"unknown rollout key. Fix: use only "
                          f"{', '.join(ROLLOUT_KEYS)}.")
    declared = spec.get("variants")
    variants = declared if isinstance(declared, Mapping) else {}
    variant = rollout.get("variant")
    default = spec.get("defaultVariant")
    if not isinstance(variant, str) or variant not in variants:
        yield FlagProblem((*at, "variant"), "rollout.variant must name one of the flag's "
                          f"variants. Fix: use one of {', '.join(map(str, variants)) or '(none)'}.")
    elif variant == default:
        yield FlagProblem((*at, "variant"), "rollout.variant is the defaultVariant: nothing "
                          "would roll out. Fix: roll out another variant; the rest of the "
                          "targeting keys get the defaultVariant.")
    if not isinstance(default, str):
        yield FlagProblem((name, "defaultVariant"), "a rolled-out flag needs a defaultVariant "
                          "(the variant everyone outside the rollout gets). Fix: set it.")
    if "targeting" in spec:
        yield FlagProblem((name, "targeting"), "targeting and rollout both decide who gets "
                          "which variant. Fix: remove one (the rollout generates its own "
                          "fractional targeting).")
    steps = rollout.get("steps")
    if not (isinstance(steps, Sequence) and not isinstance(steps, str) and steps
            and all(_is_int(s) and 0 < s <= 100 for s in steps)
            and all(a < b for a, b in zip(steps, steps[1:], strict=False))):
        yield FlagProblem((*at, "steps"), "rollout.steps must be a non-empty, strictly "
                          "increasing list of whole percentages in 1..100. Fix: e.g. "
                          "`steps: [10, 50, 100]`.")
        steps = None
    percent = rollout.get("percent", 0)
    if not _is_int(percent) or not (percent == 0 or (steps and percent in steps)):
        allowed = ", ".join(map(str, [0, *(steps or [])]))
        yield FlagProblem((*at, "percent"), "rollout.percent must be 0 (rolled back) or one of "
                          f"the declared steps. Fix: use one of {allowed}, or add the step to "
                          "rollout.steps in review.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- checks -------------------------------------------------------------------------------------


def check_flags(flags: Mapping[str, Any], schemas_dir: Path = SCHEMAS_DIR) -> list[FlagProblem]:
    """Every problem of a service's catalog flags: rollout shape, flagd's schemas on the
    rendered document, and what the schemas cannot say."""
    problems: list[FlagProblem] = []
    renderable = {}
    for name, spec in flags.items():
        if not isinstance(spec, Mapping):
            problems.append(FlagProblem((name,), "a flag must be a mapping (state, variants, "
                                        f"defaultVariant, ...). Fix: see {FLAGD_DOCS}."))
            continue
        for key in sorted(set(spec) - set(FLAG_KEYS) - {"rollout"}):
            problems.append(FlagProblem((name, str(key)), "unknown flag key (flagd would ignore "
                                        f"it). Fix: use only {', '.join(FLAG_KEYS)} or rollout."))
        if "rollout" in spec:
            found = list(_rollout_problems(name, spec))
            problems += found
            if found:  # not expandable: check the rest of the flag without it
                spec = {k: v for k, v in spec.items() if k != "rollout"}
        renderable[name] = spec
    document = render_flags(renderable)
    problems += flagd_problems(document, schemas_dir)
    for name, flag in document["flags"].items():
        problems += _variant_problems(name, flag)
    return problems


def flagd_problems(document: Any, schemas_dir: Path = SCHEMAS_DIR) -> list[FlagProblem]:
    """flagd's flags.json (with targeting.json) on a rendered document; paths below `flags`."""
    fast = flagd_fast_check(FLAGD_FLAGS_URI, schemas_dir)
    if fast is not None:
        try:
            fast(document)
            return []
        except Exception:  # noqa: BLE001 - invalid (or not decidable there): ask jsonschema
            pass
    problems = []
    for error in flagd_validator(FLAGD_FLAGS_URI, schemas_dir).iter_errors(document):
        path = [str(p) for p in error.absolute_path]
        if path[:1] == ["flags"]:
            path = path[1:]
        problems.append(FlagProblem(*_flagd_message(path, error, schemas_dir)))
    return problems


def _variant_problems(name: str, flag: Mapping[str, Any]) -> Iterator[FlagProblem]:
    variants = flag.get("variants")
    if not isinstance(variants, Mapping) or not variants:
        return  # flagd's schema reports it
    known = ", ".join(map(str, variants))
    default = flag.get("defaultVariant")
    if isinstance(default, str) and default not in variants:
        yield FlagProblem((name, "defaultVariant"), "defaultVariant must name one of the flag's "
                          f"variants (flagd would answer with an error). Fix: use one of {known}.")
    for path, entry in _fractional_entries(flag.get("targeting"), ("targeting",)):
        if isinstance(entry, str) and entry not in variants:
            yield FlagProblem((name, *path), "a fractional bucket names no variant of the flag "
                              f"(flagd would answer with an error). Fix: use one of {known}.")


def _fractional_entries(node: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, variant) of every literal `[variant, weight]` bucket of every `fractional`."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "fractional" and isinstance(value, list):
                for i, bucket in enumerate(value):
                    if isinstance(bucket, list) and bucket:
                        yield (*path, key, str(i), "0"), bucket[0]
            yield from _fractional_entries(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _fractional_entries(value, (*path, str(i)))


TARGETING_FIX = ("Fix: correct the rule: fractional buckets are [variant, weight] with a "
                 "whole, non-negative weight; sem_ver takes [value, one of = != < <= > >= ^ ~, "
                 "a version x.y.z]; starts_with and ends_with take two strings; `var` names "
                 f"context keys ($flagd.flagKey and $flagd.timestamp only). See {FLAGD_DOCS}.")


def _located(error: jsonschema.ValidationError, prefix: tuple[str, ...]) -> tuple[str, ...]:
    return (*prefix, *(str(p) for p in _deepest(error).absolute_path))


def _flagd_message(path: list[str], error: jsonschema.ValidationError,
                   schemas_dir: Path = SCHEMAS_DIR) -> tuple[tuple[str, ...], str]:
    """Where (below `flags`) and what flagd's schema rejected, and the fix; never the value.

    The verdict is flagd's; an anyOf over the four flag types says little, so the flag is
    checked again against the parts of flagd's schemas (targeting.json, baseFlag, metadata)
    to say which part is wrong."""
    here = tuple(path)
    flag = error.instance
    if len(path) != 1 or not isinstance(flag, Mapping):
        if error.validator == "type":
            return here, (f"flagd flags.json: wrong type. Fix: use a value of type "
                          f"{error.validator_value}.")
        return here, f"flagd flags.json: {error.validator} not satisfied. Fix: see {FLAGD_DOCS}."
    if "targeting" in flag:
        for inner in flagd_validator(FLAGD_TARGETING_URI, schemas_dir).iter_errors(flag["targeting"]):
            return (_located(inner, (*here, "targeting")),
                    f"flagd targeting.json: not a valid flagd targeting rule. {TARGETING_FIX}")
    base = flagd_validator(f"{FLAGD_FLAGS_URI}#/definitions/baseFlag", schemas_dir)
    for inner in base.iter_errors({k: v for k, v in flag.items() if k != "targeting"}):
        where = _located(inner, here)
        inner = _deepest(inner)
        if where[1:2] == ("metadata",):
            return where, ("flagd flags.json: metadata values are strings, numbers or booleans. "
                           "Fix: flatten the value.")
        if inner.validator == "required":
            return where, f"flagd flags.json: {inner.message}. Fix: add it."
        if inner.validator == "enum":
            return where, ("flagd flags.json: value not allowed. Fix: use one of "
                           f"{', '.join(map(str, inner.validator_value))}.")
        if inner.validator == "minProperties":
            return where, "flagd flags.json: variants is empty. Fix: declare at least one variant."
        return where, f"flagd flags.json: {inner.validator} not satisfied. Fix: see {FLAGD_DOCS}."
    return (*here, "variants"), ("flagd flags.json: not a boolean, string, number or object "
                                 "flag: all variants of a flag have one type. Fix: give every "
                                 "variant the same type.")


# --- what each variant gets (the `configplane flags` command) -----------------------------------


@dataclass(frozen=True)
class FlagView:
    name: str
    state: str
    default_variant: str | None
    variants: tuple[str, ...]
    split: Mapping[str, float] | None  # variant -> percent of targeting keys, when known
    targeting: str  # a summary of the rules, never the values they compare against
    rollout: Mapping[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {"flag": self.name, "state": self.state, "defaultVariant": self.default_variant,
                "variants": list(self.variants), "split": dict(self.split) if self.split else None,
                "targeting": self.targeting, "rollout": dict(self.rollout) if self.rollout else None}


def describe(flags: Mapping[str, Mapping[str, Any]]) -> list[FlagView]:
    """What each variant of each (valid) catalog flag gets once rendered."""
    views = []
    for name, spec in sorted(flags.items()):
        flag = render_flag(spec)
        targeting = flag.get("targeting") or {}
        default = flag.get("defaultVariant")
        split = _split(targeting) if targeting else ({str(default): 100.0} if default else None)
        if flag.get("state") == "DISABLED":
            split = None
        if flag.get("state") == "DISABLED":
            summary = "disabled (the code default)"
        elif not targeting:
            summary = f"none (everyone: {flag.get('defaultVariant')})"
        elif split is not None:
            summary = f"fractional (no targetingKey: {flag.get('defaultVariant')})"
        else:
            summary = "rules: " + ", ".join(sorted(_operators(targeting)))
        rollout = spec.get("rollout")
        views.append(FlagView(
            name=name, state=str(flag.get("state")), default_variant=flag.get("defaultVariant"),
            variants=tuple(map(str, flag.get("variants") or {})), split=split, targeting=summary,
            rollout={"variant": rollout["variant"], "steps": list(rollout["steps"]),
                     "percent": rollout.get("percent", 0)} if rollout else None,
        ))
    return views


def _split(targeting: Mapping[str, Any]) -> dict[str, float] | None:
    """variant -> percent when the targeting is exactly one fractional with literal weights."""
    if set(targeting) != {"fractional"} or not isinstance(targeting["fractional"], list):
        return None
    buckets = targeting["fractional"]
    if buckets and not isinstance(buckets[0], list):
        buckets = buckets[1:]  # a custom bucketing expression comes first
    weights: dict[str, int] = {}
    for bucket in buckets:
        if not (isinstance(bucket, list) and bucket and isinstance(bucket[0], str | bool | int)):
            return None
        weight = bucket[1] if len(bucket) > 1 else 1
        if not _is_int(weight):
            return None
        key = str(bucket[0]).lower() if isinstance(bucket[0], bool) else str(bucket[0])
        weights[key] = weights.get(key, 0) + weight
    total = sum(weights.values())
    if not total:
        return None
    return {variant: round(100 * w / total, 2) for variant, w in weights.items()}


def _operators(node: Any) -> set[str]:
    if isinstance(node, Mapping):
        return set(map(str, node)) | {op for v in node.values() for op in _operators(v)}
    if isinstance(node, list):
        return {op for v in node for op in _operators(v)}
    return set()
