"""The docs a new team follows literally, run as written so they cannot go stale.

Every `console` block of docs/tutorial.md and docs/add-a-service.md runs in a fresh copy of
the project (its git-tracked files, committed once, as a clone would have them): each `$`
line through bash with this checkout's `configplane` on the PATH, in order, and what it
prints (stdout and stderr) must match the lines below it; `…` stands for any lines (alone on
a line) or any text (inside one). A command that fails must be followed by `$ echo $?`.
Fenced blocks with `file=<path>` are files the reader creates. Commands that need a cloud or
the Pulumi CLI are shown in `bash` blocks and are not run here.

The Deployment in docs/add-a-service.md is checked with kubernetes-validate (strict) and
against the offline plan of the service it names: every name it consumes is one the plan
declares.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from configplane.contract import FLAGS_DATA_KEY
from tests.projects import REPO

RUNNABLE = ("tutorial.md", "add-a-service.md")
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
KUBERNETES_VERSION = "1.33"


def blocks(doc: str) -> list[tuple[str, str, str]]:
    """(language, info after it, body) of each fenced block, in order."""
    return [(m.group(1), m.group(2).strip(), m.group(3))
            for m in FENCE.finditer((REPO / "docs" / doc).read_text())]


def clone(target: Path) -> Path:
    """The project's tracked files (as in the working tree), committed in a new repository."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if name.split("/")[0] in ("tests", "benchmarks") or not (REPO / name).exists():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).is_symlink():
            (target / name).symlink_to(os.readlink(REPO / name))
        else:
            shutil.copy2(REPO / name, target / name)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "the project"]):
        subprocess.run(["git", *args], cwd=target, check=True, env=env)
    return target


def sessions(body: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) of a console block; `\\` continues a command."""
    found: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            found.append((line[2:], []))
        elif found and found[-1][0].endswith("\\") and not found[-1][1]:
            found[-1] = (found[-1][0][:-1] + line.strip(), [])
        else:
            assert found, f"output before any command: {line!r}"
            found[-1][1].append(line)
    return found


def pattern(expected: list[str]) -> re.Pattern[str]:
    parts = []
    for line in expected:
        line = line.rstrip()
        if line.strip() == "…":
            parts.append(r"(?:.*\n)*?")
        else:
            parts.append(re.escape(line).replace("…", ".*?") + r"\n")
    return re.compile("".join(parts))


def normalised(output: str) -> str:
    return "".join(line.rstrip() + "\n" for line in output.splitlines())


@pytest.mark.parametrize("doc", RUNNABLE)
def test_console_blocks_run_as_written(tmp_path, doc):
    project = clone(tmp_path / "project")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("CONFIGPLANE_DEBUG", None)
    ran = 0
    for language, info, body in blocks(doc):
        if info.startswith("file="):
            path = project / info.removeprefix("file=")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
            continue
        if language != "console":
            continue
        steps = sessions(body)
        last = 0
        for n, (command, expected) in enumerate(steps):
            assert command.split()[0] in ("configplane", "sed", "echo", "git"), \
                f"{doc}: `{command}` is not runnable offline: show it in a bash block"
            if command == "echo $?":
                output, code = f"{last}\n", 0
            else:
                run = subprocess.run(["bash", "-c", command], cwd=project, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                output, code = run.stdout, run.returncode
            follows = steps[n + 1][0] if n + 1 < len(steps) else ""
            assert code == 0 or follows == "echo $?", f"{doc}: `{command}` exited {code}:\n{output}"
            assert "Traceback" not in output
            assert pattern(expected).fullmatch(normalised(output)), (
                f"{doc}: `{command}` printed:\n{output}\nwhich does not match:\n"
                + "\n".join(expected))
            last = code
            ran += 1
    assert ran, f"{doc}: no console block ran"


def deployment() -> dict:
    found = [yaml.safe_load(body) for language, _, body in blocks("add-a-service.md")
             if language == "yaml" and "kind: Deployment" in body]
    assert len(found) == 1
    return found[0]


def test_the_deployment_consumes_what_the_plan_declares():
    manifest = deployment()
    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    stack = namespace.rsplit("-", 1)[1]
    run = subprocess.run([Path(sys.executable).parent / "configplane", "plan", "--stack", stack,
                          "--service", name, "--no-policy", "--format", "json",
                          "--project-dir", str(REPO)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    plan = json.loads(run.stdout)
    outputs = plan["outputs"]["services"][name]
    declared = {(r["type"].rsplit(":", 1)[-1], r["inputs"]["metadata"]["name"])
                for r in plan["resources"] if r["type"].startswith("kubernetes:")
                and "metadata" in r["inputs"]}
    targets = {r["inputs"]["spec"]["target"]["name"] for r in plan["resources"]
               if r["type"].endswith(":ExternalSecret") and "spec" in r["inputs"]}

    # the config hash is filled in at deploy time, from the stack output
    text = json.dumps(manifest).replace("${CONFIG_HASH}", outputs["config_hash"])
    manifest = json.loads(text)
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)

    pod = manifest["spec"]["template"]
    spec = pod["spec"]
    app = spec["containers"][0]
    assert namespace == outputs["namespace"]
    assert manifest["metadata"]["annotations"].items() >= outputs["workload_annotations"].items()
    assert pod["metadata"]["annotations"].items() >= outputs["pod_annotations"].items()
    assert spec["serviceAccountName"] == outputs["service_account"]
    assert ("ServiceAccount", outputs["service_account"]) in declared
    config_ref, secret_ref = app["envFrom"]
    assert config_ref["configMapRef"]["name"] == outputs["configmap"]
    assert ("ConfigMap", outputs["configmap"]) in declared
    assert secret_ref["secretRef"]["name"] == outputs["secret_name"]
    assert outputs["secret_name"] in targets  # the Secret the ExternalSecret writes

    volume = next(v for v in spec["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == outputs["flags_configmap"]
    assert ("ConfigMap", outputs["flags_configmap"]) in declared
    flagd = next(c for c in spec["containers"] if c["name"] == "flagd")
    mount = next(m for m in flagd["volumeMounts"] if m["name"] == volume["name"])
    assert "subPath" not in mount  # a subPath mount never sees the ConfigMap's updates
    assert f"file:{mount['mountPath']}/{FLAGS_DATA_KEY}" in flagd["args"]


def test_the_deployment_check_can_fail():
    """kubernetes-validate refuses a misspelt field (strict), so the check above bites."""
    manifest = deployment()
    manifest["spec"]["template"]["spec"]["containers"][0]["envForm"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
