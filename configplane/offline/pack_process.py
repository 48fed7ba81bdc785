"""The policy pack as a process, started and stopped as the Pulumi CLI does it: the pack
project file (PulumiPolicy.yaml: runtime, virtualenv), the engine host server the pack calls
back (logging, the root resource), `python -u -m pulumi.policy <engine-address> .` in the pack
directory, its output kept (the last lines explain a failure), interrupt then kill.
configplane.offline.session drives the gRPC session over it."""

from __future__ import annotations

import contextlib
import errno
import queue
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import yaml
from google.protobuf import empty_pb2
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc

from configplane.offline.results import PolicyPackError
from configplane.projectfiles import ProjectFileError, read_text

# pulumi's rpcutil raises the gRPC message limit to 400 MiB; a big stack must not trip 4 MiB.
GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 400 * 1024 * 1024),
    ("grpc.max_send_message_length", 400 * 1024 * 1024),
]
PULUMI_ENV = ("PULUMI_CONFIG", "PULUMI_PROJECT", "PULUMI_STACK", "PULUMI_DRY_RUN",
              "PULUMI_ORGANIZATION")
_TAIL_LINES = 20
_MAX_LOG_LINES = 1000


def load_pack_project(pack_dir: Path) -> dict[str, Any]:
    """PulumiPolicy.yaml's version and runtime options; only a Python pack runs offline."""
    path = pack_dir / "PulumiPolicy.yaml"
    try:  # contained in the pack's directory, its size checked before it is read
        doc = yaml.safe_load(read_text(pack_dir, path.name))
    except ProjectFileError as e:
        raise PolicyPackError(f"{path}: cannot read the policy pack project: {e.problem}") \
            from None
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyPackError(f"{path}: cannot read the policy pack project: "
                              f"{getattr(e, 'strerror', None) or type(e).__name__}") from None
    except yaml.YAMLError as e:
        raise PolicyPackError(f"{path}: not valid YAML: {e}") from None
    runtime = doc.get("runtime") if isinstance(doc, dict) else None
    name = runtime.get("name") if isinstance(runtime, dict) else runtime
    if name != "python":
        raise PolicyPackError(f"{path}: runtime must be python (got {name!r}); only Python "
                              f"policy packs can be run offline")
    options = runtime.get("options") or {} if isinstance(runtime, dict) else {}
    return {"version": str(doc.get("version") or ""), "options": options}


def venv_python(pack_dir: Path, options: Mapping[str, Any]) -> str | None:
    """The CLI's pulumi-analyzer-policy-python shim runs <virtualenv>/bin/python if set."""
    venv = options.get("virtualenv")
    candidate = (pack_dir / str(venv) / "bin" / "python") if venv else None
    return str(candidate) if candidate and candidate.is_file() else None


class _EngineServicer(engine_pb2_grpc.EngineServicer):
    """The part of the engine's host server a pack may call: logging and the root resource."""

    def __init__(self, root_urn: str, logs: list[str]) -> None:
        self._root_urn, self._logs = root_urn, logs

    def Log(self, request, context):  # noqa: N802 (gRPC method name)
        severity = engine_pb2.LogSeverity.Name(request.severity).lower()
        self._logs.append(f"{severity}: {request.message}")
        return empty_pb2.Empty()

    def GetRootResource(self, request, context):  # noqa: N802
        return engine_pb2.GetRootResourceResponse(urn=self._root_urn)

    def SetRootResource(self, request, context):  # noqa: N802
        return engine_pb2.SetRootResourceResponse()


class PackProcess:
    """One running pack and the engine server it calls. `port` holds the first line the pack
    prints (None if it printed nothing); `logs` its output and engine log calls (unredacted:
    redact before showing)."""

    def __init__(self, pack_dir: Path, root_urn: str) -> None:
        self.pack_dir, self.root_urn = pack_dir, root_urn
        self.port: queue.Queue[str | None] = queue.Queue()
        self.logs: list[str] = []
        self.engine_address = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._engine: grpc.Server | None = None
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._readers: list[threading.Thread] = []

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def exited(self) -> bool:
        return self._proc is None or self._proc.poll() is not None

    def start(self, python: str, env: Mapping[str, str]) -> None:
        """Start the engine server, then the pack; on failure both are stopped."""
        self._engine = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=GRPC_OPTIONS)
        engine_pb2_grpc.add_EngineServicer_to_server(
            _EngineServicer(self.root_urn, self.logs), self._engine)
        self.engine_address = f"127.0.0.1:{self._engine.add_insecure_port('127.0.0.1:0')}"
        self._engine.start()
        try:
            self._proc = subprocess.Popen(
                [python, "-u", "-m", "pulumi.policy", self.engine_address, "."],
                cwd=self.pack_dir, env=dict(env), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
        except OSError as e:
            self.stop()
            if e.errno == errno.E2BIG:
                size = len(env.get("PULUMI_CONFIG", "")) // 1024
                raise PolicyPackError(
                    f"the stack's configuration ({size} KiB of PULUMI_CONFIG) is too large to "
                    "hand to the policy pack: the Pulumi CLI passes it as one environment "
                    "variable and Linux caps one at 128 KiB (MAX_ARG_STRLEN; pulumi#20402), so "
                    "`pulumi preview` would fail the same way. Fix: keep the service catalog "
                    "out of Pulumi config (services/<name>/service.yaml) and shrink the stack "
                    "file's config.") from None
            raise PolicyPackError(f"policy pack {self.pack_dir}: cannot start {python}: "
                                  f"{e.strerror or e}") from None
        for target, stream in ((self._read_stdout, self._proc.stdout),
                               (self._read_stderr, self._proc.stderr)):
            t = threading.Thread(target=target, args=(stream,), daemon=True)
            t.start()
            self._readers.append(t)

    def _read_stdout(self, stream: Any) -> None:
        first = stream.readline()
        self.port.put(first.decode(errors="replace") if first else None)
        for line in stream:
            self._keep(line)

    def _read_stderr(self, stream: Any) -> None:
        for line in stream:
            self._keep(line)

    def _keep(self, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip()
        if line:
            self._tail.append(line)
            if len(self.logs) < _MAX_LOG_LINES:
                self.logs.append(line)

    def failure(self, what: str, redact: Callable[[str], str], *,
                exiting: bool = False) -> PolicyPackError:
        """The error for `what` went wrong, with the exit code and the pack's last output."""
        proc = self._proc
        if proc is not None and exiting:
            # its stdout closed: it is on its way out, wait for the exit code
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if proc is not None and proc.poll() is not None:
            for t in self._readers:  # the pack is gone: collect its last words
                t.join(timeout=1)
        code = proc.poll() if proc else None
        exited = f" (exit code {code})" if code is not None else ""
        tail = "\n".join("  " + redact(line) for line in self._tail)
        output = f"\nlast output of the pack:\n{tail}" if tail else ""
        return PolicyPackError(f"policy pack {self.pack_dir} {what}{exited}{output}")

    def stop(self) -> None:
        """Stop the pack as the CLI does: interrupt, wait up to 5 s, then kill."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for t in self._readers:
                t.join(timeout=1)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        if self._engine is not None:
            self._engine.stop(0)
            self._engine = None
