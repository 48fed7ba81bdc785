"""Fuzzing every command with mutated sample stacks and hostile documents.

What is mutated is the dev stack as its files hold it: Pulumi.dev.yaml and the service
catalog (services/defaults.yaml, services/<svc>/service.yaml and services/<svc>/dev.yaml),
as one tree of file name -> document, so a mutation lands in any of them (or replaces or
removes a whole file). Hostile documents and careless text edits go to the stack file and to
catalog files alike.

For every example: exit 0 or 1 (2 for usage), never a traceback, no canary in any output, and
a failure names a file. The canaries sit where secrets are (a `secure`-declared key's
plaintext, a provider token, a pasted spec in a catalog overlay and in the fleet defaults, a
description in a service's base, the Vault address), in vendor formats the detector knows, so
that wherever a mutation moves them they stay secret.

Catalog trees are fuzzed too: symlinks out of the project, across services and into the
platform's files, names with control characters, odd extensions and near misses (nothing
outside a file's owner's directory is ever read); and writes under a file-size limit at any
size (the project is unchanged, or exactly as an unlimited run leaves it).

Profiles: `ci` (the default; few examples, bounded time) and `deep` for local runs:
`HYPOTHESIS_PROFILE=deep pytest tests/security/test_fuzz.py`.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.documents import parent as parent_of
from tests.documents import paths as key_paths
from tests.projects import REPO, copy_project, files_text
from tests.security.conftest import assert_clean, cli
from tests.security.test_atomic_writes import configplane
from tests.test_projectfiles import tree

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                 HealthCheck.too_slow])
settings.register_profile("deep", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                 HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
FUZZ = settings.get_profile(PROFILE if PROFILE in ("ci", "deep") else "ci")
PLAN_FUZZ = settings(FUZZ, max_examples=3 if PROFILE != "deep" else 40)

CANARIES = {
    "token": "ghp_" + "Cn4ryT0k3nAbCdEfGhIjKlMnOpQrStUv01",
    "stripe": "sk_live_" + "Cn4ryStr1peAbCdEfGh1234",
    "vault": "hvs." + "Cn4ryV4ultAbCdEfGhIjKlMn",
    "aws": "AKIA" + "CN4RY7Q3M5X2K9R4",
}
CORES = [v[4:] if not v.startswith("sk_live_") else v[8:] for v in CANARIES.values()]

# The dev stack's files: what the fuzzer mutates (file name -> document).
STACK_FILES = ("Pulumi.dev.yaml", "services/defaults.yaml",
               *(f"services/{svc}/{name}" for svc in ("api", "web", "worker")
                 for name in ("service.yaml", "dev.yaml")))
BASE_FILES = {name: yaml.safe_load((REPO / name).read_text()) for name in STACK_FILES}


def poisoned_files() -> dict:
    files = copy.deepcopy(BASE_FILES)
    config = files["Pulumi.dev.yaml"]["config"]
    config["configplane:paymentsApiKey"] = CANARIES["stripe"]
    config["vault:token"] = CANARIES["vault"]
    config["configplane:platform"]["vault"]["address"] = \
        f"https://{CANARIES['vault']}@vault.dev.shop.internal:8200"
    files["services/api/dev.yaml"].setdefault("secrets", {})["PASTED"] = CANARIES["token"]
    files["services/api/service.yaml"]["secrets"]["DATABASE_PASSWORD"]["description"] = \
        f"key {CANARIES['aws']}"
    files["services/defaults.yaml"]["service"] = {"secrets": {"FLEET_PASTED": CANARIES["stripe"]}}
    return files


BASES = [copy.deepcopy(BASE_FILES), poisoned_files()]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
    st.text(max_size=30), st.sampled_from(["", " ", "\n", "api\n", "NO", "no", "yes", "~",
                                           "0x1F", "1e400", "\u202e", "é", "\x00", "-1",
                                           "$(rm -rf /)", "{{x}}", "../..", "a" * 300]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)
keys = st.one_of(st.text(max_size=12), st.sampled_from(
    ["api", "API", "web\n", "secrets", "config", "source", "store", "flags", "tenants",
     "namespace", "environment", "configplane:service", "SESSION-SIGNING-KEY", "é"]))


@st.composite
def mutated_stacks(draw):
    """The dev stack's files (Pulumi.dev.yaml and the catalog) with 1-3 mutations anywhere in
    them; a mutation at the top replaces, removes, nests or grows a whole file."""
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in key_paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, last = parent_of(doc, path), path[-1]
        op = draw(st.sampled_from(["replace", "delete", "rename", "duplicate", "nest", "grow"]))
        if len(path) == 1 and op in ("rename", "duplicate"):
            op = "replace"  # file names stay the stack's
        if op == "replace":
            parent[last] = draw(values)
        elif op == "delete":
            del parent[last]
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(keys)] = parent.pop(last)
        elif op == "duplicate" and isinstance(parent, dict):
            parent[draw(keys)] = copy.deepcopy(parent[last])
        elif op == "nest":
            parent[last] = {draw(keys): parent[last]}
        elif op == "grow":
            parent[last] = draw(st.sampled_from(["x" * 70000, ["y"] * 2000]))
    return doc


hostile = st.sampled_from([
    "config: []\n", "config:\n  ? [a, b]\n  : 1\n", "config:\n  configplane:services:\n"
    "    api:\n      config:\n        no: 1\n        5: x\n", "- a\n- b\n", "config: !!binary AA==\n",
    "config:\n  a: &a [x, x, x]\n  b: &b [*a, *a, *a]\n  c: [*b, *b, *b]\n",
    "config:\n\ta: 1\n", "config: {a: 1, a: 2}\n", "config:\n  configplane:platform: " +
    "[" * 200 + "]" * 200 + "\n", "%YAML 1.1\n---\nconfig: {}\n...\n---\nconfig: {}\n",
    "config:\n  configplane:services:\n    web:\n      flags:\n        f:\n          variants:"
    " {true: 1, 'true': 2}\n", "\ufeffconfig: {}\n", "config: !!python/object:os.system x\n",
    # catalog files: a service's fields at the top
    "null\n", "~\n", "tenants:\n  no:\n    config: {}\n", "secrets:\n  X: !!binary AA==\n",
    "config:\n  A: 1\n  A: 2\n", "app_schema: [worker]\n", "service: 5\nowners: x\n",
])


def _write_stack(project: Path, files) -> None:
    """Write the stack's files as the tree holds them; a file the tree lost is removed."""
    for name in STACK_FILES:
        path = project / name
        if name in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(files[name], sort_keys=False, allow_unicode=True))
        else:
            path.unlink(missing_ok=True)


def _write_text(project: Path, target: str, text: str) -> None:
    """The poisoned stack's files, with `target` holding `text`."""
    _write_stack(project, POISONED)
    (project / target).write_text(text)


POISONED = poisoned_files()
# where hostile documents and careless edits go: the stack file and catalog files
TARGETS = ("Pulumi.dev.yaml", "services/api/dev.yaml", "services/worker/service.yaml",
           "services/defaults.yaml")


def _names_a_file(run) -> bool:
    # "services/<svc>/...": a catalog file (the table may wrap its name inside the cell)
    return any(f in run.text for f in ("Pulumi.dev.yaml", "Pulumi.yaml", "schemas/", ".env",
                                       ".json", ".yaml", "<stdin>")) or bool(
        re.search(r"services/[a-z0-9]", run.text))


def _check(run, *, codes=(0, 1)) -> None:
    assert_clean(run, CORES, codes=codes)
    if run.code == 1:
        assert _names_a_file(run), run.text[-1500:]


@pytest.fixture(scope="module")
def listings(tmp_path_factory) -> Path:
    """kubectl's listings of the sample cluster, for prune and rollback."""
    folder = tmp_path_factory.mktemp("listings")
    (folder / "cms.json").write_text(json.dumps(LISTING))
    (folder / "wl.json").write_text(json.dumps(WORKLOADS))
    return folder


@pytest.fixture(scope="module")
def fuzz_project(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("fuzz") / "project", policies=True)


@FUZZ
@given(doc=mutated_stacks())
def test_mutated_stacks_through_every_offline_command(fuzz_project, doc):
    _write_stack(fuzz_project, doc)
    p = str(fuzz_project)
    _check(cli("validate", "--stack", "dev", "--project-dir", p, "--format", "json"))
    _check(cli("validate", "--stack", "dev", "--project-dir", p))
    for service, path in (("api", "secrets"), ("api", "config"), ("api", "PASTED"),
                          ("api", "secrets.DATABASE_PASSWORD"), ("web", "flags")):
        _check(cli("explain", "--stack", "dev", service, path, "--project-dir", p,
                   "--format", "json"))
    _check(cli("diff", "--stack", "dev", "--stack", "prod", "--project-dir", p))


@FUZZ
@given(target=st.sampled_from(TARGETS),
       text=st.one_of(hostile, st.text(alphabet=":- \n[]{}&*!|>'\"#%@`?,\tab0é", max_size=80)))
def test_hostile_documents(fuzz_project, target, text):
    _write_text(fuzz_project, target, text)
    p = str(fuzz_project)
    _check(cli("validate", "--stack", "dev", "--project-dir", p, "--format", "json"))
    _check(cli("explain", "--stack", "dev", "api", "config", "--project-dir", p))


# every command that reads the project's files without a program run (plan and shard plan are
# fuzzed above, at a few examples: each runs the program)
READERS = (("validate", "--stack", "dev"), ("where", "api"), ("codeowners",),
           ("affected", "--all", "--format", "json"), ("flags", "--stack", "dev"),
           ("github-environments", "--env", "dev"),
           ("operator", "stacks", "--env", "dev", "--repo", "https://github.com/shop/config.git",
            "--organization", "shop", "--secrets-provider", "awskms://alias/pulumi-dev",
            "--platform-role-arn", "arn:aws:iam::111111111111:role/configplane-bootstrap-dev"),
           ("diff", "--stack", "dev", "--stack", "prod"), ("explain", "--stack", "dev", "api", "config"),
           ("migrate",))
EVERY_FILE = (*TARGETS, "Pulumi.yaml", "Pulumi.dev-api-team.yaml", "services/api/service.yaml")


@FUZZ
@given(target=st.sampled_from(EVERY_FILE),
       text=st.one_of(hostile, st.text(alphabet=":- \n[]{}&*!|>'\"#%@`?,\tab0é", max_size=80)))
def test_hostile_documents_through_every_reading_command(fuzz_project, listings, target, text):
    """Whatever file of the project holds a hostile document, no command that reads it
    crashes (migrate and import once did, on a stack file that was not a mapping)."""
    original = (fuzz_project / target).read_bytes()  # the shared project, as the next test expects
    try:
        _write_text(fuzz_project, target, text)
        p = str(fuzz_project)
        for command in READERS:
            _check(cli(*command, "--project-dir", p))
        cms, workloads = (str(listings / name) for name in ("cms.json", "wl.json"))
        for run in (cli("prune", "--stack", "dev", "--configmaps", cms, "--workloads", workloads,
                        "--project-dir", p),
                    cli("rollback", "api", "--stack", "dev", "--configmaps", cms, "--workload",
                        workloads, "--project-dir", p)):
            assert_clean(run, CORES)  # a refusal may be about the cluster, not a file
    finally:
        (fuzz_project / target).write_bytes(original)


SAMPLE_TEXT = {name: yaml.safe_dump(POISONED[name], sort_keys=False).splitlines()
               for name in TARGETS}


@st.composite
def text_mutations(draw):
    """One of the poisoned sample's files (the stack file or a catalog file) as text, with
    lines duplicated (duplicate keys), dropped, indented or broken: what a careless edit does."""
    target = draw(st.sampled_from(TARGETS))
    lines = list(SAMPLE_TEXT[target])
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["dup", "drop", "indent", "dedent", "tab", "colon", "bom"]))
        if op == "dup":
            lines.insert(i, lines[i])
        elif op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "indent":
            lines[i] = "  " + lines[i]
        elif op == "dedent":
            lines[i] = lines[i].lstrip()
        elif op == "tab":
            lines[i] = "\t" + lines[i]
        elif op == "colon":
            lines[i] = lines[i].replace(": ", ":: ", 1)
        elif op == "bom":
            lines[i] = "\ufeff" + lines[i]
    return target, "\n".join(lines) + "\n"


@FUZZ
@given(edit=text_mutations())
def test_careless_edits_of_the_stack_file(fuzz_project, edit):
    _write_text(fuzz_project, *edit)
    p = str(fuzz_project)
    _check(cli("validate", "--stack", "dev", "--project-dir", p, "--format", "json"))
    _check(cli("validate", "--stack", "dev", "--project-dir", p))
    _check(cli("explain", "--stack", "dev", "api", "secrets", "--project-dir", p))


@PLAN_FUZZ
@given(doc=mutated_stacks())
def test_mutated_stacks_through_plan(fuzz_project, doc, tmp_path_factory):
    _write_stack(fuzz_project, doc)
    out = tmp_path_factory.mktemp("out")
    run = cli("plan", "--stack", "dev", "--project-dir", str(fuzz_project), "--format", "json",
              "--out", str(out / "plan"))
    _check(run)
    written = "\n".join(f.read_text() for f in (out / "plan").glob("*")) if (out / "plan").exists() \
        else ""
    assert not [c for c in CORES if c in written]


@FUZZ
@given(lines=st.lists(st.one_of(
    st.sampled_from([json.dumps({"id": "1", "key": "TOKEN", "value": CANARIES["token"]}),
                     json.dumps({"id": 1, "key": "K", "value": CANARIES["aws"]}),
                     "{", "[]", "null", "\xff", json.dumps({"id": "x"})]),
    st.text(max_size=20)), max_size=4))
def test_scan_on_hostile_lines(lines):
    run = cli("scan", "--jsonl", "-", input="\n".join(lines))
    _check(run)


@FUZZ
@given(dotenv=st.lists(st.one_of(
    st.sampled_from([f"STRIPE_API_KEY={CANARIES['stripe']}", f"TOKEN='{CANARIES['token']}'",
                     "export A=1", "B", "=x", "C=\"unterminated", "D=${E}", "é=1",
                     f"PASSWORD={CANARIES['vault']}"]),
    st.text(max_size=20)), max_size=5))
def test_import_on_hostile_inputs(tmp_path_factory, dotenv):
    project = copy_project(tmp_path_factory.mktemp("imp") / "project")
    source = tmp_path_factory.mktemp("src") / "in.env"
    source.write_text("\n".join(dotenv))
    for write in ((), ("--write",)):
        run = cli("import", "billing", "--stack", "dev", "--from", str(source), "--app-schema",
                  "worker", "--owner", "@shop/billing", "--project-dir", str(project), *write)
        _check(run)
    written = files_text(project)  # Pulumi.yaml and the catalog files import writes
    assert not [c for c in CORES if c in written]


@FUZZ
@given(document=st.one_of(values, st.fixed_dictionaries({"steps": st.lists(
    st.fixed_dictionaries({"op": st.sampled_from(["update", "create", "same", "delete", "x"]),
                           "urn": st.text(max_size=20),
                           "newState": st.fixed_dictionaries({"inputs": values})}),
    max_size=3)})))
def test_drift_report_on_hostile_previews(tmp_path_factory, document):
    path = tmp_path_factory.mktemp("preview") / "preview.json"
    path.write_text(json.dumps(document))
    _check(cli("drift-report", str(path), "--format", "json"), codes=(0, 1, 7))


# --- hostile external documents and odd CONFIGPLANE_* variables (issue 18) ------------------
# Documents configplane reads from outside the project: shapes from the real formats (a preview,
# an engine event, a kubectl List, a manifest) with any field swapped for any JSON value.

# Foreign text carries no declaration: only a token of its vendor's exact shape is a secret there.
FOREIGN_TOKEN = "ghp_" + "Cn4ryF0r31gnAbCdEfGhIjKlMnOpQrStUv01"
FOREIGN_CORES = [*CORES, FOREIGN_TOKEN[4:]]

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
              st.text(max_size=20), st.just(FOREIGN_TOKEN), st.just("\ud800"), st.just("-")),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=10)
PREVIEW = json.loads((REPO / "tests/fixtures/preview/drift.json").read_text())
EVENT = {"sequence": 1, "resOutputsEvent": {"metadata": {
    "op": "refresh", "urn": "urn:pulumi:dev::configplane::aws:s3/bucket:Bucket::b",
    "type": "aws:s3/bucket:Bucket", "diffs": ["tags"], "detailedDiff": {"tags": {"kind": "update"}},
    "old": {"outputs": {"tags": {}}}, "new": {"outputs": {"tags": {"a": "b"}}}}}}
POLICY_EVENT = {"sequence": 2, "policyEvent": {
    "policyPackName": "configplane", "policyName": "x", "enforcementLevel": "mandatory",
    "resourceUrn": "urn:pulumi:dev::configplane::t::n", "message": f"m {FOREIGN_TOKEN}"}}
LISTING = {"kind": "List", "items": [{"kind": "ConfigMap", "metadata": {
    "name": "api-config-hf678c7m2b", "namespace": "api-dev", "creationTimestamp": "2026-01-01",
    "labels": {"app.kubernetes.io/managed-by": "configplane"},
    "annotations": {"configplane.io/config-hash": "hf678c7m2b"}}, "data": {"A": "b"}}]}
WORKLOADS = {"kind": "List", "items": [{"kind": "Deployment", "metadata": {
    "name": "api", "namespace": "api-dev"}, "spec": {"template": {"spec": {
        "containers": [{"envFrom": [{"configMapRef": {"name": "api-config-hf678c7m2b"}}]}],
        "volumes": [{"configMap": {"name": "x"}}]}}}}]}
MANIFEST = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"TOKEN": "c2VjcmV0"}, "stringData": {"A": "b"}, "binaryData": {"B": "AA=="}}


@st.composite
def mutated(draw, base):
    """`base` with 1-3 of its fields (at any depth) replaced by any JSON value, or removed."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in key_paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = parent_of(doc, path)
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return doc


def _dump(value) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value


@FUZZ
@given(preview=st.one_of(mutated(PREVIEW), json_values),
       events=st.lists(st.one_of(mutated(EVENT), mutated(POLICY_EVENT), json_values), max_size=3))
def test_drift_report_on_hostile_previews_and_event_logs(tmp_path_factory, preview, events):
    folder = tmp_path_factory.mktemp("drift")
    (folder / "p.json").write_text(json.dumps(preview), encoding="utf-8", errors="surrogatepass")
    (folder / "e.jsonl").write_text("\n".join(json.dumps(e) for e in events),
                                    encoding="utf-8", errors="surrogatepass")
    for fmt in ("json", "markdown"):
        run = cli("drift-report", str(folder / "p.json"), "--events", str(folder / "e.jsonl"),
                  "--format", fmt)
        assert_clean(run, FOREIGN_CORES, codes=(0, 1, 7))
        if run.code == 1 and "see the report above" not in run.stderr:  # else: the report's
            assert _names_a_file(run), run.text[-1500:]  # own verdict (errors, violations)


@FUZZ
@given(listing=st.one_of(mutated(LISTING), json_values),
       workloads=st.one_of(mutated(WORKLOADS), json_values))
def test_prune_and_rollback_on_hostile_listings(fuzz_project, tmp_path_factory, listing,
                                                workloads):
    folder = tmp_path_factory.mktemp("kubectl")
    (folder / "cms.json").write_text(json.dumps(listing, ensure_ascii=True))
    (folder / "wl.json").write_text(json.dumps(workloads, ensure_ascii=True))
    _write_stack(fuzz_project, copy.deepcopy(BASE_FILES))
    p = str(fuzz_project)
    for run in (cli("prune", "--stack", "dev", "--configmaps", str(folder / "cms.json"),
                    "--workloads", str(folder / "wl.json"), "--project-dir", p),
                cli("rollback", "api", "--stack", "dev", "--configmaps", str(folder / "cms.json"),
                    "--workload", str(folder / "wl.json"), "--project-dir", p)):
        assert_clean(run, FOREIGN_CORES)  # a refusal may be about the cluster, not a file


@FUZZ
@given(manifests=st.lists(st.one_of(mutated(MANIFEST), json_values), min_size=1, max_size=3),
       as_json=st.booleans())
def test_import_on_hostile_manifests(tmp_path_factory, manifests, as_json):
    project = copy_project(tmp_path_factory.mktemp("imp") / "project")
    folder = tmp_path_factory.mktemp("src")
    if as_json:
        source = folder / "in.json"
        source.write_text(json.dumps(manifests[0], ensure_ascii=True))
    else:
        source = folder / "in.yaml"
        source.write_text("\n---\n".join(yaml.safe_dump(m, allow_unicode=False)
                                         for m in manifests))
    for write in ((), ("--write",)):
        _check(cli("import", "billing", "--stack", "dev", "--from", str(source), "--app-schema",
                   "worker", "--owner", "@shop/billing", "--project-dir", str(project), *write))
    assert not [c for c in FOREIGN_CORES if c in files_text(project)]


@FUZZ
@given(dotenv=st.text(alphabet="\ufeffAB_=x \"'#\\$\n{}5", max_size=40))
def test_import_on_any_dotenv_text(tmp_path_factory, dotenv):
    project = copy_project(tmp_path_factory.mktemp("imp") / "project")
    source = tmp_path_factory.mktemp("src") / "in.env"
    source.write_text(dotenv)
    _check(cli("import", "billing", "--stack", "dev", "--from", str(source), "--app-schema",
               "http-api", "--owner", "@shop/billing", "--project-dir", str(project)))


ODD_VALUES = ["", " ", "garbage", "2026-13-45", "0000-01-01", "9999-12-31", "1969-12-31",
              "2026-12-03T25:00:00", "2026-12-03T12:00:00+99:00", "1e400", "\t2026-12-03",
              "2026-12-03\n", "é", "2026-12-03T12:00:00Z" + "x" * 5000, "20261203"]


@FUZZ
@given(now=st.one_of(st.sampled_from(ODD_VALUES), st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=30)), debug=st.sampled_from(["", "0", "1", "yes", "é"]))
def test_odd_configplane_variables(fuzz_project, monkeypatch, now, debug):
    monkeypatch.setenv("CONFIGPLANE_NOW", now)
    monkeypatch.setenv("CONFIGPLANE_DEBUG", debug)
    _write_stack(fuzz_project, copy.deepcopy(BASE_FILES))
    p = str(fuzz_project)
    runs = [cli("validate", "--stack", "dev", "--project-dir", p),
            cli("plan", "--stack", "dev", "--project-dir", p, "--no-policy", "--service", "web",
                "--format", "json")]
    for run in runs:
        assert_clean(run, CORES)
        if run.code == 1:
            assert "CONFIGPLANE_NOW" in run.stderr, run.text[-800:]
    assert runs[0].code == runs[1].code  # validate and plan agree on the variable


# --- hostile catalog trees: symlinks, odd names and extensions -------------------------------

OUTSIDE_MARKER = "outside-marker-7f3a"  # only in files outside a service's own directory
odd_names = st.one_of(
    st.sampled_from(["dev.yml", "service.yml", "Service.yaml", "dev.yaml.orig", "prd.yaml",
                     "dev.YAML", "defaults.yml", "README.md", ".hidden.yaml", "dev.yaml ",
                     "web\n", "a\tb.yaml", "x\u202ey.yaml", "$(touch x).yaml", "..yaml",
                     "-rf.yaml", "é.yaml", "dev.json", "service", "x" * 200 + ".yaml"]),
    st.text(alphabet="abcdev.-_yml\n\t $`'\"\\é", min_size=1, max_size=12))
tree_changes = st.lists(st.one_of(
    st.tuples(st.just("link"), st.sampled_from(["services/evil", "services/web/dev.yaml",
                                                "services/api/prod.yaml", "services/defaults.yaml",
                                                "Pulumi.dev.yaml"]),
              st.sampled_from(["api", "../api/dev.yaml", "../../../outside", "/nonexistent/x",
                               "../../../outside/dev.yaml", "services/api/dev.yaml",
                               "dev.yaml", "../../Pulumi.dev.yaml"])),
    st.tuples(st.just("file"), st.sampled_from(["services", "services/api", "services/web"]),
              odd_names),
    st.tuples(st.just("dir"), st.just("services"), odd_names),
), min_size=1, max_size=3)


def _apply_tree_change(project: Path, change) -> None:
    kind, where, what = change
    if kind == "link":
        path = project / where
        if path.is_dir() and not path.is_symlink():
            return
        path.unlink(missing_ok=True)
        path.symlink_to(what)
        return
    name = what.replace("/", "_").replace("\x00", "_")
    if name in (".", ".."):
        return
    path = project / where / name
    try:
        if kind == "dir":
            path.mkdir(exist_ok=True)
            (path / "service.yaml").write_text("app_schema: worker\n")
        elif not path.is_dir():
            path.write_text("config:\n  LOG_LEVEL: error\n")
    except OSError:  # a name the file system refuses (too long...)
        pass


@pytest.fixture(scope="module")
def tree_project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    outside = root / "outside"
    outside.mkdir()
    (outside / "dev.yaml").write_text(f"config:\n  LOG_LEVEL: {OUTSIDE_MARKER}\n")
    (outside / "service.yaml").write_text(f"app_schema: worker\nconfig: {{X: {OUTSIDE_MARKER}}}\n")
    return root


@FUZZ
@given(changes=tree_changes)
def test_hostile_catalog_trees(tree_project, changes):
    """Symlinks out of the project, across services and into the platform's files, names with
    control characters, odd extensions and near misses: every command answers with exit 0 or 1
    and a message naming the file, never reads a file outside its owner's directory, and every
    name it prints stays on its line."""
    project = tree_project / "project"
    if project.exists():
        shutil.rmtree(project)
    copy_project(project, policies=True)
    for change in changes:
        _apply_tree_change(project, change)
    p = str(project)
    runs = [cli("validate", "--stack", "dev", "--project-dir", p, "--format", "json"),
            cli("explain", "--stack", "dev", "evil", "config", "--project-dir", p),
            cli("explain", "--stack", "dev", "web", "config", "--project-dir", p),
            cli("codeowners", "--project-dir", p)]
    for run in runs:
        assert_clean(run, CORES)
        if run.code == 1:  # the file is named (any name: `services/ \\` is one too)
            assert any(f in run.text for f in ("services/", "Pulumi.", ".github/")), run.text
        assert OUTSIDE_MARKER not in run.text, (changes, run.args, run.text[-800:])
    validate = json.loads(runs[0].stdout) if runs[0].stdout.strip() else {"errors": []}
    for error in validate.get("errors", []):
        assert all(c.isprintable() for c in error["file"] + error["path"] + error["message"])


# --- failure injection on writes --------------------------------------------------------------

# a complete worker's config: import writes only what validate accepts
WORKER_ENV = ("LOG_LEVEL=info\nQUEUE_URL=https://sqs.eu-west-1.amazonaws.com/123456789012/q\n"
              "CONCURRENCY=4\nRATE_LIMIT_RPS=10\nPAYMENTS_API_BASE_URL=https://payments.example.com\n")
WRITES = {  # command -> its arguments (the project's path substituted)
    "import": ("import", "billing", "--stack", "dev", "--from", "{inputs}/billing.env",
               "--app-schema", "worker", "--owner", "@shop/billing", "--project-dir", "{project}",
               "--write"),
    "codeowners": ("codeowners", "--project-dir", "{project}", "--write"),
}


@settings(FUZZ, max_examples=6 if PROFILE != "deep" else 60)
@given(command=st.sampled_from(sorted(WRITES)), limit=st.integers(0, 6000))
def test_writes_under_a_failing_file_system(tmp_path_factory, command, limit):
    """RLIMIT_FSIZE at any size: the project is as it was (and the command says nothing was
    changed), or exactly as an unlimited run leaves it."""
    results = []
    for fsize in (limit, None):
        root = tmp_path_factory.mktemp("writes")
        project = copy_project(root / "project")
        (root / "inputs").mkdir()
        (root / "inputs/billing.env").write_text(
            WORKER_ENV + "STRIPE_API_KEY=" + CANARIES["stripe"] + "\n")
        (project / ".github").mkdir(exist_ok=True)
        (project / ".github/CODEOWNERS").write_text("# old\n")
        before = tree(project)
        args = [a.format(project=project, inputs=root / "inputs") for a in WRITES[command]]
        run = configplane(*args, fsize=fsize)
        assert run.returncode in (0, 1) and "Traceback" not in run.stderr, run.stderr[-1500:]
        assert not [c for c in CORES if c in run.stdout + run.stderr]
        after = tree(project)
        if run.returncode == 1:
            assert after == before and "nothing was changed" in run.stderr, run.stderr
        results.append((run.returncode, after))
    (limited_code, limited), (_, full) = results
    assert limited_code == 1 or limited == full
