"""The fleet's stacks: per environment one platform stack and shard stacks of services.

PROVISIONAL. The shards branch (wip/shards, issue 19's topology) owns the final shape of this
module; wip/fleet wrote this small version so that `configplane affected`, the workflows'
matrices, the operator's `Stack` objects and the fleet benchmarks build against an explicit
interface rather than wait. Everything they use is the three functions below and `FleetStack`:

- `environments(project_dir)`: the environments, one per stack file `Pulumi.<env>.yaml`;
- `environment_stacks(project_dir, environment)`: the environment's stacks, platform first;
- `service_stacks(project_dir, environment)`: each service in the environment -> its stack
  (`service_stack` for one service).

The rules here: the platform stack keeps the environment's name (existing state keeps its
platform resources); a service's shard is its owning team, the first of its resolved `owners:`
(fleet default -> service -> environment overlay, as CODEOWNERS reads them; the platform owners
when it names none), turned into an RFC 1123 label; the shard's stack is `<env>-<shard>`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from configplane.inputs import PLATFORM_KEY, YamlError, load_file, read_inputs

# Pulumi's stack-name rule (sdk/go/common/tokens: ValidateStackName), matched whole.
STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
STACK_FILE = re.compile(r"Pulumi\.(?P<stack>.+)\.yaml")
UNOWNED = "unowned"  # the shard of services when neither they nor the platform name an owner


@dataclass(frozen=True, order=True)
class FleetStack:
    """One Pulumi stack of the fleet."""

    name: str  # the Pulumi stack name
    environment: str  # the environment it belongs to (its platform stack's name)
    kind: Literal["platform", "shard"]
    shard: str | None = None  # the shard's name (None for the platform stack)

    def as_dict(self) -> dict[str, Any]:
        return {"stack": self.name, "environment": self.environment, "kind": self.kind,
                "shard": self.shard}


def is_stack_name(name: str) -> bool:
    return STACK_NAME.fullmatch(name) is not None


def environments(project_dir: Path) -> tuple[str, ...]:
    """Every environment: each `Pulumi.<env>.yaml` (a valid stack name) that sets the
    platform's settings (`configplane:platform`). A shard's own stack file is not one; a file
    that does not parse counts, so that `validate` reports it."""
    found = []
    for path in Path(project_dir).glob("Pulumi.*.yaml"):
        match = STACK_FILE.fullmatch(path.name)
        if not (match and is_stack_name(match["stack"]) and path.is_file()):
            continue
        try:
            document = load_file(path).document
        except (YamlError, OSError, UnicodeDecodeError):
            found.append(match["stack"])
            continue
        config = document.get("config") if isinstance(document, Mapping) else None
        if not isinstance(config, Mapping) or PLATFORM_KEY in config:
            found.append(match["stack"])
    return tuple(sorted(found))


def shard_name(owners: Iterable[str]) -> str:
    """The shard of a service owned by `owners`: the first owner's team (`@org/team` -> team,
    `@user` -> user, `name@domain` -> name-domain), as an RFC 1123 label (`owner-<hash>` when
    the owner has no letter or digit to keep). Teams of one name in two organisations share
    a shard: a bigger shard, never a service in two."""
    for owner in owners:
        team = owner.rsplit("/", 1)[-1].lstrip("@")
        label = re.sub(r"[^a-z0-9]+", "-", team.lower()).strip("-")[:40].strip("-")
        return label or f"owner-{hashlib.sha256(owner.encode()).hexdigest()[:10]}"
    return UNOWNED


def platform_stack(environment: str) -> FleetStack:
    return FleetStack(environment, environment, "platform")


def shard_stack(environment: str, shard: str) -> FleetStack:
    return FleetStack(f"{environment}-{shard}", environment, "shard", shard)


def _owners(layers: Iterable[Any], name: str) -> list[str]:
    owners: Any = None
    for layer in layers:  # lowest first: a list replaces, an explicit null deletes
        document = layer.document.get(name)
        if isinstance(document, Mapping) and "owners" in document:
            owners = document["owners"]
    if isinstance(owners, list):
        return [o for o in owners if isinstance(o, str)]
    return []


def service_stacks(project_dir: Path, environment: str,
                   services: Iterable[str] | None = None) -> dict[str, FleetStack]:
    """Each service of the environment's catalog -> the shard stack that holds it (only
    `services`, when given). A service the environment's overlay removes (`null`) is absent."""
    inputs = read_inputs(Path(project_dir), environment, services=services)
    fallback = list(inputs.owners)
    return {name: shard_stack(environment, shard_name(_owners(layers, name) or fallback))
            for name, layers in inputs.service_layers.items()}


def service_stack(project_dir: Path, environment: str, service: str) -> FleetStack | None:
    """The stack that holds `service` in `environment`, or None when it is not there."""
    return service_stacks(project_dir, environment, [service]).get(service)


def environment_stacks(project_dir: Path, environment: str) -> tuple[FleetStack, ...]:
    """The environment's stacks: its platform stack first, then its shards by name."""
    shards = sorted(set(service_stacks(project_dir, environment).values()))
    return (platform_stack(environment), *shards)
