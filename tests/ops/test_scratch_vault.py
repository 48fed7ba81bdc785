"""The scratch server's process dies with the process that started it (configplane.ops.scratch_vault)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from configplane.ops.scratch_vault import dying_with_parent

STARTER = """
import subprocess, sys
from configplane.ops.scratch_vault import dying_with_parent
child = subprocess.Popen(dying_with_parent([sys.executable, "-c", "import time; time.sleep(120)"]),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(child.pid, flush=True)
__import__("time").sleep(0.5)  # the child has exec-ed by then
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_the_child_is_killed_when_its_starter_dies():
    """Without a Python `preexec_fn` (fork hooks of gRPC and others ran in the child there):
    the starter exits without stopping its child, and the kernel kills the child."""
    assert dying_with_parent(["x"])[-1] == "x"
    started = subprocess.run([sys.executable, "-c", STARTER], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
