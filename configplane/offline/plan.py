"""The offline plan: run the project's real `__main__.py` under the Pulumi SDK's mocks.

No cloud, no Pulumi CLI, no passphrase: `secure` config values are replaced by placeholders
that stay marked secret. Every resource `pulumi up` would register is recorded with its inputs
as the engine would hold them (secrets as the secret signature object). The plan's own
checks are in configplane.offline.plan_checks, the pack run in configplane.offline.session. (A little over
400 lines: the mocks, the recording monitor and the run share the Plan types and stay together.)
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import functools
import gc
import hashlib
import json
import runpy
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as _sdk_resource
from pulumi.runtime import rpc, settings
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.settings import get_project, get_stack
from pulumi.runtime.stack import Stack, wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from configplane.forking import refuse_forks
from configplane.inputs import Selection, StackInputs, collector_paused, read_inputs
from configplane.model import (
    StackModel,
    declared_services,
    narrowed,
    shard_stack_files,
    stack_role,
    topology_of,
)
from configplane.offline.plan_checks import duplicate_urn_violations, unmarked_secret_violations
from configplane.offline.policyconfig import default_policy_config
from configplane.offline.results import (
    STACK_TYPE,
    AnalyzedResource,
    PlannedResource,
    PolicyPackError,
    ResourceOptions,
    root_urn,
)
from configplane.offline.session import PolicyPackSession
from configplane.redaction import REDACTED, SECRET_SIG_KEY, SECRET_SIG_VALUE, Redactor, is_secret_wrapper
from configplane.validation import load_stack

UNKNOWN_DISPLAY = "(known after apply)"
REFERENCE_TYPE = "pulumi:pulumi:StackReference"
MOCK_ORGANIZATION = "organization"  # the org of a stack reference in a plan (a DIY backend's)


class PlanReferenceError(Exception):
    """A shard planned without its platform stack's outputs."""


def plain(value: Any) -> Any:
    """Outputs as another stack reads them: secret wrappers dropped (a reference sees values)."""
    if is_secret_wrapper(value):
        return plain(value["value"])
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def qualified(project: str, stack: str) -> str:
    """A stack's name as the program's StackReference spells it in a plan."""
    return f"{MOCK_ORGANIZATION}/{project}/{stack}"
PACK_DIR = "policies"
T = TypeVar("T")
COMPONENTS_PACKAGE = "components"  # the project's own package, imported from its directory


def secret_placeholder(key: str) -> str:
    """What a `secure` config value becomes in the plan: marked secret, never the real value."""
    return f"[secret:{key}]"


def redact(value: Any) -> Any:
    """Make a property value printable: secrets as "[secret]", values computed by the provider
    as "(known after apply)", assets and archives as what they hold."""
    if is_secret_wrapper(value):
        return REDACTED
    if isinstance(value, pulumi.output.Unknown):
        return UNKNOWN_DISPLAY
    if isinstance(value, pulumi.AssetArchive):
        return {"archive": sorted(value.assets)}
    if isinstance(value, pulumi.Asset | pulumi.Archive):
        kind = type(value).__name__
        return {kind: getattr(value, "path", None) or getattr(value, "uri", None) or "(inline)"}
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


@dataclass
class Plan:
    stack: str
    project: str
    resources: list[PlannedResource]
    outputs: dict[str, Any]  # secret leaves wrapped like inputs
    violations: list[dict[str, str]] = field(default_factory=list)
    # what `run_plan` validated (None for a bare `run_program`): a comparison reads the
    # services' config, flags and secret specs from it; never part of the printed plan
    model: StackModel | None = field(default=None, repr=False, compare=False)
    inputs: StackInputs | None = field(default=None, repr=False, compare=False)

    def as_dict(self, redactor: Redactor | None = None) -> dict[str, Any]:
        """The plan as printed and written: secret-marked values as "[secret]", and with a
        redactor, every value it knows or the detector flags (a credential the pack found
        in a ConfigMap is not printed either)."""
        document = self._document()
        return redactor.tree(document) if redactor is not None else document

    def _document(self) -> dict[str, Any]:
        by_type: dict[str, int] = {}
        for r in self.resources:
            by_type[r.type] = by_type.get(r.type, 0) + 1
        return {
            "stack": self.stack,
            "resources": [
                {"urn": r.urn, "type": r.type, "name": r.name, "inputs": redact(r.inputs),
                 "options": r.options, **({"read": True} if r.read else {})}
                for r in sorted(self.resources, key=lambda r: r.urn)
            ],
            "outputs": redact(self.outputs),
            # in one order: they are found in the order resources register, which the SDK's
            # threads vary from run to run
            "violations": sorted(self.violations, key=_violation_order),
            "summary": {"resources": len(self.resources), "by_type": dict(sorted(by_type.items()))},
        }


def _violation_order(violation: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(str(violation.get(k, "")) for k in ("urn", "policy", "level", "message"))


class PlanMocks(pulumi.runtime.Mocks):
    """Answers like a provider in preview: inputs echoed, a few computed attributes filled in."""

    def __init__(self, model: StackModel):
        self.region = model.platform.aws.region
        self.account = model.platform.aws.account_id
        # fully qualified stack name -> its outputs, what a StackReference reads (a shard's
        # platform stack: its planned outputs, fed in by `run_plan`)
        self.references: dict[str, Mapping[str, Any]] = {}

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        state = dict(args.inputs)
        resource_id = f"{args.name}-id"
        # pulumi-aws 7: a resource's own `region` wins over the provider's (backups, replicas)
        region, account = state.get("region") or self.region, self.account
        if args.typ == REFERENCE_TYPE:
            name = str(state.get("name"))
            if name not in self.references:
                raise PlanReferenceError(f"the plan has no outputs of stack `{name}` for a "
                                         "StackReference. Fix: plan its platform stack first.")
            # dict(): the outputs may still be planned elsewhere (fleet.plan_environment)
            return name, {"name": name, "outputs": plain(dict(self.references[name])),
                          "secretOutputs": []}
        if args.typ == "aws:secretsmanager/secret:Secret":
            # Secrets Manager appends six random characters to the name in the ARN.
            resource_id = state["arn"] = (
                f"arn:aws:secretsmanager:{region}:{account}:secret:{state['name']}-"
                f"{_suffix(state['name'], 6)}"
            )
        elif args.typ == "aws:kms/key:Key":
            key_id = str(uuid.uuid5(uuid.NAMESPACE_URL, args.name))
            state.update(keyId=key_id, arn=f"arn:aws:kms:{region}:{account}:key/{key_id}")
            resource_id = key_id
        elif args.typ == "aws:kms/alias:Alias" and "name" in state:
            state["arn"] = f"arn:aws:kms:{region}:{account}:{state['name']}"  # alias/<name>
            resource_id = state["name"]
        elif args.typ == "aws:lambda/function:Function" and "name" in state:
            state["arn"] = f"arn:aws:lambda:{region}:{account}:function:{state['name']}"
            resource_id = state["name"]
        elif args.typ == "aws:cloudwatch/logGroup:LogGroup" and "name" in state:
            # the provider drops the API's trailing `:*` from a log group's ARN
            state["arn"] = f"arn:aws:logs:{region}:{account}:log-group:{state['name']}"
            resource_id = state["name"]
        elif args.typ == "aws:iam/role:Role":
            # an unnamed role gets the engine's auto-name: resource name, '-', 7 hex characters
            state.setdefault("name", f"{args.name}-{_suffix(args.name, 7, hex_only=True)}")
            path = state.get("path") or "/"
            state["arn"] = f"arn:aws:iam::{account}:role{path}{state['name']}"
            resource_id = state["name"]  # a role's id is its name
        elif args.typ == "aws:s3/bucket:Bucket" and "bucket" in state:
            state["arn"] = f"arn:aws:s3:::{state['bucket']}"  # S3 ARNs name no region or account
            resource_id = state["bucket"]
        elif args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = self.generated_value(args.name)
        return resource_id, state

    def generated_value(self, name: str) -> str:
        return f"[generated:{name}]"

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        return {}, []  # no provider function answers; no check failures


def _suffix(seed: str, length: int, hex_only: bool = False) -> str:
    """Stable stand-in for a provider's random characters (same plan, same ARN)."""
    digest = hashlib.sha256(seed.encode()).digest()
    alphabet = "0123456789abcdef" if hex_only else (
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


class _Remembering(pulumi.runtime.Mocks):
    """A run's mocks, remembering on each thread the resource they last answered: its inputs
    as the SDK's monitor deserialised them and the state returned, which the recording
    monitor keeps as they are (deserialising both again cost a plan ~6 %)."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        self.mocks = mocks
        self.answered = threading.local()

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict]:
        resource_id, state = self.mocks.new_resource(args)
        self.answered.last = (args.inputs, state)
        return resource_id, state

    def call(self, args: pulumi_mocks.MockCallArgs) -> Any:
        return self.mocks.call(args)

    def register_transform(self, transform: Any) -> None:
        self.mocks.register_transform(transform)

    def register_invoke_transform(self, transform: Any) -> None:
        self.mocks.register_invoke_transform(transform)

    def __getattr__(self, name: str) -> Any:  # what else a caller reads of its mocks
        return getattr(self.mocks, name)


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, also keeping what the engine would know of each resource."""

    def __init__(self, mocks: pulumi.runtime.Mocks,
                 progress: Callable[[PlannedResource], None] | None = None):
        self.remembering = _Remembering(mocks)
        super().__init__(self.remembering)
        self.planned: list[PlannedResource] = []
        self.inherited: dict[str, dict[str, bool]] = {}  # urn -> protect/retainOnDelete in force
        self.progress = progress  # called with each resource as it registers (progress bars)

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # As the engine does: the parent's whole type chain qualifies the type, and children of
        # the root stack are not qualified by it (the mocks use the last type only, and do).
        if parent and parent.split("::")[2] != STACK_TYPE:
            type_ = parent.split("::")[2] + "$" + type_
        return "urn:pulumi:" + "::".join([get_stack(), get_project(), type_, name])

    def resource_options(self, request, urn: str) -> dict[str, Any]:
        """The options the engine would apply. protect and retainOnDelete, when the program
        leaves them unset, are inherited from the parent (as the engine does); dependsOn is
        the dependencies no input explains (what `depends_on` added)."""
        parent = self.inherited.get(request.parent, {})
        flags = {
            "protect": request.protect if request.HasField("protect")
            else parent.get("protect", False),
            "retainOnDelete": request.retainOnDelete if request.HasField("retainOnDelete")
            else parent.get("retainOnDelete", False),
        }
        self.inherited[urn] = flags
        implicit = {u for deps in request.propertyDependencies.values() for u in deps.urns}
        return {
            **flags,
            "ignoreChanges": list(request.ignoreChanges),
            "deleteBeforeReplace": bool(request.deleteBeforeReplace),
            "replaceOnChanges": list(request.replaceOnChanges),
            "dependsOn": sorted(set(request.dependencies) - implicit),
        }

    def ReadResource(self, request):  # noqa: N802 (gRPC method name)
        """A read (a shard's StackReference): recorded, as `pulumi preview` hands it to the
        pack too, and marked: the engine reads it and creates nothing."""
        response = super().ReadResource(request)
        self.planned.append(PlannedResource(
            urn=response.urn, type=request.type, name=request.name,
            inputs=rpc.deserialize_properties(request.properties),
            outputs=rpc.deserialize_properties(response.properties),
            parent=request.parent or None, dependencies=list(request.dependencies),
            property_dependencies={}, custom=True, provider=request.provider, read=True,
            options={"protect": False, "retainOnDelete": False, "ignoreChanges": [],
                     "deleteBeforeReplace": False, "replaceOnChanges": [], "dependsOn": []}))
        return response

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        if request.type == STACK_TYPE:
            return response
        # the mocks' answer as they gave it: what the SDK reads back from its serialisation
        inputs, state = self.remembering.answered.last
        outputs = dict(state)
        if request.additionalSecretOutputs:
            # The engine marks these outputs secret (e.g. RandomPassword.result); so do we.
            for key in request.additionalSecretOutputs:
                if key in outputs and not is_secret_wrapper(outputs[key]):
                    outputs[key] = {SECRET_SIG_KEY: SECRET_SIG_VALUE, "value": outputs[key]}
            response.object.CopyFrom(_sync_await(rpc.serialize_properties(outputs, {})))
        self.planned.append(PlannedResource(
            options=self.resource_options(request, response.urn),
            delete_before_replace_defined=bool(request.deleteBeforeReplaceDefined),
            urn=response.urn,
            type=request.type,
            name=request.name,
            inputs=inputs,
            outputs=outputs,
            parent=request.parent or None,
            dependencies=list(request.dependencies),
            property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
            custom=bool(request.custom),
            provider=request.provider,
        ))
        if self.progress is not None:
            self.progress(self.planned[-1])
        return response


def plan_config(inputs: StackInputs,
                secure_values: Mapping[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """The config the Pulumi CLI would hand the program: project values, then stack values."""
    config = {k: _config_string(v) for k, v in inputs.project_values.items()}
    secret_keys = []
    for key, value in inputs.values.items():
        if value.secure:
            config[key] = (secure_values or {}).get(key, secret_placeholder(key))
            secret_keys.append(key)
        else:
            config[key] = _config_string(value.value)
    return config, secret_keys


def _config_string(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def run_plan(project_dir: Path, stack: str, *, mocks: PlanMocks | None = None,
             secure_values: Mapping[str, str] | None = None, policy: bool = False,
             policy_config_file: Path | None = None,
             progress: Callable[[PlannedResource], None] | None = None,
             services: Iterable[str] | None = None, one_stack: bool = False,
             references: Mapping[str, Mapping[str, Any]] | None = None,
             on_outputs: Callable[[Mapping[str, Any]], None] | None = None) -> Plan:
    """Validate, run the program under mocks and, with `policy`, the project's policy pack
    through the Analyzer protocol. Raises InvalidStack for bad configuration and
    PolicyPackError when the pack cannot run. `progress` is called per registered resource;
    its `analyzed` attribute, if any, per resource the pack has analysed. `services`: plan
    only these catalog services (and the environment's shared resources); the program gets
    them through its config (configplane.inputs.Selection), as it gets everything else.

    `stack` is one Pulumi stack of the fleet (configplane.model.topology): an environment's
    platform stack, or a shard `<env>-<shard>`, whose StackReference reads `references`
    (stack name -> outputs: its platform stack's plan, `plan_fleet`). `one_stack`: plan a
    sharded environment as the one stack it was before its split. `on_outputs` is called with
    the stack's outputs as soon as its program has run, before its checks and the pack: what
    a shard planning beside it waits for."""
    project_dir = Path(project_dir).resolve()
    selection = Selection.of(services, one_stack)
    role = stack_role(project_dir, stack)
    environment = role.environment
    shard_files = ([role.name] if role.kind == "shard"
                   else shard_stack_files(project_dir, environment) if one_stack else [])
    inputs = read_inputs(project_dir, environment, shard_files=shard_files)
    topology = topology_of(inputs)
    inputs = narrowed(inputs, [s for s in declared_services(topology, role, one_stack)
                               if selection.admits(s)])
    model = load_stack(inputs, project_dir / "schemas")
    project = inputs.project
    config, secret_keys = plan_config(inputs, secure_values)
    if role.kind == "shard":  # as the engine gives a shard: its own file's values only
        config = {k: v for k, v in config.items()
                  if k in inputs.shard_secure or k in inputs.project_values}
        secret_keys = [k for k in secret_keys if k in config]
    config.update(selection.as_config())
    session = None
    if policy:
        pack_dir = project_dir / PACK_DIR
        if not (pack_dir / "PulumiPolicy.yaml").is_file():
            raise PolicyPackError(f"no policy pack in {pack_dir} (PulumiPolicy.yaml missing). "
                                  "Fix: restore it, or plan with --no-policy.")
        default_config = default_policy_config(pack_dir, environment)
        if policy_config_file is None and default_config.is_file():
            policy_config_file = default_config
        # Started before the program runs: the pack imports while the program evaluates.
        session = PolicyPackSession(pack_dir, project=project, stack=stack, config=config,
                                    config_secret_keys=secret_keys,
                                    policy_config_file=policy_config_file)
        session.start()
    try:
        mocks = mocks or PlanMocks(model)
        mocks.references = {qualified(project, name): outputs
                            for name, outputs in (references or {}).items()}
        plan = run_program(project_dir, project, stack, model, config, secret_keys, mocks,
                           progress=progress)
        if on_outputs is not None:
            on_outputs(plan.outputs)
        plan.model, plan.inputs = model, inputs
        plan.violations = unmarked_secret_violations(plan.resources, [config[k] for k in secret_keys])
        plan.violations += duplicate_urn_violations(plan.resources)
        if session is not None:
            report = session.run(analyzed_resources(plan),
                                 progress=getattr(progress, "analyzed", None))
            plan.violations += [
                {"policy": v.policy, "urn": v.urn, "message": v.message, "level": v.level}
                for v in report.violations
            ]
    finally:
        if session is not None:
            session.close()
    return plan


def run_program(project_dir: Path, project: str, stack: str, model: StackModel | None,
                config: dict[str, str], secret_keys: list[str],
                mocks: PlanMocks | None = None, *,
                progress: Callable[[PlannedResource], None] | None = None) -> Plan:
    """Run the project's __main__.py under the SDK's mocks with `config` (as `plan_config`
    gives it) and record every resource it registers; no validation and no policy pack
    (`run_plan` does both). `mocks` defaults to the plan's own for `model`."""
    if mocks is None:
        if model is None:
            raise ValueError("run_program needs the stack model or mocks of its own")
        mocks = PlanMocks(model)
    monitor = RecordingMonitor(mocks, progress)

    def run() -> dict[str, Any]:
        settings.set_root_resource(None)  # type: ignore[arg-type]
        pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=True,
                                 monitor=monitor, organization=MOCK_ORGANIZATION)
        pulumi.runtime.set_all_config(config, secret_keys)
        root = settings.get_root_resource()
        if not isinstance(root, Stack):  # set_mocks registers one
            raise RuntimeError("the Pulumi SDK registered no root stack under its mocks")
        with no_stack_traces():
            runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")
            _sync_await(wait_for_rpcs())
        return {name: _resolve(value) for name, value in root.outputs.items()}

    with collector_paused(), project_imports(project_dir):
        outputs = on_own_thread(run)
    return Plan(stack=stack, project=project, resources=monitor.planned, outputs=outputs)


@contextmanager
def no_stack_traces() -> Iterator[None]:
    """No stack trace recorded with each resource while a program runs under the mocks.

    The SDK sends the engine, with every resource, the whole stack above its constructor,
    each frame read from its source file and turned into a file:// URI (pulumi 3.x has no
    switch for it): for error messages the engine shows. The mock monitor throws it away,
    and it cost the plan 16 % of its time (a frame per call level of the program's
    components, per resource: docs/benchmarks.md). Under the engine (`pulumi preview`, `up`)
    nothing of this runs. Taken only under `_PROGRAM_RUN`: one program runs at a time."""
    recorded = getattr(_sdk_resource, "_get_stack_trace", None)
    if recorded is None:  # another SDK: it records what it records
        yield
        return
    _sdk_resource._get_stack_trace = _no_stack_trace
    try:
        yield
    finally:
        _sdk_resource._get_stack_trace = recorded


def _no_stack_trace() -> source_pb2.StackTrace:
    return source_pb2.StackTrace()  # no frames: no source position either, as the SDK does


def on_own_thread(work: Callable[[], T]) -> T:
    """`work()` (the program's whole run) on a thread of its own, with a copy of this thread's
    context (the SDK's settings are context variables) and the program event loop.

    Why: the SDK waits on its work with the event loop of the thread it runs on, which
    cannot wait while it runs: on its own thread, the program runs from a caller that has a
    loop running (async code, a notebook) as from one that has none, and the caller's loop
    is never the SDK's. One event loop serves every run, one run at a time, as the caller's
    thread's loop did: the SDK keeps tasks of earlier runs in sets it shares across
    contexts, and waits on them again in a later run."""
    context = contextvars.copy_context()
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        asyncio.set_event_loop(_program_loop())
        try:
            outcome.append((True, context.run(work)))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            outcome.append((False, exc))
        finally:
            asyncio.set_event_loop(None)

    with _PROGRAM_RUN:
        # daemon: an interrupted command (Ctrl-C on the caller's thread) does not wait for it
        thread = threading.Thread(target=target, name="configplane-program", daemon=True)
        thread.start()
        thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return cast(T, value)


_PROGRAM_RUN = threading.Lock()


@functools.cache
def _program_loop() -> asyncio.AbstractEventLoop:
    # a program runs here from now on: its event loop, the SDK's tasks on it and gRPC's
    # threads stay this process's, which a forked copy would share
    refuse_forks("a Pulumi program ran in this process")
    return asyncio.new_event_loop()


@functools.cache
def no_collection_at_exit() -> None:
    """When the process exits, no final collection over what is alive then. Python's
    shutdown collects the garbage of every live object before it frees the modules; after a
    plan that is millions of the SDK's objects, about 2 s of CPU for one 1,400-resource shard
    (a third of `plan --shard`), only to find memory the OS takes back anyway. An exit hook
    freezes them first (atexit runs before that collection): a process that goes on (a test
    session) is unchanged until it exits. Registered once per process."""
    atexit.register(gc.freeze)


@contextmanager
def project_imports(project_dir: Path) -> Iterator[None]:
    """Imports as the Pulumi CLI gives the program: its directory first on sys.path, so
    `from components import ...` finds that project's own top-level `components` package.
    This has to touch sys.path and sys.modules: `components` is not part of this package,
    and two project directories (a checkout and a test's copy) each have their own. Both are
    scoped: on the way in, `components.*` modules already loaded are set aside; on the way
    out, the project's are dropped and those set aside are put back, and sys.path is
    restored."""
    def owned(name: str) -> bool:
        return name.split(".")[0] == COMPONENTS_PACKAGE

    saved_path = list(sys.path)
    saved_modules = {name: sys.modules.pop(name) for name in [m for m in sys.modules if owned(m)]}
    sys.path.insert(0, str(project_dir))
    try:
        yield
    finally:
        sys.path[:] = saved_path
        for name in [m for m in sys.modules if owned(m)]:
            del sys.modules[name]
        sys.modules.update(saved_modules)


def stack_urn(plan: Plan) -> str:
    return root_urn(plan.project, plan.stack)


def analyzed_resources(plan: Plan) -> list[AnalyzedResource]:
    """What the engine hands the analyzer: the root stack first, then every resource."""
    root = AnalyzedResource(urn=stack_urn(plan), type=STACK_TYPE, outputs=plan.outputs)
    return [root] + [
        AnalyzedResource(urn=r.urn, type=r.type, name=r.name, inputs=r.inputs, outputs=r.outputs,
                         parent=r.parent, dependencies=r.dependencies,
                         property_dependencies=r.property_dependencies, provider=r.provider,
                         options=_analyzer_options(r))
        for r in plan.resources
    ]


def _analyzer_options(r: PlannedResource) -> ResourceOptions:
    """The options the engine sends a policy pack (AnalyzerResourceOptions has no
    retainOnDelete: the pack cannot see it, the program's tests check it)."""
    if not r.options:
        return ResourceOptions()
    return ResourceOptions(
        protect=r.options["protect"], ignore_changes=tuple(r.options["ignoreChanges"]),
        delete_before_replace=(r.options["deleteBeforeReplace"]
                               if r.delete_before_replace_defined else None),
    )


def _resolve(value: Any) -> Any:
    """Resolve an exported value leaf by leaf, keeping each leaf's secretness."""
    if isinstance(value, pulumi.Output):
        resolved = _sync_await(value.future())
        inner = _resolve(resolved)
        if _sync_await(value.is_secret()):
            return {SECRET_SIG_KEY: SECRET_SIG_VALUE, "value": inner}
        return inner
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_resolve(v) for v in value]
    return value
