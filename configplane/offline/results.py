"""What an offline policy run is given and what it reports: the resources as the engine hands
them to a pack, the pack's verdicts, and the errors a run raises (messages are user-ready).
`session` runs the pack; `marshal` and `policyconfig` (in configplane.offline) hold the
protocol's value encoding and the policy config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

STACK_TYPE = "pulumi:pulumi:Stack"


def root_urn(project: str, stack: str) -> str:
    """The URN of the stack's root resource, as the engine names it."""
    return f"urn:pulumi:{stack}::{project}::{STACK_TYPE}::{project}-{stack}"


class PolicyPackError(Exception):
    """The pack could not be started or failed while analysing; the message is user-ready."""


class PolicyConfigError(PolicyPackError):
    """The policy config file (or the pack's own defaults) is invalid."""


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


@dataclass
class PlannedResource:
    urn: str
    type: str
    name: str
    inputs: dict[str, Any]  # as the engine holds them: secrets as the signature object
    outputs: dict[str, Any]
    parent: str | None
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    custom: bool
    provider: str = ""
    # Resource options as the engine receives them (RegisterResourceRequest): protect,
    # retainOnDelete, ignoreChanges, deleteBeforeReplace, replaceOnChanges, dependsOn.
    options: dict[str, Any] = field(default_factory=dict)
    delete_before_replace_defined: bool = False  # the program set it (true or false)
    read: bool = False  # read, not managed (a StackReference): the engine creates nothing
