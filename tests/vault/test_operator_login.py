"""A shard's operator workspace logs in to Vault as its deployer (configplane/ops/operator.py):
the Vault Agent configuration `operator stacks` prints, run by the real agent (OpenBao's
`bao agent`) with a projected token the stand-in API server issues for what the pod template
projects (the Stack's account, in its namespace, for the volume's audience), against the real
server holding the platform stack's planned login roles. The server decides: the Vault token
the agent writes carries the shard's deploy policy, and nothing else."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from configplane import ownership
from configplane.ops.scratch_vault import bao_binary, dying_with_parent
from tests.conftest import STACKS
from tests.ops.test_operator import objects


def _hcl_value(hcl: str, key: str) -> str:
    [value] = re.findall(rf'^\s*{key} = ("(?:[^"\\]|\\.)*")$', hcl, re.M)
    return json.loads(value)


def _with(hcl: str, key: str, value: str) -> str:
    """The configuration with one setting moved (the pod's paths, the test server)."""
    return re.sub(rf'^(\s*{key} = )"(?:[^"\\]|\\.)*"$', lambda m: m.group(1) + json.dumps(value),
                  hcl, flags=re.M)


def _wait_for(path: Path, agent: subprocess.Popen, log: Path, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return path.read_text().strip()
        if agent.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"no Vault token from the agent: {log.read_text()[-2000:]}")


@pytest.mark.parametrize("stack", STACKS)
def test_each_shard_workspaces_agent_logs_in_with_its_deploy_policy_only(applied, stack,
                                                                          tmp_path):
    a = applied[stack]
    found = objects(stack)
    config_maps = {o["metadata"]["name"]: o for o in found if o["kind"] == "ConfigMap"}
    shards = [o for o in found if o["kind"] == "Stack" and "workspaceTemplate" in o["spec"]]
    assert shards
    for stack_object in shards:
        name = stack_object["metadata"]["name"]
        pod = stack_object["spec"]["workspaceTemplate"]["spec"]["podTemplate"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        [agent] = pod["initContainers"]
        mounts = {m["mountPath"]: volumes[m["name"]] for m in agent["volumeMounts"]}
        [config_name] = [v["configMap"]["name"] for v in mounts.values() if "configMap" in v]
        hcl = config_maps[config_name]["data"]["agent.hcl"]
        # the token the kubelet projects: the pod's account, namespace, the volume's audience
        token_dir, token_file = _hcl_value(hcl, "token_path").rsplit("/", 1)
        [source] = mounts[token_dir]["projected"]["sources"]
        jwt = a.kube.issue(stack_object["metadata"]["namespace"],
                           stack_object["spec"]["serviceAccountName"],
                           (source["serviceAccountToken"]["audience"],))
        assert source["serviceAccountToken"]["path"] == token_file
        work = tmp_path / name
        work.mkdir()
        (work / "token").write_text(jwt)
        sink = work / "vault-token"
        local = _with(_with(_with(hcl, "token_path", str(work / "token")), "path", str(sink)),
                      "address", a.server.address)
        (work / "agent.hcl").write_text(local)
        log = work / "agent.log"
        with log.open("w") as out:
            process = subprocess.Popen(dying_with_parent([str(bao_binary()), "agent",
                                                          f"-config={work}/agent.hcl"]),
                                       stdout=out, stderr=subprocess.STDOUT, env={
                                           k: v for k, v in os.environ.items()
                                           if k not in ("VAULT_ADDR", "BAO_ADDR")})
        try:
            token = _wait_for(sink, process, log)
        finally:
            process.kill()
            process.wait(timeout=10)
        assert stat.S_IMODE(sink.stat().st_mode) == 0o400  # the program's, read-only
        granted = a.server.call("GET", "auth/token/lookup-self", token=token)["data"]
        assert sorted(granted["policies"]) == sorted(
            ["default", ownership.deploy_policy_name(name)]), name
