"""A throwaway PostgreSQL server that cannot outlive the test run that started it.

Two guards, because a run killed by a timeout runs no teardown:
- the server (the postmaster) is a direct child of the test process, started with a parent-death
  signal (Linux `PR_SET_PDEATHSIG`, through `setpriv --pdeathsig`): when the run dies, however
  it dies, the kernel sends the postmaster SIGQUIT (immediate shutdown), which stops its backends too;
- every server lives in its own directory under one per-machine directory (RUNS), with the pid
  and start time of the process that owns it; the next run reaps (stops and removes) the servers
  whose owner is gone, should one survive anyway (another platform, a server started without the
  signal).
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pg8000.native

from configplane.ops.scratch_vault import dying_with_parent

RUNS = Path(tempfile.gettempdir()) / "configplane-test-postgres"
OWNER_FILE = "owner"  # "<pid> <start time>" of the process that owns the server
_STARTUP_SECONDS = 30


def server_binaries() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb, if any."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(re.sub(r"\D", "", p.parent.parent.name) or 0))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22): with the
    pid, it names one process even after the pid is reused. None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _server_user() -> str | None:
    """initdb and postgres refuse to run as root: then run them as 'postgres' (or 'nobody')."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL")


@dataclass
class PostgresServer:
    bindir: Path
    root: Path
    superpassword: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    run_as: str | None = field(default_factory=_server_user)
    port: int = field(default_factory=_free_port)
    superuser: str = "configplane_admin"
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    settings: dict[str, str] = field(default_factory=dict)  # more `-c name=value` (ssl, ...)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def init(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.superpassword + "\n")
        pwfile.chmod(0o600)
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            for path in (self.root, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        result = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.superuser,
             f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"],
            user=self.run_as, capture_output=True, text=True, timeout=60)
        pwfile.unlink()
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}{result.stderr}")

    def add_files(self, files: Mapping[str, bytes]) -> None:
        """Files for the server in its data directory (after init), readable by it alone: a
        relative path in `settings` (ssl_cert_file, ...) is relative to that directory."""
        for name, content in files.items():
            path = self.data / name
            path.write_bytes(content)
            path.chmod(0o600)
            if self.run_as:
                entry = pwd.getpwnam(self.run_as)
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self, die_with_parent: bool = True) -> None:
        """Start the postmaster as a child of this process; return once it accepts connections.
        die_with_parent=False leaves out the parent-death signal (the reaper's test needs an
        orphan)."""
        options = ["-p", str(self.port), "-k", str(self.root), "-c", f"listen_addresses={self.host}",
                   "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
                   "-c", "log_statement=all", "-c", "log_connections=on",
                   *(arg for name, value in self.settings.items() for arg in ("-c", f"{name}={value}"))]
        with self.log.open("ab") as log:
            # the signal set after the server user's uid is taken (which would clear it)
            argv = [str(self.bindir / "postgres"), "-D", str(self.data), *options]
            self.process = subprocess.Popen(
                dying_with_parent(argv, "QUIT") if die_with_parent else argv,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, user=self.run_as)
        deadline = time.monotonic() + _STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}:\n"
                                   + self.log.read_text(errors="replace"))
            if _status(self.data) == "ready":
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"postgres did not start within {_STARTUP_SECONDS} s")

    def stop(self) -> None:
        """Fast shutdown (SIGINT): disconnect the clients, stop, wait."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def connect(self, user: str, password: str) -> pg8000.native.Connection:
        return pg8000.native.Connection(user=user, password=password, host=self.host,
                                        port=self.port, database="postgres", ssl_context=False,
                                        timeout=5)

    def can_login(self, user: str, password: str) -> bool:
        try:
            conn = self.connect(user, password)
        except pg8000.native.DatabaseError:
            return False
        conn.run("SELECT 1")
        conn.close()
        return True

    def admin(self) -> pg8000.native.Connection:
        """A superuser session that keeps its statements (and their passwords) out of the log."""
        conn = self.connect(self.superuser, self.superpassword)
        conn.run("SET log_statement = 'none'")
        return conn


def _status(data: Path) -> str | None:
    """The postmaster's status line in postmaster.pid ("starting", "ready", ...), if written."""
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    return lines[7].strip() if len(lines) > 7 else None


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def start_server(runs: Path = RUNS, die_with_parent: bool = True,
                 superpassword: str | None = None, settings: Mapping[str, str] | None = None,
                 files: Mapping[str, bytes] | None = None) -> PostgresServer:
    """Reap the servers of dead runs, then start a fresh one owned by this process, with
    `settings` (`-c name=value`) and `files` in its data directory (PostgresServer.add_files)."""
    bindir = server_binaries()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries not found under "
                                "/usr/lib/postgresql/*/bin")
    reap_orphans(runs)
    runs.mkdir(mode=0o755, parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=runs))
    (root / OWNER_FILE).write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
    server = PostgresServer(bindir, root, settings=dict(settings or {}),
                            **({"superpassword": superpassword} if superpassword else {}))
    try:
        server.init()
        server.add_files(files or {})
        server.start(die_with_parent)
    except BaseException:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server


def remove_server(server: PostgresServer) -> None:
    try:
        server.stop()
    finally:
        shutil.rmtree(server.root, ignore_errors=True)


def _owner_alive(root: Path) -> bool:
    try:
        pid, started = (root / OWNER_FILE).read_text().split()
    except (OSError, ValueError):
        return False  # no owner recorded: a half-made directory
    return _start_time(int(pid)) == started


def reap_orphans(runs: Path = RUNS) -> list[Path]:
    """Stop and remove every server under `runs` whose owning process is gone; the directories
    reaped. A postmaster is signalled only if its command line names that server's data
    directory, so a reused pid is never killed."""
    reaped = []
    for root in sorted(runs.glob("*")) if runs.is_dir() else ():
        if not root.is_dir() or _owner_alive(root):
            continue
        data = root / "data"
        pid = _postmaster_pid(data)
        if pid is not None and _runs_postgres_on(pid, data):
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown: the backends go with it
            deadline = time.monotonic() + 10
            while _runs_postgres_on(pid, data) and time.monotonic() < deadline:
                time.sleep(0.05)
        shutil.rmtree(root, ignore_errors=True)
        reaped.append(root)
    return reaped


def _runs_postgres_on(pid: int, data: Path) -> bool:
    """Is `pid` a live (not zombie) postgres serving `data`?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and str(data).encode() in cmdline
