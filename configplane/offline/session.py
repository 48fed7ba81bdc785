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
The process is `pack_process`; the protocol's values are in `marshal`, the policy config in
`policyconfig`, what a run is given and reports in `results` (all in configplane.offline).
"""

from __future__ import annotations

import json
import os
import queue
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from configplane.offline.marshal import (
    marshal_properties,
    provider_resource,
    resource_options,
    secret_strings,
    struct,
)
from configplane.offline.pack_process import (
    GRPC_OPTIONS,
    PULUMI_ENV,
    PackProcess,
    load_pack_project,
    venv_python,
)
from configplane.offline.policyconfig import (
    LEVELS,
    PolicyConfig,
    RawPolicy,
    load_policy_config_file,
    reconcile_policy_config,
)
from configplane.offline.results import (
    AnalyzedResource,
    PolicyConfigError,
    PolicyInfo,
    PolicyPackError,
    PolicyReport,
    Remediation,
    Violation,
    root_urn,
)
from configplane.redaction import MIN_SECRET_LEN, Redactor

_LEVEL_TO_PROTO = {
    "advisory": analyzer_pb2.ADVISORY,
    "mandatory": analyzer_pb2.MANDATORY,
    "remediate": analyzer_pb2.REMEDIATE,
    "disabled": analyzer_pb2.DISABLED,
}
_PROTO_TO_LEVEL = {v: k for k, v in _LEVEL_TO_PROTO.items()}
_SEVERITIES = {0: "", 1: "low", 2: "medium", 3: "high", 4: "critical"}
_POLICY_TYPES = {0: "unknown", 1: "resource", 2: "stack"}


class _Redactor:
    """The pack's messages and logs through the one redaction boundary (configplane.redaction.redactor)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._redactor = Redactor(s for s in secrets if len(s) >= MIN_SECRET_LEN)

    def __call__(self, text: str) -> str:
        return self._redactor.text(text)


class PolicyPackSession:
    """One policy pack process for one stack. `start()` does not wait for the pack, so callers
    can evaluate their program while Python imports the pack; `run()` waits, configures the pack
    once, and analyses; `close()` (or the context manager) always stops the process."""

    def __init__(
        self, pack_dir: Path, *, project: str, stack: str, organization: str = "organization",
        config: Mapping[str, str] | None = None, config_secret_keys: Sequence[str] = (),
        tags: Mapping[str, str] | None = None, policy_config_file: Path | None = None,
        dry_run: bool = True, python: str | None = None,
        startup_timeout: float = 60.0, rpc_timeout: float = 300.0, analyzer: Any = None,
    ) -> None:
        """`analyzer`: an object with the Analyzer service's methods (as the gRPC stub has them)
        and the pack's `logs`, to call instead of starting the pack's process; the tests pass
        the pack's policies
        behind pulumi_policy's own servicer, in their process. Requests and answers are the
        same; only the process and the transport are left out."""
        self.pack_dir = Path(pack_dir).resolve()
        self.project, self.stack, self.organization = project, stack, organization
        self.config = dict(config) if config is not None else None
        self.config_secret_keys = tuple(config_secret_keys)
        self.tags = dict(tags or {})
        self.policy_config_file = policy_config_file
        self.dry_run = dry_run
        self.startup_timeout, self.rpc_timeout = startup_timeout, rpc_timeout
        self.root_urn = root_urn(project, stack)
        self._python = python
        self._process: PackProcess | None = None
        self._channel: grpc.Channel | None = None
        self._stub: analyzer_pb2_grpc.AnalyzerStub | None = None
        self._analyzer = analyzer
        self._info: tuple[str, str, list[RawPolicy], dict[str, PolicyConfig]] | None = None
        self._redact = _Redactor(self._config_secrets())

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def __enter__(self) -> PolicyPackSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _config_secrets(self) -> set[str]:
        return {v for k, v in (self.config or {}).items() if k in self.config_secret_keys}

    def start(self) -> None:
        if self._process is not None:
            return
        project = load_pack_project(self.pack_dir)
        self._given = (load_policy_config_file(self.policy_config_file)
                       if self.policy_config_file else {})
        self._version = project["version"]
        if self._analyzer is not None:
            self._stub = self._analyzer
            return
        python = (self._python or venv_python(self.pack_dir, project["options"])
                  or sys.executable)
        env = {k: v for k, v in os.environ.items() if k not in PULUMI_ENV}
        if self.config is not None:
            env["PULUMI_CONFIG"] = json.dumps(self.config, sort_keys=True)
        for key, value in (("PULUMI_ORGANIZATION", self.organization),
                           ("PULUMI_PROJECT", self.project), ("PULUMI_STACK", self.stack)):
            if value:
                env[key] = value
        env["PULUMI_DRY_RUN"] = "true" if self.dry_run else "false"
        process = PackProcess(self.pack_dir, self.root_urn)
        process.start(python, env)  # stops what it started if it raises
        self._process = process

    def _fail(self, what: str, *, exiting: bool = False) -> PolicyPackError:
        assert self._process is not None
        return self._process.failure(what, self._redact, exiting=exiting)

    def _connect(self) -> analyzer_pb2_grpc.AnalyzerStub:
        if self._stub is not None:
            return self._stub
        self.start()
        assert self._process is not None
        try:
            first = self._process.port.get(timeout=self.startup_timeout)
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
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=GRPC_OPTIONS)
        stub = analyzer_pb2_grpc.AnalyzerStub(self._channel)
        request = analyzer_pb2.AnalyzerHandshakeRequest(
            engine_address=self._process.engine_address, root_directory=str(self.pack_dir),
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
                        or self._process.exited):
                    raise self._rpc_failure(e, "Handshake") from None
                time.sleep(0.01)
        self._stub = stub
        return stub

    def _rpc_failure(self, e: grpc.RpcError, call: str) -> PolicyPackError:
        if self._process is not None and self._process.exited:
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

    def _configure(self) -> tuple[str, str, list[RawPolicy], dict[str, PolicyConfig]]:
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
                        properties=struct(cfg.properties or {}))
                    for name, cfg in effective.items()}))
        self._info = (info.name, version, policies, effective)
        return self._info

    def run(self, resources: Sequence[AnalyzedResource],
            progress: Callable[[AnalyzedResource], None] | None = None) -> PolicyReport:
        """Analyse every resource, then the stack, as a preview with the pack does;
        `progress` is called with each resource once the pack has analysed it."""
        name, version, policies, effective = self._configure()
        redact = _Redactor(self._config_secrets() | secret_strings(
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
                options=resource_options(r), provider=provider_resource(r, by_urn))
            response = self._call("Analyze", request, f" of {r.urn}")
            # The CLI attributes per-resource diagnostics to the analysed resource.
            violations.extend(_violation(d, r.urn, redact) for d in response.diagnostics)
            if progress is not None:
                progress(r)
            stack_resources.append(analyzer_pb2.AnalyzerResource(
                urn=r.urn, type=r.type, name=r.urn_name, properties=marshal_properties(r.outputs),
                options=resource_options(r), provider=provider_resource(r, by_urn), parent=r.parent or "",
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
            logs=tuple(redact(line) for line in list(self._logs())))

    def _remediate(self, r: AnalyzedResource, inputs: Mapping[str, Any],
                   by_urn: Mapping[str, AnalyzedResource], violations: list[Violation],
                   remediations: list[Remediation]) -> Mapping[str, Any]:
        request = analyzer_pb2.AnalyzeRequest(
            urn=r.urn, type=r.type, name=r.urn_name,
            properties=marshal_properties(inputs, skip_internal_keys=False),
            options=resource_options(r), provider=provider_resource(r, by_urn))
        response = self._call("Remediate", request, f" of {r.urn}")
        for rem in response.remediations if response is not None else ():
            if rem.diagnostic:  # a remediation that could not run is shown as advisory
                violations.append(Violation(rem.policyName, r.urn, self._redact(rem.diagnostic),
                                            "advisory", rem.description))
            elif rem.HasField("properties"):
                inputs = json_format.MessageToDict(rem.properties)
                remediations.append(Remediation(rem.policyName, r.urn, rem.description))
        return inputs

    def _logs(self) -> list[str]:
        """What the pack printed and logged: its process's, or the in-process analyzer's."""
        if self._process is not None:
            return self._process.logs
        return list(self._analyzer.logs) if self._analyzer is not None else []

    def close(self) -> None:
        """Close the channel and stop the pack (configplane.offline.pack_process: interrupt, then kill)."""
        if self._channel is not None:
            self._channel.close()
        self._channel, self._stub, self._info = None, None, None
        process, self._process = self._process, None
        if process is not None:
            process.stop()


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


def _raw_policy(p: Any, supports_config: bool) -> RawPolicy:
    props: dict[str, Any] | None = None
    if supports_config:  # the CLI injects enforcementLevel into every schema
        props = json_format.MessageToDict(p.configSchema.properties)
        props["enforcementLevel"] = {"type": "string", "enum": list(LEVELS)}
    return RawPolicy(
        name=p.name, description=p.description, level=_PROTO_TO_LEVEL[p.enforcementLevel],
        type=_POLICY_TYPES.get(p.policy_type, "unknown"),
        severity=_SEVERITIES.get(p.severity, ""), display_name=p.displayName,
        schema_properties=props, schema_required=tuple(p.configSchema.required))


def _violation(d: Any, urn: str, redact: _Redactor) -> Violation:
    level = _PROTO_TO_LEVEL[d.enforcementLevel]
    if level == "remediate":  # the CLI reports a violation left after remediation as mandatory
        level = "mandatory"
    return Violation(d.policyName, urn, redact(d.message), level, d.description)
