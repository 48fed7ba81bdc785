"""Config generations: retained on delete under the real program, pruned beyond N, rolled back.

The listings are what `kubectl get configmaps -o json` prints, built from real content hashes;
the rollback patch is applied by kubectl itself (`kubectl patch --local`, offline).
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from configplane.cli.app import main as cli
from configplane.contract import (
    ENVIRONMENT_LABEL,
    HASH_ANNOTATION,
    MANAGED_BY_LABEL,
    SCHEMA_ANNOTATION,
    SERVICE_LABEL,
    generation_labels,
)
from configplane.hashing import configmap_hash
from configplane.inputs import read_stack_files
from configplane.offline import redact, run_plan
from configplane.ops import Generation, parse_configmaps, prune_decisions
from configplane.validation import load_stack
from tests.ci import tool
from tests.conftest import REPO
from tests.projects import sample_plan

CM_URN = ("urn:pulumi:dev::configplane::configplane:config:ServiceConfig$"
          "kubernetes:core/v1:ConfigMap::api-config-config")


# ---------------------------------------------------------------------------------------------
# Under the SDK's mocks: a config change replaces the ConfigMap, and the old one is retained


def test_old_generation_survives_a_config_change(project: Path):
    before = {r.urn: r for r in run_plan(project, "dev", one_stack=True).resources}
    overlay = project / "services" / "api" / "dev.yaml"
    overlay.write_text(overlay.read_text().replace("LOG_LEVEL: debug", "LOG_LEVEL: warn", 1))
    after = {r.urn: r for r in run_plan(project, "dev", one_stack=True).resources}

    old, new = before[CM_URN], after[CM_URN]  # one resource, same URN: the engine replaces it
    assert old.inputs["data"]["LOG_LEVEL"] == "debug" and new.inputs["data"]["LOG_LEVEL"] == "warn"
    assert new.inputs["metadata"]["name"] == "api-config-" + configmap_hash(new.inputs["data"])
    assert old.inputs["metadata"]["name"] == "api-config-" + configmap_hash(old.inputs["data"])
    assert new.inputs["metadata"]["name"] != old.inputs["metadata"]["name"]
    # The state's option decides the old object's fate on replace (pulumi#13428): the
    # generation recorded by the previous `up` is retained, so `up` skips its Delete; and
    # create-before-delete leaves both names in the cluster side by side.
    for generation in (old, new):
        assert generation.options == {
            "protect": False, "retainOnDelete": True, "ignoreChanges": [],
            "deleteBeforeReplace": False, "replaceOnChanges": [], "dependsOn": [],
        }
    renamed = sorted(urn for urn in before if urn in after
                     and (before[urn].inputs.get("metadata") or {}).get("name")
                     != (after[urn].inputs.get("metadata") or {}).get("name"))
    assert renamed == [CM_URN]  # nothing else is replaced by a config change
    assert set(before) == set(after)
    changed = sorted(urn.rsplit("::", 1)[1] for urn in before
                     if redact(before[urn].inputs) != redact(after[urn].inputs))
    assert changed == ["api-access-role", "api-config-config"]  # the Role names the new one


def test_generation_configmaps_and_only_they_are_retained():
    plan = sample_plan("dev")
    retained = sorted(r.name for r in plan.resources if r.options["retainOnDelete"])
    assert retained == ["api-config-config", "web-config-config", "worker-config-config",
                        "worker-config-tenant-acme", "worker-config-tenant-globex"]
    for r in plan.resources:
        labels = (r.inputs.get("metadata") or {}).get("labels") or {}
        if r.name in retained:
            name, config_hash = r.inputs["metadata"]["name"], labels["configplane.io/config-hash"]
            assert name == labels["configplane.io/generation-of"] + "-" + config_hash


def test_plan_json_shows_resource_options():
    result = CliRunner().invoke(cli, ["plan", "--stack", "dev", "--project-dir", str(REPO),
                                      "--format", "json", "--no-policy"])
    assert result.exit_code == 0, result.output
    resources = {r["name"]: r for r in json.loads(result.stdout)["resources"]}
    for r in resources.values():
        assert set(r["options"]) == {"protect", "retainOnDelete", "ignoreChanges",
                                     "deleteBeforeReplace", "replaceOnChanges", "dependsOn"}
    rotator = "urn:pulumi:dev-api-team::configplane::configplane:rotation:SecretRotator$"  # its shard
    assert resources["rotation-dev-api-rotation-api-database-password"]["options"]["dependsOn"] == [
        rotator + "aws:iam/rolePolicy:RolePolicy::rotation-dev-api-policy",
        rotator + "aws:lambda/permission:Permission::rotation-dev-api-permission",
    ]
    # a rotated secret is written once: its value and version too (configplane.model.versions)
    assert resources["api-aws-database-password-initial"]["options"]["ignoreChanges"] == [
        "versionStages", "secretStringWo", "secretStringWoVersion"]
    assert resources["api-config-config"]["options"]["retainOnDelete"] is True
    assert resources["api-config"]["options"]["retainOnDelete"] is False  # the component


def test_reloader_annotations_go_on_the_workload_and_checksum_on_the_pod_template():
    plan = sample_plan("dev")
    model = load_stack(read_stack_files(REPO, "dev"))
    for name, out in plan.outputs["services"].items():
        assert out["workload_annotations"] == {"reloader.stakater.com/search": "true"}
        assert out["pod_annotations"] == {"checksum/config": model.services[name].config.hash}
    secret = next(r for r in plan.resources if r.name == "api-external-secret-external-secret")
    template = secret.inputs["spec"]["target"]["template"]["metadata"]
    assert template["annotations"] == {"reloader.stakater.com/match": "true"}


# ---------------------------------------------------------------------------------------------
# Listings as kubectl prints them


def configmap(base: str, data: dict[str, str], created: str, *, namespace: str = "api-dev",
              service: str = "api", env: str = "dev", schema: str = "services/http-api",
              tamper: bool = False) -> dict:
    h = configmap_hash(data)
    return {
        "apiVersion": "v1", "kind": "ConfigMap", "immutable": True,
        "metadata": {
            "name": f"{base}-{h}", "namespace": namespace, "creationTimestamp": created,
            "labels": {MANAGED_BY_LABEL: "configplane", SERVICE_LABEL: service,
                       ENVIRONMENT_LABEL: env, **generation_labels(base, h)},
            "annotations": {HASH_ANNOTATION: h, SCHEMA_ANNOTATION: schema},
        },
        "data": {**data, "EDITED": "1"} if tamper else data,
    }


def listing(items: list[dict]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items,
                       "metadata": {"resourceVersion": ""}})


def at(minute: int) -> str:
    return f"2026-12-01T{minute // 60:02d}:{minute % 60:02d}:00Z"


names = st.sampled_from([("api-dev", "api-config"), ("worker-dev", "worker-config"),
                         ("worker-dev", "worker-acme-config")])


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_prune_never_deletes_current_newest_or_used_and_deletes_all_else(data):
    count = data.draw(st.integers(0, 14), label="generations")
    items = []
    for i in range(count):
        namespace, base = data.draw(names)
        minute = data.draw(st.integers(0, 60 * 24 - 1))  # same-minute ties happen
        items.append(configmap(base, {"I": str(i)}, at(minute), namespace=namespace))
    generations = parse_configmaps(listing(items), "cms.json")
    assert len(generations) == count  # the round trip through kubectl's format keeps them all
    keep = data.draw(st.integers(1, 6), label="keep")
    current = {g.group: g.hash for g in generations if data.draw(st.booleans())}
    used = {(g.namespace, g.name) for g in generations if data.draw(st.integers(0, 5)) == 0}

    decisions = prune_decisions(generations, current, keep, used)
    # only the groups the stack declares are decided on; anything else is not its to touch
    assert sorted(d.generation.name for d in decisions) == sorted(
        g.name for g in generations if g.group in current)
    deleted = {d.generation for d in decisions if not d.keep}
    for group in {g.group for g in generations} & set(current):
        mine = sorted((g for g in generations if g.group == group),
                      key=lambda g: (g.created, g.name), reverse=True)
        protected = set(mine[:keep]) | {g for g in mine if current.get(group) == g.hash
                                        or (g.namespace, g.name) in used}
        assert deleted & set(mine) == set(mine) - protected
        assert all((d.created, d.name) < (n.created, n.name)
                   for d in deleted & set(mine) for n in mine[:keep])


def test_prune_keep_must_be_positive():
    with pytest.raises(ValueError):
        prune_decisions([], {}, 0)


def test_listing_skips_what_is_no_generation():
    flags = configmap("web-flags", {"flags.flagd.json": "{}"}, at(1), schema="flags")
    foreign = configmap("api-config", {"A": "1"}, at(2))
    foreign["metadata"]["labels"][MANAGED_BY_LABEL] = "helm"
    stable = configmap("web-flags", {"A": "2"}, at(3))
    stable["metadata"]["name"] = "web-flags"  # stable-named: not a hash-named generation
    kept = configmap("api-config", {"A": "3"}, at(4))
    tampered = configmap("api-config", {"A": "4"}, at(5), tamper=True)
    parsed = parse_configmaps(listing([flags, foreign, stable, kept, tampered]), "cms.json")
    h3, h4 = configmap_hash({"A": "3"}), configmap_hash({"A": "4"})
    assert parsed == [
        Generation("api-dev", f"api-config-{h3}", "api-config", h3, "api", "dev", at(4), True),
        Generation("api-dev", f"api-config-{h4}", "api-config", h4, "api", "dev", at(5), False),
    ]


# ---------------------------------------------------------------------------------------------
# The CLI, against the repo's dev stack


@pytest.fixture(scope="module")
def dev():
    return load_stack(read_stack_files(REPO, "dev"))


def api_generations(dev, count: int) -> list[dict]:
    """`count` older generations of api-config (LOG_LEVEL changes), then the current one."""
    current = dict(dev.services["api"].config.data)
    old = [configmap("api-config", {**current, "LOG_LEVEL": f"level{i}"}, at(10 * i))
           for i in range(count)]
    return [*old, configmap("api-config", current, at(10 * count))]


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def run(*args: str, input: str | None = None):
    result = CliRunner().invoke(cli, [*args, "--project-dir", str(REPO)], input=input)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_prune_prints_exactly_the_deletes(tmp_path: Path, dev):
    items = api_generations(dev, 6)  # g0 .. g5 older, then the current (newest)
    g = [i["metadata"]["name"] for i in items]
    workload_history = {"kind": "List", "items": [{
        "kind": "ReplicaSet", "metadata": {"name": "api-6d4f", "namespace": "api-dev"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "api", "envFrom": [{"configMapRef": {"name": g[1]}}]}]}}},
    }]}
    others = [configmap("web-flags", {"flags.flagd.json": "{}"}, at(0), namespace="web-dev",
                        service="web", schema="flags"),
              configmap("api-config", {"FROM": "staging"}, at(0), namespace="api-dev",
                        env="staging")]
    cms = write(tmp_path, "cms.json", listing(items + others))
    workloads = write(tmp_path, "workloads.json", json.dumps(workload_history))

    result = run("prune", "--stack", "dev", "--configmaps", cms, "--keep", "2",
                 "--workloads", workloads)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"kubectl delete configmap {g[4]} -n api-dev",
        f"kubectl delete configmap {g[3]} -n api-dev",
        f"kubectl delete configmap {g[2]} -n api-dev",
        f"kubectl delete configmap {g[0]} -n api-dev",
    ]
    assert result.stderr.splitlines() == [
        f"# keep api-dev/{g[6]} (current)",
        f"# keep api-dev/{g[5]} (newest 2)",
        f"# keep api-dev/{g[1]} (in use)",
        "# 4 to delete, 3 kept (keep 2 per ConfigMap)",
    ]


def test_prune_default_keep_comes_from_platform_settings(dev):
    assert dev.platform.config_history.keep == 5
    items = api_generations(dev, 7)
    result = run("prune", "--stack", "dev", "--configmaps", "-", "--format", "json",
                 input=listing(items))
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["keep"] == 5
    assert [d["configmap"] for d in document["delete"]] == [
        items[2]["metadata"]["name"], items[1]["metadata"]["name"], items[0]["metadata"]["name"]]
    assert document["commands"] == [f"kubectl delete configmap {d['configmap']} -n api-dev"
                                    for d in document["delete"]]


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "cms.json: not JSON (Expecting property name enclosed in double quotes at "
                  "line 1 column 2)."),
    ("[]", "cms.json: (root): expected a JSON object (a kubectl List)."),
    ('{"kind": "List"}', "cms.json: items: missing (not a kubectl List)."),
    ('{"kind": "List", "items": [{"kind": "Secret", "metadata": {}}]}',
     "cms.json: items[0].kind: 'Secret' is not a ConfigMap."),
    ('{"kind": "List", "items": [{"kind": "ConfigMap", "metadata": {"namespace": "a"}}]}',
     "cms.json: items[0].metadata.name: missing or not a string."),
])
@pytest.mark.parametrize("verb", [["prune", "--stack", "dev"], ["rollback", "--stack", "dev", "api"]])
def test_bad_listing_is_a_clean_error(tmp_path: Path, monkeypatch, verb, text, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "cms.json", text)
    result = run(*verb, "--configmaps", "cms.json")
    assert result.exit_code == 1
    fix = (" Fix: pass the output of `kubectl get configmaps -A -l "
           "app.kubernetes.io/managed-by=configplane -o json` (a file, or - for stdin).")
    assert result.stderr == f"error: {message}{fix}\n"
    assert result.stdout == ""


def test_missing_listing_file(tmp_path: Path):
    result = run("rollback", "--stack", "dev", "api", "--configmaps", str(tmp_path / "nope.json"))
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {tmp_path / 'nope.json'}: no such file. Fix: save the output of `kubectl get "
        "configmaps -A -l app.kubernetes.io/managed-by=configplane -o json` to it first, or "
        "pass - to read stdin.\n")


def test_rollback_to_previous_generation_with_rollout_undo(dev):
    items = api_generations(dev, 2)
    result = run("rollback", "--stack", "dev", "api", "--configmaps", "-", input=listing(items))
    assert result.exit_code == 0, result.output
    h = [i["metadata"]["labels"]["configplane.io/config-hash"] for i in items]
    assert result.stdout.splitlines() == [
        "stack dev, api: generations of api-config in api-dev, newest first",
        f"  {h[2]}  {at(20)}  current",
        f"  {h[1]}  {at(10)}  <- target",
        f"  {h[0]}  {at(0)}",
        f"roll deployment/api back to api-config-{h[1]}: run",
        "  kubectl rollout undo deployment/api -n api-dev",
        "then check",
        "  kubectl rollout status deployment/api -n api-dev --timeout=120s",
        "  kubectl get deployment/api -n api-dev -o "
        f"'jsonpath={{.spec.template.metadata.annotations.checksum/config}}'  # prints {h[1]}",
        "note: `rollout undo` restores the previous pod template; when the last rollout was not "
        "this config change (an image bump), run with --workload for an exact patch instead.",
    ]


def deployment(config_name: str, config_hash: str) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "api-dev"},
        "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": {
            "metadata": {"labels": {"app": "api"},
                         "annotations": {"checksum/config": config_hash}},
            "spec": {
                "initContainers": [{"name": "migrate", "image": "api:1", "env": [
                    {"name": "LOG_LEVEL", "valueFrom": {"configMapKeyRef": {
                        "name": config_name, "key": "LOG_LEVEL"}}}]}],
                "containers": [{"name": "api", "image": "api:1", "envFrom": [
                    {"secretRef": {"name": "api-secrets"}},
                    {"configMapRef": {"name": config_name}}]}],
                "volumes": [{"name": "config", "configMap": {"name": config_name}},
                            {"name": "other", "configMap": {"name": "unrelated"}}],
            },
        }},
    }


def test_rollback_patch_points_every_reference_back(tmp_path: Path, dev):
    kubectl = tool("kubectl", "install kubectl (its `patch --local` applies the rollback patch)")
    items = api_generations(dev, 3)
    names = [i["metadata"]["name"] for i in items]
    h = [i["metadata"]["labels"]["configplane.io/config-hash"] for i in items]
    cms = write(tmp_path, "cms.json", listing(items))
    wl = write(tmp_path, "api.json", json.dumps(deployment(names[3], h[3])))

    result = run("rollback", "--stack", "dev", "api", "--to", h[0], "--configmaps", cms,
                 "--workload", wl, "--format", "json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["method"] == "patch" and plan["workload"] == "deployment/api"
    assert plan["current"] == {"namespace": "api-dev", "configmap": names[3], "hash": h[3],
                               "created": at(30)}
    assert plan["target"] == {"namespace": "api-dev", "configmap": names[0], "hash": h[0],
                              "created": at(0)}
    assert plan["patch"] == [
        {"op": "replace", "path": "/spec/template/spec/initContainers/0/env/0/valueFrom/"
                                  "configMapKeyRef/name", "value": names[0]},
        {"op": "replace", "path": "/spec/template/spec/containers/0/envFrom/1/configMapRef/name",
         "value": names[0]},
        {"op": "replace", "path": "/spec/template/spec/volumes/0/configMap/name",
         "value": names[0]},
        {"op": "replace", "path": "/spec/template/metadata/annotations/checksum~1config",
         "value": h[0]},
    ]
    patch_cmd, annotate_cmd = plan["commands"]
    assert patch_cmd == ("kubectl patch deployment/api -n api-dev --type=json -p '"
                         + json.dumps(plan["patch"], separators=(",", ":")) + "'")
    assert annotate_cmd == ("kubectl annotate deployment/api -n api-dev --overwrite "
                            f"'kubernetes.io/change-cause=configplane rollback api-config to "
                            f"{h[0]}'")
    assert [shlex.join(a) for a in plan["argv"]] == plan["commands"]
    # kubectl applies the printed patch offline; the verify jsonpath prints the target hash
    patched = subprocess.run(
        [kubectl, "patch", "-f", wl, "--local", "--type=json", "-p",
         json.dumps(plan["patch"]), "-o", "json"], check=True, capture_output=True, text=True)
    spec = json.loads(patched.stdout)["spec"]["template"]
    assert spec["spec"]["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "api-secrets"}}, {"configMapRef": {"name": names[0]}}]
    assert [v["configMap"]["name"] for v in spec["spec"]["volumes"]] == [names[0], "unrelated"]
    assert spec["spec"]["initContainers"][0]["env"][0]["valueFrom"]["configMapKeyRef"] == {
        "name": names[0], "key": "LOG_LEVEL"}
    output = plan["verify_argv"][1][-1]
    assert output.startswith("jsonpath=") and shlex.split(plan["verify"][1])[-1] == output
    printed = subprocess.run(
        [kubectl, "patch", "-f", wl, "--local", "--type=json", "-p", json.dumps(plan["patch"]),
         "-o", output], check=True, capture_output=True, text=True)
    assert printed.stdout == h[0] == plan["verify_prints"]


def test_rollback_without_to_uses_the_workload_current(tmp_path: Path, dev):
    items = api_generations(dev, 3)
    names = [i["metadata"]["name"] for i in items]
    h = [i["metadata"]["labels"]["configplane.io/config-hash"] for i in items]
    doc = deployment(names[2], h[2])  # the workload runs g2, not the stack's current g3
    del doc["spec"]["template"]["metadata"]["annotations"]
    wl = write(tmp_path, "api.json", json.dumps(doc))
    result = run("rollback", "--stack", "dev", "api", "--configmaps", "-", "--workload", wl,
                 "--format", "json", input=listing(items))
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert (plan["current"]["hash"], plan["target"]["hash"]) == (h[2], h[1])
    assert plan["patch"][-1] == {"op": "add", "path": "/spec/template/metadata/annotations",
                                 "value": {"checksum/config": h[1]}}


def test_rollback_tenant_configmap(dev):
    worker = dev.services["worker"]
    current = dict(worker.tenants["acme"].data)
    items = [configmap("worker-acme-config", {**current, "RATE_LIMIT_RPS": "1"}, at(0),
                       namespace="worker-dev", service="worker"),
             configmap("worker-acme-config", current, at(5), namespace="worker-dev",
                       service="worker")]
    result = run("rollback", "--stack", "dev", "worker", "--tenant", "acme", "--configmaps", "-",
                 "--format", "json", input=listing(items))
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["configmap"] == "worker-acme-config"
    assert plan["target"]["configmap"] == items[0]["metadata"]["name"]
    assert plan["commands"] == ["kubectl rollout undo deployment/worker -n worker-dev"]


def test_rollback_refusals(tmp_path: Path, dev):
    items = api_generations(dev, 2)
    h = [i["metadata"]["labels"]["configplane.io/config-hash"] for i in items]
    text = listing(items)
    present = f"{h[2]}, {h[1]}, {h[0]}"

    def refused(*args: str, listing_text: str = text) -> str:
        result = run("rollback", "--stack", "dev", *args, "--configmaps", "-",
                     input=listing_text)
        assert result.exit_code == 1 and result.stdout == ""
        return result.stderr

    assert refused("billing") == ("error: unknown service 'billing' in stack dev. Fix: use one "
                                  "of api, web, worker.\n")
    assert refused("api", "--tenant", "acme") == ("error: service api has no tenant 'acme' in "
                                                  "stack dev. Fix: use one of: none.\n")
    assert refused("api", "--to", "zzzzzzzzzz") == (
        "error: generation zzzzzzzzzz of api-config is not in the cluster listing (namespace "
        f"api-dev). Generations present, newest first: {present}. Fix: pick one of them with "
        "--to.\n")
    assert refused("api", "--to", h[2]) == (
        f"error: api-config is already at generation {h[2]}. Nothing to do.\n")
    assert refused("api", "--to", h[0]) == (
        f"error: --to needs --workload: the patch that points a workload at api-config-{h[0]} "
        "names its ConfigMap references. Fix: run `kubectl get deployment/api -n api-dev -o "
        "json > api.json` and add --workload api.json.\n")
    assert refused("api", listing_text=listing(items[2:])) == (
        f"error: api-config has no generation older than the current {h[2]} in the cluster "
        "(pruned, or the first deploy). Nothing to roll back to.\n")
    assert refused("api", listing_text=listing(items[:2])) == (
        f"error: the current generation {h[2]} of api-config is not in the listing (not "
        f"deployed yet, or another cluster). Generations present, newest first: {h[1]}, {h[0]}. "
        "Fix: pick one with --to.\n")
    assert refused("api", listing_text=listing([])) == (
        "error: no generation of ConfigMap api-config in namespace api-dev in the listing. Fix: "
        "list the right cluster and namespace with `kubectl get configmaps -A -l "
        "app.kubernetes.io/managed-by=configplane -o json`.\n")
    tampered = [*items[:1], configmap("api-config", dict(dev.services["api"].config.data,
                                                         LOG_LEVEL="level1"), at(10), tamper=True),
                items[2]]
    assert refused("api", listing_text=listing(tampered)) == (
        f"error: ConfigMap api-config-{h[1]} in api-dev: its data does not hash to {h[1]}, so it "
        "is not the generation configplane wrote (changed by hand?). Refusing to roll back to "
        "it. Fix: pick another generation with --to.\n")


def test_rollback_bad_workload(tmp_path: Path, monkeypatch, dev):
    items = api_generations(dev, 1)
    cms = write(tmp_path, "cms.json", listing(items))
    cases = {
        "{": "error: wl.json: not JSON (Expecting property name enclosed in double quotes at "
             "line 1 column 2). Fix: pass the output of `kubectl get deployments,replicasets,"
             "statefulsets,daemonsets,controllerrevisions,cronjobs,jobs -A -o json` or of "
             "`kubectl get deployment/<name> -n <namespace> -o json`.\n",
        json.dumps({"kind": "Service", "metadata": {"name": "api", "namespace": "api-dev"}}):
            "error: --workload is a Service; rollback patches a Deployment, StatefulSet or "
            "DaemonSet. Fix: `kubectl get deployment/<name> -n api-dev -o json`.\n",
        json.dumps({"kind": "Deployment", "metadata": {"name": "api", "namespace": "web-dev"}}):
            "error: --workload deployment/api is in namespace web-dev, the service's config is "
            "in api-dev. Fix: pass the service's workload.\n",
        json.dumps(deployment("unrelated", "x")):
            "error: deployment/api references no generation of api-config; there is nothing to "
            "point back. Fix: check that --workload is this service's workload.\n",
        json.dumps({"kind": "List", "items": []}):
            "error: wl.json: holds 0 objects; --workload takes one. Fix: `kubectl get "
            "deployment/api -n api-dev -o json`.\n",
    }
    monkeypatch.chdir(tmp_path)
    for text, message in cases.items():
        (tmp_path / "wl.json").write_text(text)
        result = run("rollback", "--stack", "dev", "api", "--configmaps", cms,
                     "--workload", "wl.json")
        assert result.exit_code == 1
        assert result.stderr == message


@pytest.mark.parametrize("verb", ["rollback", "prune"])
def test_help_has_an_example(verb: str):
    result = CliRunner().invoke(cli, [verb, "--help"])
    assert result.exit_code == 0
    assert f"Example: configplane {verb} --stack prod" in result.output


def test_the_pack_receives_the_options_the_engine_sends():
    from configplane.offline import ResourceOptions, analyzed_resources

    analyzed = {r.urn_name: r for r in analyzed_resources(sample_plan("dev"))}
    assert analyzed["api-config-config"].options == ResourceOptions(delete_before_replace=False)
    assert analyzed["api-aws-database-password-initial"].options == ResourceOptions(
        ignore_changes=("versionStages", "secretStringWo", "secretStringWoVersion"))
    assert analyzed["api-config"].options == ResourceOptions()


@pytest.mark.parametrize(("obj", "expected"), [
    ({"kind": "ControllerRevision", "metadata": {"name": "r", "namespace": "n"},
      "data": {"spec": {"template": {"spec": {"volumes": [{"name": "v", "projected": {
          "sources": [{"secret": {"name": "s"}}, {"configMap": {"name": "a-config-1"}}]}}]}}}}},
     {("n", "a-config-1")}),
    ({"kind": "CronJob", "metadata": {"name": "c", "namespace": "n"},
      "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
          {"name": "x", "envFrom": [{"configMapRef": {"name": "a-config-2"}}]}]}}}}}},
     {("n", "a-config-2")}),
    ({"kind": "Pod", "metadata": {"name": "p", "namespace": "n"},
      "spec": {"containers": [{"name": "x", "env": [{"name": "A", "value": "1"}, {
          "name": "B", "valueFrom": {"configMapKeyRef": {"name": "a-config-3", "key": "B"}}}]}]}},
     {("n", "a-config-3")}),
    ({"kind": "Service", "metadata": {"name": "s", "namespace": "n"}, "spec": {}}, set()),
])
def test_in_use_finds_every_kind_of_reference(obj, expected):
    from configplane.ops import in_use

    assert in_use([obj]) == expected


def test_plan_table_marks_retained_resources():
    result = CliRunner().invoke(cli, ["plan", "--stack", "dev", "--project-dir", str(REPO),
                                      "--no-policy"])
    assert result.exit_code == 0, result.output
    marked = sorted(line.split()[-2] for line in result.stdout.splitlines()
                    if line.endswith("[retainOnDelete]"))
    assert marked == ["api-config-config", "web-config-config", "worker-config-config",
                      "worker-config-tenant-acme", "worker-config-tenant-globex"]
