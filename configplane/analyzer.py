"""Run a CrossGuard policy pack offline, speaking the Analyzer protocol exactly as the Pulumi CLI.

The sequence mirrors `pulumi preview --policy-pack DIR --policy-pack-config FILE` (pulumi/pulumi
`sdk/go/common/resource/plugin/analyzer_plugin.go` and `plugin.go`, `pkg/engine/update.go`,
`pkg/resource/analyzer/config.go`, `pkg/resource/deploy/step_generator.go`, `pkg/engine/check.go`,
`sdk/python/dist/pulumi-analyzer-policy-python`):

1. start `python -u -m pulumi.policy <engine-address> .` in the pack directory with
   PULUMI_CONFIG / PULUMI_PROJECT / PULUMI_STACK / PULUMI_DRY_RUN / PULUMI_ORGANIZATION set,
   read the port from the first stdout line;
2. `Handshake` (UNIMPLEMENTED tolerated), `ConfigureStack`, `GetAnalyzerInfo`;
3. reconcile the policy config (schema defaults <- pack initial config <- config file, `"all"`
   sets every level), validate it against each policy's schema, `Configure`;
4. per resource: `Remediate` (only when a policy is at level remediate), then `Analyze` with
   the inputs; finally `AnalyzeStack` with every resource's outputs, parent and dependencies;
5. interrupt the process, kill it after 5 s.

Property values are given as the engine holds them: secrets as the secret signature object
(what Pulumi mocks' `MockResourceArgs.inputs` contain), unknowns as the `UNKNOWN` sentinel.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import jsonschema
import pulumi
import yaml
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc, engine_pb2, engine_pb2_grpc

from configplane.redaction import REDACTED, Redactor

SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"
RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

LEVELS = ("advisory", "mandatory", "remediate", "disabled")
_LEVEL_TO_PROTO = {
    "advisory": analyzer_pb2.ADVISORY,
    "mandatory": analyzer_pb2.MANDATORY,
    "remediate": analyzer_pb2.REMEDIATE,
    "disabled": analyzer_pb2.DISABLED,
}
_PROTO_TO_LEVEL = {v: k for k, v in _LEVEL_TO_PROTO.items()}
_SEVERITIES = {0: "", 1: "low", 2: "medium", 3: "high", 4: "critical"}
_POLICY_TYPES = {0: "unknown", 1: "resource", 2: "stack"}
# pulumi's rpcutil raises the gRPC message limit to 400 MiB; a big stack must not trip 4 MiB.
_GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 400 * 1024 * 1024),
    ("grpc.max_send_message_length", 400 * 1024 * 1024),
]
_PULUMI_ENV = ("PULUMI_CONFIG", "PULUMI_PROJECT", "PULUMI_STACK", "PULUMI_DRY_RUN",
               "PULUMI_ORGANIZATION")
_REDACTED = REDACTED
_MIN_REDACT_LEN = 4  # shorter "secrets" would blank out ordinary words in messages
_TAIL_LINES = 20


class PolicyPackError(Exception):
    """The pack could not be started or failed while analysing; the message is user-ready."""


class PolicyConfigError(PolicyPackError):
    """The policy config file (or the pack's own defaults) is invalid."""


def secret(value: Any) -> dict[str, Any]:
    """Wrap a value the way the engine marks a secret."""
    return {SIG_KEY: SECRET_SIG, "value": value}


@dataclass(frozen=True)
class ResourceOptions:
    """Resource options as the engine sends them (`AnalyzerResourceOptions`)."""

    protect: bool = False
    ignore_changes: tuple[str, ...] = ()
    delete_before_replace: bool | None = None
    additional_secret_outputs: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    custom_timeouts: tuple[float, float, float] = (0.0, 0.0, 0.0)  # create, update, delete (s)


@dataclass(frozen=True)
class AnalyzedResource:
    """One resource of the stack. `provider` is a provider reference `"<urn>::<id>"` as mocks
    give it; it is resolved against the other resources of the run (unresolved: omitted)."""

    urn: str
    type: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""  # defaults to the URN's name part
    parent: str | None = None
    dependencies: Sequence[str] = ()
    property_dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)
    provider: str = ""
    options: ResourceOptions = ResourceOptions()

    @property
    def urn_name(self) -> str:
        return self.name or self.urn.split("::", 3)[-1]


@dataclass(frozen=True)
class Violation:
    """A policy diagnostic. `message` is what the CLI prints: the policy's description, a
    newline, then the policy's own text. `level` is "advisory" or "mandatory" (a violation at
    level remediate is reported as mandatory, as the CLI does)."""

    policy: str
    urn: str
    message: str
    level: str
    description: str = ""


@dataclass(frozen=True)
class Remediation:
    """A remediation the pack applied to a resource's inputs before `Analyze` saw them."""

    policy: str
    urn: str
    description: str


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    description: str
    type: str  # "resource" | "stack" | "unknown"
    enforcement_level: str  # effective level after the policy config
    config: Mapping[str, Any]  # effective properties sent with Configure
    severity: str = ""
    display_name: str = ""


@dataclass(frozen=True)
class PolicyReport:
    pack_name: str
    pack_version: str
    policies: tuple[PolicyInfo, ...]
    violations: tuple[Violation, ...]
    remediations: tuple[Remediation, ...] = ()
    warnings: tuple[str, ...] = ()  # e.g. config keys that name no policy
    logs: tuple[str, ...] = ()  # the pack's own output and engine log calls, redacted

    @property
    def mandatory(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.level == "mandatory")

    @property
    def passed(self) -> bool:
        return not self.mandatory


# --- property marshalling ---------------------------------------------------------------


def marshal_properties(props: Mapping[str, Any], *, skip_internal_keys: bool = True
                       ) -> struct_pb2.Struct:
    """Marshal properties into a protobuf Struct as the engine does for analyzers
    (`MarshalProperties` with KeepSecrets, KeepUnknowns, SkipInternalKeys, no resource
    references, no output values)."""
    result = struct_pb2.Struct()
    result.update(_engine_map(props, skip_internal_keys, ""))
    return result


def _engine_map(props: Mapping[str, Any], skip_internal: bool, path: str) -> dict[str, Any]:
    return {
        str(k): _engine_value(v, skip_internal, f"{path}.{k}" if path else str(k))
        for k, v in props.items()
        if not (skip_internal and str(k).startswith("__"))
    }


def _engine_value(value: Any, skip_internal: bool, path: str) -> Any:
    if value is None or isinstance(value, bool | str | int | float):
        return value
    if isinstance(value, Mapping):
        sig = value.get(SIG_KEY)
        if sig is None:
            return _engine_map(value, skip_internal, path)
        if sig == SECRET_SIG:
            return {SIG_KEY: SECRET_SIG, "value": _engine_value(value.get("value"),
                                                                 skip_internal, path)}
        if sig in (ASSET_SIG, ARCHIVE_SIG):
            return _engine_map(value, False, path)
        if sig == RESOURCE_SIG:  # the engine sends a reference as its ID, else its URN
            if "id" in value:
                return UNKNOWN if value["id"] == "" else value["id"]
            return value.get("urn", "")
        if sig == OUTPUT_SIG:
            inner = _engine_value(value["value"], skip_internal, path) \
                if "value" in value else UNKNOWN
            return secret(inner) if value.get("secret") else inner
        raise PolicyPackError(f"property {path}: unrecognised signature {sig!r}")
    if isinstance(value, list | tuple):
        return [_engine_value(v, skip_internal, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, pulumi.output.Unknown):
        return UNKNOWN
    if isinstance(value, pulumi.Asset | pulumi.Archive):
        return _asset(value, path)
    if isinstance(value, pulumi.Resource):
        return _resource_reference(value)
    raise PolicyPackError(
        f"property {path}: cannot marshal a value of type {type(value).__name__}")


def _asset(value: Any, path: str) -> dict[str, Any]:
    sig = ASSET_SIG if isinstance(value, pulumi.Asset) else ARCHIVE_SIG
    if isinstance(value, pulumi.AssetArchive):
        return {SIG_KEY: sig, "assets": {k: _asset(v, f"{path}.{k}")
                                         for k, v in value.assets.items()}}
    for attr in ("path", "text", "uri"):
        if hasattr(value, attr):
            return {SIG_KEY: sig, attr: getattr(value, attr)}
    raise PolicyPackError(f"property {path}: unsupported asset {type(value).__name__}")


def _resource_reference(res: Any) -> Any:
    """A resource object in mock inputs: its ID if custom and known, else its URN, else
    unknown, matching the engine's marshalling without resource references."""
    for out in ((res.id,) if isinstance(res, pulumi.CustomResource) else ()) + (res.urn,):
        fut = getattr(out, "_future", None)
        if fut is not None and fut.done() and not fut.cancelled() and fut.exception() is None:
            resolved = fut.result()
            if resolved not in (None, ""):
                return resolved
    return UNKNOWN


def _secret_strings(values: Iterable[Any]) -> set[str]:
    """Every string inside a secret-marked value, for redaction."""
    found: set[str] = set()

    def walk(v: Any, inside: bool) -> None:
        if isinstance(v, Mapping):
            is_secret = v.get(SIG_KEY) == SECRET_SIG
            for item in v.values():
                walk(item, inside or is_secret)
        elif isinstance(v, list | tuple):
            for item in v:
                walk(item, inside)
        elif inside and isinstance(v, str) and len(v) >= _MIN_REDACT_LEN and v != SECRET_SIG:
            found.add(v)

    for value in values:
        walk(value, False)
    return found


class _Redactor:
    """The pack's messages and logs through the one redaction boundary (configplane.redaction)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._redactor = Redactor(s for s in secrets if len(s) >= _MIN_REDACT_LEN)

    def __call__(self, text: str) -> str:
        return self._redactor.text(text)


# --- policy config (pkg/resource/analyzer/config.go) ------------------------------------


@dataclass(frozen=True)
class PolicyConfig:
    level: str | None  # None: keep the level from an earlier layer
    properties: Mapping[str, Any] | None


def load_policy_config_file(path: Path) -> dict[str, PolicyConfig]:
    """Parse a `--policy-pack-config` JSON file as the CLI does: each key is a policy name or
    `"all"`; each value an enforcement level or an object with `enforcementLevel` and the
    policy's properties."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyConfigError(f"{path}: cannot read the policy config file: "
                                f"{e.strerror or e}") from None
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise PolicyConfigError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: "
                                f"{e.msg}); fix the syntax") from None
    if not isinstance(raw, dict):
        raise PolicyConfigError(f"{path}: the top level must be an object mapping policy names "
                                f"(or \"all\") to a level or an object")
    fix = f"use one of {', '.join(LEVELS)}"
    result: dict[str, PolicyConfig] = {}
    for name, value in raw.items():
        if isinstance(value, str):
            if value not in LEVELS:
                raise PolicyConfigError(f"{path}: {name}: {value!r} is not a valid enforcement "
                                        f"level; {fix}")
            result[name] = PolicyConfig(value, None)
        elif isinstance(value, dict):
            props = dict(value)
            level = props.pop("enforcementLevel", None)
            if level is not None and level not in LEVELS:
                raise PolicyConfigError(f"{path}: {name}.enforcementLevel: {level!r} is not a "
                                        f"valid enforcement level; {fix}")
            if level is not None or props:  # the CLI drops empty entries
                result[name] = PolicyConfig(level, props or None)
        else:
            raise PolicyConfigError(
                f"{path}: {name}: must be an enforcement level string or an object with "
                f"\"enforcementLevel\" and the policy's properties")
    return result


def _apply_config(result: dict[str, PolicyConfig], given: Mapping[str, PolicyConfig]) -> None:
    everything = given.get("all")
    if everything is not None and everything.level is not None:
        for name, cfg in result.items():
            result[name] = PolicyConfig(everything.level, cfg.properties)
    for name, cfg in given.items():  # "all" itself and unknown names are kept, as the CLI does
        prior = result.get(name, PolicyConfig(None, None))
        props = dict(prior.properties or {})
        props.update(cfg.properties or {})
        result[name] = PolicyConfig(cfg.level or prior.level,
                                    props if (prior.properties or cfg.properties) else None)


def reconcile_policy_config(
    policies: Sequence[_RawPolicy], initial: Mapping[str, PolicyConfig],
    given: Mapping[str, PolicyConfig], source: str,
) -> dict[str, PolicyConfig]:
    """Defaults from the schemas <- the pack's initial config <- the file; then validate every
    policy's properties against its schema (ReconcilePolicyPackConfig)."""
    result: dict[str, PolicyConfig] = {}
    for p in policies:
        defaults = {k: s["default"] for k, s in p.schema_properties.items()
                    if isinstance(s, dict) and "default" in s}
        result[p.name] = PolicyConfig(p.level, defaults or None)
    _apply_config(result, initial)
    _apply_config(result, given)
    for name, cfg in result.items():
        if cfg.level is None:  # the CLI's Configure rejects the empty level
            raise PolicyConfigError(
                f"{source}: {name}: names no policy of this pack and sets no enforcementLevel; "
                f"fix the policy name or remove the entry")
    errors = []
    for p in policies:
        if p.schema_properties is None:
            continue
        schema: dict[str, Any] = {"type": "object"}
        if p.schema_properties:
            schema["properties"] = p.schema_properties
        if p.schema_required:
            schema["required"] = list(p.schema_required)
        cfg = result.get(p.name)
        instance = dict(cfg.properties or {}) if cfg else {}
        for err in sorted(jsonschema.Draft7Validator(schema).iter_errors(instance), key=str):
            where = ".".join(str(x) for x in err.absolute_path)
            errors.append(f"{p.name}: {where + ': ' if where else ''}{err.message}")
    if errors:
        raise PolicyConfigError(f"invalid policy config ({source}):\n  " + "\n  ".join(errors))
    return result


# --- the pack process ---------------------------------------------------------------------


@dataclass(frozen=True)
class _RawPolicy:
    name: str
    description: str
    level: str
    type: str
    severity: str
    display_name: str
    schema_properties: dict[str, Any] | None  # None: the pack does not support config
    schema_required: tuple[str, ...]


def _load_pack_project(pack_dir: Path) -> dict[str, Any]:
    path = pack_dir / "PulumiPolicy.yaml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise PolicyPackError(f"{path}: cannot read the policy pack project: "
                              f"{e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise PolicyPackError(f"{path}: not valid YAML: {e}") from None
    runtime = doc.get("runtime") if isinstance(doc, dict) else None
    name = runtime.get("name") if isinstance(runtime, dict) else runtime
    if name != "python":
        raise PolicyPackError(f"{path}: runtime must be python (got {name!r}); only Python "
                              f"policy packs can be run offline")
    options = runtime.get("options") or {} if isinstance(runtime, dict) else {}
    return {"version": str(doc.get("version") or ""), "options": options}


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


class PolicyPackSession:
    """One policy pack process for one stack. `start()` does not wait for the pack, so callers
    can evaluate their program while Python imports the pack; `run()` waits, configures the pack
    once, and analyses; `close()` (or the context manager) always stops the process."""

    def __init__(
        self, pack_dir: Path, *, project: str, stack: str, organization: str = "organization",
        config: Mapping[str, str] | None = None, config_secret_keys: Sequence[str] = (),
        tags: Mapping[str, str] | None = None, policy_config_file: Path | None = None,
        dry_run: bool = True, python: str | None = None,
        startup_timeout: float = 60.0, rpc_timeout: float = 300.0,
    ) -> None:
        self.pack_dir = Path(pack_dir).resolve()
        self.project, self.stack, self.organization = project, stack, organization
        self.config = dict(config) if config is not None else None
        self.config_secret_keys = tuple(config_secret_keys)
        self.tags = dict(tags or {})
        self.policy_config_file = policy_config_file
        self.dry_run = dry_run
        self.startup_timeout, self.rpc_timeout = startup_timeout, rpc_timeout
        self.root_urn = f"urn:pulumi:{stack}::{project}::pulumi:pulumi:Stack::{project}-{stack}"
        self._python = python
        self._proc: subprocess.Popen[bytes] | None = None
        self._engine: grpc.Server | None = None
        self._channel: grpc.Channel | None = None
        self._stub: analyzer_pb2_grpc.AnalyzerStub | None = None
        self._port_q: queue.Queue[str | None] = queue.Queue()
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._logs: list[str] = []
        self._readers: list[threading.Thread] = []
        self._info: tuple[str, str, list[_RawPolicy], dict[str, PolicyConfig]] | None = None
        self._redact = _Redactor(self._config_secrets())

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def __enter__(self) -> PolicyPackSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _config_secrets(self) -> set[str]:
        return {v for k, v in (self.config or {}).items() if k in self.config_secret_keys}

    def start(self) -> None:
        if self._proc is not None:
            return
        project = _load_pack_project(self.pack_dir)
        self._given = (load_policy_config_file(self.policy_config_file)
                       if self.policy_config_file else {})
        self._version = project["version"]
        python = self._python or self._venv_python(project["options"]) or sys.executable

        self._engine = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                                   options=_GRPC_OPTIONS)
        engine_pb2_grpc.add_EngineServicer_to_server(
            _EngineServicer(self.root_urn, self._logs), self._engine)
        self.engine_address = f"127.0.0.1:{self._engine.add_insecure_port('127.0.0.1:0')}"
        self._engine.start()

        env = {k: v for k, v in os.environ.items() if k not in _PULUMI_ENV}
        if self.config is not None:
            env["PULUMI_CONFIG"] = json.dumps(self.config, sort_keys=True)
        for key, value in (("PULUMI_ORGANIZATION", self.organization),
                           ("PULUMI_PROJECT", self.project), ("PULUMI_STACK", self.stack)):
            if value:
                env[key] = value
        env["PULUMI_DRY_RUN"] = "true" if self.dry_run else "false"
        try:
            self._proc = subprocess.Popen(
                [python, "-u", "-m", "pulumi.policy", self.engine_address, "."],
                cwd=self.pack_dir, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
        except OSError as e:
            self.close()
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

    def _venv_python(self, options: Mapping[str, Any]) -> str | None:
        # The CLI's pulumi-analyzer-policy-python shim runs <virtualenv>/bin/python if set.
        venv = options.get("virtualenv")
        candidate = (self.pack_dir / str(venv) / "bin" / "python") if venv else None
        return str(candidate) if candidate and candidate.is_file() else None

    def _read_stdout(self, stream: Any) -> None:
        first = stream.readline()
        self._port_q.put(first.decode(errors="replace") if first else None)
        for line in stream:
            self._keep(line)

    def _read_stderr(self, stream: Any) -> None:
        for line in stream:
            self._keep(line)

    def _keep(self, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip()
        if line:
            self._tail.append(line)
            if len(self._logs) < 1000:
                self._logs.append(line)

    def _fail(self, what: str, *, exiting: bool = False) -> PolicyPackError:
        proc = self._proc
        if proc is not None and exiting:
            try:  # its stdout closed: it is on its way out, wait for the exit code
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if proc is not None and proc.poll() is not None:
            for t in self._readers:  # the pack is gone: collect its last words
                t.join(timeout=1)
        code = proc.poll() if proc else None
        exited = f" (exit code {code})" if code is not None else ""
        tail = "\n".join("  " + self._redact(line) for line in self._tail)
        output = f"\nlast output of the pack:\n{tail}" if tail else ""
        return PolicyPackError(f"policy pack {self.pack_dir} {what}{exited}{output}")

    def _connect(self) -> analyzer_pb2_grpc.AnalyzerStub:
        if self._stub is not None:
            return self._stub
        self.start()
        try:
            first = self._port_q.get(timeout=self.startup_timeout)
        except queue.Empty:
            raise self._fail(f"did not print its port within {self.startup_timeout:g}s") from None
        if first is None:
            raise self._fail("failed to start", exiting=True)
        try:
            port = int(first.strip())
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            raise self._fail(f"wrote an invalid port to stdout: {first.strip()[:80]!r}") from None
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=_GRPC_OPTIONS)
        stub = analyzer_pb2_grpc.AnalyzerStub(self._channel)
        request = analyzer_pb2.AnalyzerHandshakeRequest(
            engine_address=self.engine_address, root_directory=str(self.pack_dir),
            program_directory=str(self.pack_dir))
        deadline = time.monotonic() + self.startup_timeout
        while True:  # the CLI retries UNAVAILABLE until the server answers
            try:
                stub.Handshake(request, timeout=max(deadline - time.monotonic(), 0.1))
                break
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                    break
                if (e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline
                        or self._proc is None or self._proc.poll() is not None):
                    raise self._rpc_failure(e, "Handshake") from None
                time.sleep(0.01)
        self._stub = stub
        return stub

    def _rpc_failure(self, e: grpc.RpcError, call: str) -> PolicyPackError:
        if self._proc is not None and self._proc.poll() is not None:
            return self._fail(f"exited during {call}")
        details = self._redact(e.details() or "")
        return self._fail(f"failed during {call}: {e.code().name}: {details}")

    def _call(self, method: str, request: Any, what: str = "") -> Any:
        stub = self._connect()
        try:
            return getattr(stub, method)(request, timeout=self.rpc_timeout)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED and method in (
                    "ConfigureStack", "AnalyzeStack", "Remediate"):
                return None  # the CLI skips these when a pack does not implement them
            raise self._rpc_failure(e, f"{method}{what}") from None

    def _configure(self) -> tuple[str, str, list[_RawPolicy], dict[str, PolicyConfig]]:
        if self._info is not None:
            return self._info
        self._call("ConfigureStack", analyzer_pb2.AnalyzerStackConfigureRequest(
            stack=self.stack, project=self.project, organization=self.organization,
            dry_run=self.dry_run, config=self.config or {},
            config_secret_keys=list(self.config_secret_keys), tags=self.tags))
        info = self._call("GetAnalyzerInfo", empty_pb2.Empty())
        policies = sorted((_raw_policy(p, info.supportsConfig) for p in info.policies),
                          key=lambda p: p.name)
        version = self._version or info.version  # PulumiPolicy.yaml's version wins
        if not info.supportsConfig:
            if self.policy_config_file:
                raise PolicyConfigError(f"policy pack {info.name} at {self.pack_dir} does not "
                                        f"support config; drop {self.policy_config_file}")
            effective = {p.name: PolicyConfig(p.level, None) for p in policies}
        else:
            initial = {k: PolicyConfig(_PROTO_TO_LEVEL[v.enforcementLevel],
                                       json_format.MessageToDict(v.properties) or None)
                       for k, v in info.initialConfig.items()}
            source = str(self.policy_config_file or "pack defaults")
            effective = reconcile_policy_config(policies, initial, self._given, source)
            if effective:
                self._call("Configure", analyzer_pb2.ConfigureAnalyzerRequest(policyConfig={
                    name: analyzer_pb2.PolicyConfig(
                        enforcementLevel=_LEVEL_TO_PROTO[cfg.level or "advisory"],
                        properties=_struct(cfg.properties or {}))
                    for name, cfg in effective.items()}))
        self._info = (info.name, version, policies, effective)
        return self._info

    def run(self, resources: Sequence[AnalyzedResource],
            progress: Callable[[AnalyzedResource], None] | None = None) -> PolicyReport:
        """Analyse every resource, then the stack, as a preview with the pack does;
        `progress` is called with each resource once the pack has analysed it."""
        name, version, policies, effective = self._configure()
        redact = _Redactor(self._config_secrets() | _secret_strings(
            v for r in resources for v in (r.inputs, r.outputs)))
        self._redact = redact
        by_urn = {r.urn: r for r in resources}
        remediate = any(c.level == "remediate" for c in effective.values())
        violations: list[Violation] = []
        remediations: list[Remediation] = []
        stack_resources = []
        for r in resources:
            inputs = r.inputs
            if remediate:
                inputs = self._remediate(r, inputs, by_urn, violations, remediations)
            request = analyzer_pb2.AnalyzeRequest(
                urn=r.urn, type=r.type, name=r.urn_name, properties=marshal_properties(inputs),
                options=_options(r), provider=_provider(r, by_urn))
            response = self._call("Analyze", request, f" of {r.urn}")
            # The CLI attributes per-resource diagnostics to the analysed resource.
            violations.extend(_violation(d, r.urn, redact) for d in response.diagnostics)
            if progress is not None:
                progress(r)
            stack_resources.append(analyzer_pb2.AnalyzerResource(
                urn=r.urn, type=r.type, name=r.urn_name, properties=marshal_properties(r.outputs),
                options=_options(r), provider=_provider(r, by_urn), parent=r.parent or "",
                dependencies=list(r.dependencies),
                propertyDependencies={
                    k: analyzer_pb2.AnalyzerPropertyDependencies(urns=list(v))
                    for k, v in r.property_dependencies.items() if v}))
        response = self._call("AnalyzeStack",
                              analyzer_pb2.AnalyzeStackRequest(resources=stack_resources))
        for d in response.diagnostics if response is not None else ():
            # Stack diagnostics keep their URN if it names a resource, else the root stack's.
            violations.append(_violation(d, d.urn if d.urn in by_urn else self.root_urn, redact))
        known = {p.name for p in policies} | {"all"}
        warnings = tuple(f"{self.policy_config_file}: {k!r} names no policy of pack {name}"
                         for k in self._given if k not in known)
        return PolicyReport(
            pack_name=name, pack_version=version,
            policies=tuple(PolicyInfo(
                name=p.name, description=p.description, type=p.type,
                enforcement_level=effective[p.name].level or p.level,
                config=dict(effective[p.name].properties or {}), severity=p.severity,
                display_name=p.display_name) for p in policies),
            violations=tuple(violations), remediations=tuple(remediations), warnings=warnings,
            logs=tuple(redact(line) for line in list(self._logs)))

    def _remediate(self, r: AnalyzedResource, inputs: Mapping[str, Any],
                   by_urn: Mapping[str, AnalyzedResource], violations: list[Violation],
                   remediations: list[Remediation]) -> Mapping[str, Any]:
        request = analyzer_pb2.AnalyzeRequest(
            urn=r.urn, type=r.type, name=r.urn_name,
            properties=marshal_properties(inputs, skip_internal_keys=False),
            options=_options(r), provider=_provider(r, by_urn))
        response = self._call("Remediate", request, f" of {r.urn}")
        for rem in response.remediations if response is not None else ():
            if rem.diagnostic:  # a remediation that could not run is shown as advisory
                violations.append(Violation(rem.policyName, r.urn, self._redact(rem.diagnostic),
                                            "advisory", rem.description))
            elif rem.HasField("properties"):
                inputs = json_format.MessageToDict(rem.properties)
                remediations.append(Remediation(rem.policyName, r.urn, rem.description))
        return inputs

    def close(self) -> None:
        """Stop the pack as the CLI does: interrupt, wait up to 5 s, then kill."""
        if self._channel is not None:
            self._channel.close()
        self._channel, self._stub, self._info = None, None, None
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


def run_policy_pack(
    pack_dir: Path, *, project: str, stack: str, organization: str = "organization",
    config: Mapping[str, str] | None = None, config_secret_keys: Sequence[str] = (),
    tags: Mapping[str, str] | None = None, policy_config_file: Path | None = None,
    resources: Sequence[AnalyzedResource], dry_run: bool = True, python: str | None = None,
) -> PolicyReport:
    """Start the pack, analyse `resources` (inputs per resource, then outputs for the stack),
    stop the pack. Raises PolicyPackError / PolicyConfigError with user-ready messages."""
    with PolicyPackSession(
        pack_dir, project=project, stack=stack, organization=organization, config=config,
        config_secret_keys=config_secret_keys, tags=tags,
        policy_config_file=policy_config_file, dry_run=dry_run, python=python,
    ) as session:
        return session.run(resources)


# --- protocol helpers ------------------------------------------------------------------


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(dict(values))
    return s


def _raw_policy(p: Any, supports_config: bool) -> _RawPolicy:
    props: dict[str, Any] | None = None
    if supports_config:  # the CLI injects enforcementLevel into every schema
        props = json_format.MessageToDict(p.configSchema.properties)
        props["enforcementLevel"] = {"type": "string", "enum": list(LEVELS)}
    return _RawPolicy(
        name=p.name, description=p.description, level=_PROTO_TO_LEVEL[p.enforcementLevel],
        type=_POLICY_TYPES.get(p.policy_type, "unknown"),
        severity=_SEVERITIES.get(p.severity, ""), display_name=p.displayName,
        schema_properties=props, schema_required=tuple(p.configSchema.required))


def _violation(d: Any, urn: str, redact: _Redactor) -> Violation:
    level = _PROTO_TO_LEVEL[d.enforcementLevel]
    if level == "remediate":  # the CLI reports a violation left after remediation as mandatory
        level = "mandatory"
    return Violation(d.policyName, urn, redact(d.message), level, d.description)


def _options(r: AnalyzedResource) -> analyzer_pb2.AnalyzerResourceOptions:
    o = r.options
    create, update, delete = o.custom_timeouts
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=o.protect, ignoreChanges=list(o.ignore_changes),
        deleteBeforeReplace=bool(o.delete_before_replace),
        deleteBeforeReplaceDefined=o.delete_before_replace is not None,
        additionalSecretOutputs=list(o.additional_secret_outputs), aliases=list(o.aliases),
        customTimeouts=analyzer_pb2.AnalyzerResourceOptions.CustomTimeouts(
            create=create, update=update, delete=delete),
        parent=r.parent or "")


def _provider(r: AnalyzedResource, by_urn: Mapping[str, AnalyzedResource]
              ) -> analyzer_pb2.AnalyzerProviderResource | None:
    # A provider reference is "<provider urn>::<provider id>"; URNs themselves contain "::".
    prov = by_urn.get(r.provider.rsplit("::", 1)[0]) if r.provider else None
    if prov is None:
        return None
    return analyzer_pb2.AnalyzerProviderResource(
        urn=prov.urn, type=prov.type, name=prov.urn_name,
        properties=marshal_properties(prov.inputs))
