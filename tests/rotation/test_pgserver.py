"""A killed test run leaves no PostgreSQL server behind: its server dies with it, and a server
that survives anyway (started without the parent-death signal) is reaped by the next run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from tests.ci import missing
from tests.rotation.pgserver import _runs_postgres_on, reap_orphans, server_binaries

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _binaries():
    if server_binaries() is None:
        missing("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin")


@pytest.fixture
def runs():
    """A runs directory of our own, which the server's user can traverse (tmp_path is
    root-only when the tests run as root)."""
    path = Path(tempfile.mkdtemp(prefix="configplane-pgserver-test-"))
    path.chmod(0o755)
    yield path / "runs"
    shutil.rmtree(path, ignore_errors=True)


def _killed_run(runs: Path, die_with_parent: bool) -> tuple[int, Path]:
    """A test run that starts a server under `runs` and is then killed with SIGKILL (as a timeout
    kills it: no teardown runs); the postmaster's pid and data directory."""
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from tests.rotation.pgserver import start_server
        server = start_server(Path({str(runs)!r}), die_with_parent={die_with_parent})
        print(server.process.pid, server.data, flush=True)
        time.sleep(300)
    """)
    run = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                           text=True)
    try:
        pid, data = run.stdout.readline().split()
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    assert _runs_postgres_on(int(pid), Path(data)) or not die_with_parent, "never started"
    return int(pid), Path(data)


def _gone_within(pid: int, data: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _runs_postgres_on(pid, data):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_server_dies_with_a_killed_run(runs):
    pid, data = _killed_run(runs, die_with_parent=True)
    assert _gone_within(pid, data, 15), "the server outlived the run that started it"


def test_a_surviving_server_is_reaped_at_the_next_start(runs):
    pid, data = _killed_run(runs, die_with_parent=False)
    try:
        assert _runs_postgres_on(pid, data), "the orphan should still run before the reaping"
        assert reap_orphans(runs) == [data.parent]
        assert _gone_within(pid, data, 15)
        assert not data.parent.exists()
    finally:
        if _runs_postgres_on(pid, data):
            os.kill(pid, signal.SIGKILL)


def test_a_live_runs_server_is_not_reaped(postgres_server):
    """The session's own server (its owner, this process, alive) survives a reaping."""
    assert reap_orphans(postgres_server.root.parent) == []
    assert postgres_server.can_login(postgres_server.superuser, postgres_server.superpassword)
