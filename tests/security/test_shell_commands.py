"""Every command configplane prints for a shell is safe by construction: piped into a real `sh`
against recording fakes of `kubectl`, `configplane` and `pulumi` on PATH, hostile listings,
workloads and file names reach those programs as exactly the argv configplane meant, or the
command refuses and prints nothing to run. Nothing else ever runs (a `$(touch ...)` in a
name would leave a file behind)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configplane.cli.app import main as cli
from configplane.contract import GENERATION_OF_LABEL, HASH_ANNOTATION, HASH_LABEL
from configplane.inputs import read_stack_files
from configplane.validation import load_stack
from tests.conftest import REPO
from tests.ops.test_generations import at, configmap, listing
from tests.projects import copy_project

RECORDER = """#!{python}
import json, os, sys
data = sys.stdin.read() if {reads_stdin} else None
with open(os.environ["RECORD"], "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0]), sys.argv[1:], data]) + "\\n")
print("value")
"""


@pytest.fixture(scope="module")
def dev():
    return load_stack(read_stack_files(REPO, "dev"))


@pytest.fixture(scope="module")
def fakes(tmp_path_factory) -> Path:
    """A bin directory whose kubectl, configplane and pulumi record their argv."""
    bin_dir = tmp_path_factory.mktemp("bin")
    for name, reads_stdin in (("kubectl", False), ("configplane", False), ("pulumi", True)):
        path = bin_dir / name
        path.write_text(RECORDER.format(python=sys.executable, reads_stdin=reads_stdin))
        path.chmod(0o755)
    return bin_dir


def through_sh(script: str, fakes: Path, workdir: Path) -> list[list]:
    """Run `script` as `... | sh` would; what each fake received, in order."""
    record = workdir / "record.jsonl"
    record.unlink(missing_ok=True)
    subprocess.run(["sh"], input=script, text=True, cwd=workdir, timeout=60, check=False,
                   env={**os.environ, "PATH": f"{fakes}:{os.environ['PATH']}",
                        "RECORD": str(record)})
    return [json.loads(line) for line in record.read_text().splitlines()] \
        if record.exists() else []


def run(*args: str, input: str | None = None):
    result = CliRunner().invoke(cli, [*args, "--project-dir", str(REPO)], input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def pwned_marker(workdir: Path) -> Path:
    return workdir / "PWNED"


# Hostile items: each a change to one valid older generation of api-config. "refused": the
# item claims to be a configplane generation but a name in it is not a Kubernetes name; the
# whole listing is refused. "ignored": not a generation (a hash that is no hash) or not the
# stack's (another namespace, a ConfigMap the stack does not declare): never deleted.
def _rename(item: dict, name: str) -> None:
    item["metadata"]["name"] = name


def _hash(item: dict, value: str) -> None:
    base = item["metadata"]["labels"][GENERATION_OF_LABEL]
    item["metadata"]["labels"][HASH_LABEL] = value
    item["metadata"]["annotations"][HASH_ANNOTATION] = value
    item["metadata"]["name"] = f"{base}-{value}"


MUTATIONS = {
    "name-substitution": ("refused", lambda i, m: _rename(
        i, f"api-config-$(touch {m})-{i['metadata']['labels'][HASH_LABEL]}")),
    "name-newline": ("refused", lambda i, m: _rename(
        i, f"api-config\ntouch {m}\n-{i['metadata']['labels'][HASH_LABEL]}")),
    "name-backticks": ("refused", lambda i, m: _rename(
        i, f"api-config-`touch {m}`-{i['metadata']['labels'][HASH_LABEL]}")),
    "namespace-semicolon": ("refused", lambda i, m: i["metadata"].update(
        namespace=f"api-dev;touch {m}")),
    "namespace-newline": ("refused", lambda i, m: i["metadata"].update(namespace="api-dev\n")),
    "base-label-quote": ("refused", lambda i, m: i["metadata"]["labels"].update(
        {GENERATION_OF_LABEL: f"api-config' ; touch {m} ; '"})),
    "hash-newline": ("ignored", lambda i, m: _hash(i, "abcdefghi\n")),  # 10 chars with the \n
    "hash-substitution": ("ignored", lambda i, m: _hash(i, f"$(touch {m})")),
    "kube-system": ("ignored", lambda i, m: i["metadata"].update(namespace="kube-system")),
    "default-namespace": ("ignored", lambda i, m: i["metadata"].update(namespace="default")),
    "another-configmap": ("ignored", lambda i, m: _hash(i, i["metadata"]["labels"][HASH_LABEL])
                          or i["metadata"]["labels"].update({GENERATION_OF_LABEL: "etcd-config"})
                          or _rename(i, f"etcd-config-{i['metadata']['labels'][HASH_LABEL]}")),
}


def generations(dev, count: int) -> list[dict]:
    current = dict(dev.services["api"].config.data)
    old = [configmap("api-config", {**current, "LOG_LEVEL": f"level{i}"}, at(10 * i))
           for i in range(count)]
    return [*old, configmap("api-config", current, at(10 * count))]


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(sorted(MUTATIONS)), max_size=4), data=st.data())
def test_prune_piped_to_sh_runs_exactly_the_stacks_deletes(dev, fakes, tmp_path_factory,
                                                            kinds, data):
    workdir = tmp_path_factory.mktemp("sh")
    marker = pwned_marker(workdir)
    items = generations(dev, 5)  # five older generations, then the current one
    legit = [["delete", "configmap", i["metadata"]["name"], "-n", "api-dev"]
             for i in reversed(items[:4])]  # --keep 2: the current and the newest older stay
    hostile = []
    for n, kind in enumerate(kinds):
        item = configmap("api-config", {"HOSTILE": str(n)}, at(1000 + n))
        MUTATIONS[kind][1](item, marker)
        hostile.append(item)
    listed = data.draw(st.permutations(items + hostile))
    result = run("prune", "--stack", "dev", "--configmaps", "-", "--keep", "2",
                 input=listing(listed))
    received = through_sh(result.stdout, fakes, workdir)
    assert not marker.exists()
    if any(MUTATIONS[k][0] == "refused" for k in kinds):
        assert (result.exit_code, result.stdout, received) == (1, "", [])
        assert "Traceback" not in result.stderr and "\n" not in result.stderr.rstrip("\n")
    else:
        assert result.exit_code == 0, result.output
        assert [argv for _, argv, _ in received] == legit
        document = json.loads(run("prune", "--stack", "dev", "--configmaps", "-", "--keep", "2",
                                  "--format", "json", input=listing(listed)).stdout)
        assert document["argv"] == [["kubectl", *argv] for argv in legit]  # tools: no shell


def deployment(name: str, namespace: str, configmap_name: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"template": {"metadata": {"annotations": {}}, "spec": {"containers": [
                {"name": "api", "envFrom": [{"configMapRef": {"name": configmap_name}}]}]}}}}


@pytest.mark.parametrize("name, refused", [
    ("api", False), ("api-v2.blue", False), ("api$(touch PWNED)", True), ("api\nx", True),
    ("api'; touch PWNED; '", True), ("-n kube-system", True), ("API", True)])
def test_rollback_piped_to_sh_runs_exactly_its_argv(dev, fakes, tmp_path, name, refused):
    items = generations(dev, 2)
    names = [i["metadata"]["name"] for i in items]
    (tmp_path / "cms.json").write_text(listing(items))
    (tmp_path / "wl.json").write_text(json.dumps(deployment(name, "api-dev", names[2])))
    args = ("rollback", "--stack", "dev", "api", "--configmaps", str(tmp_path / "cms.json"),
            "--workload", str(tmp_path / "wl.json"))
    result = run(*args, "--format", "json")
    if refused:
        assert result.exit_code == 1 and result.stdout == ""
        assert "not a Kubernetes object name" in result.stderr
        return
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    script = "\n".join(plan["commands"] + plan["verify"]) + "\n"
    received = through_sh(script, fakes, tmp_path)
    assert [argv for _, argv, _ in received] == [a[1:] for a in plan["argv"] + plan["verify_argv"]]
    assert json.loads(received[0][1][-1]) == plan["patch"]  # the JSON patch arrives whole
    table = run(*args).stdout  # what people copy: the same commands, indented
    assert [line.strip() for line in table.splitlines()
            if line.strip() in plan["commands"]] == plan["commands"]
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("source_name", [
    "billing.env", "in $(touch PWNED).env", "a'b\"c;`touch PWNED`|x.env", "-- --help.env",
    "sp ace.env", "\u00e9t\u00e9 *.env"])
def test_import_commands_piped_to_sh_pass_exactly_the_paths_given(fakes, tmp_path, source_name):
    project = copy_project(tmp_path / "project")
    inputs = tmp_path / "in"
    inputs.mkdir()
    source = inputs / source_name
    source.write_text("STRIPE_API_KEY=sk_live_" + "Cn4ryStr1peAbCdEfGh1234\nLOG_LEVEL=info\n")
    result = CliRunner().invoke(cli, ["import", "billing", "--stack", "dev", "--from", str(source),
                                      "--app-schema", "worker", "--project-dir", str(project),
                                      "--owner", "@shop/billing", "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert len(document["commands"]) == 1
    received = through_sh(document["commands"][0] + "\n", fakes, tmp_path)
    producer, consumer = document["pipelines"][0]
    assert received == [["configplane", producer[1:], None], ["pulumi", consumer[1:], "value\n"]]
    assert producer[1:] == ["import", "--from", str(source), "--emit-value", "STRIPE_API_KEY"]
    assert not list(tmp_path.rglob("PWNED"))


@pytest.mark.parametrize("source_name", ["new\nline.env", "tab\t.env", "bidi\u202e.env"])
def test_an_input_named_with_a_control_character_is_refused(tmp_path, source_name):
    project = copy_project(tmp_path / "project")
    source = tmp_path / source_name
    source.write_text("STRIPE_API_KEY=sk_live_" + "Cn4ryStr1peAbCdEfGh1234\n")
    result = CliRunner().invoke(cli, ["import", "billing", "--stack", "dev", "--from", str(source),
                                      "--app-schema", "worker", "--project-dir", str(project)])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "control character" in result.stderr


def test_a_hostile_stack_name_cannot_leave_the_project(tmp_path):
    project = copy_project(tmp_path / "project")
    for stack in ("../../x", "dev/../../x", "dev\nx"):
        result = CliRunner().invoke(cli, ["validate", "--stack", stack, "--project-dir",
                                          str(project)])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "Pulumi." in result.output  # the message names the stack file it refused
    assert not (tmp_path / "x").exists()


def test_json_output_gives_tools_argv_lists_not_shell_text(dev):
    items = generations(dev, 7)
    document = json.loads(run("prune", "--stack", "dev", "--configmaps", "-", "--format", "json",
                              input=listing(items)).stdout)
    assert document["commands"] == [shlex.join(a) for a in document["argv"]]
    assert document["argv"] and all(a[:3] == ["kubectl", "delete", "configmap"]
                                    for a in document["argv"])
