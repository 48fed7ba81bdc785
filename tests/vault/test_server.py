"""The harness itself: a server is stopped by its PID, and one whose test run is killed dies
with it and leaves nothing that the next run does not clean up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO
from tests.vault import server as bao
from tests.vault.conftest import new_server


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def wait_gone(pid: int, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_stop_ends_the_process_by_pid_and_removes_its_directory():
    server = new_server()
    assert alive(server.pid) and server.root.is_dir()
    assert server.request("GET", "sys/health").json()["sealed"] is False
    server.stop()
    assert wait_gone(server.pid) and not server.root.exists()


def test_a_killed_test_run_takes_its_server_with_it(tmp_path):
    script = ("import time\nfrom tests.vault import server\ns = server.start()\n"
              "print(s.pid, s.root, flush=True)\ntime.sleep(120)\n")
    run = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                           text=True)
    try:
        pid, root = run.stdout.readline().split()
        pid, root = int(pid), Path(root)
        assert alive(pid)
        run.send_signal(signal.SIGKILL)  # the test run dies without cleaning up
        run.wait(timeout=15)
        assert wait_gone(pid), "the server outlived its test run"
        assert root.is_dir()  # left behind ...
        bao.reap_stale()
        assert not root.exists()  # ... until the next run starts a server
    finally:
        if run.poll() is None:
            run.kill()
