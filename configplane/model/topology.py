"""The fleet's stacks: per environment one platform stack and shard stacks of services
(docs/fleet.md). This is the one place that says which stack holds what; `affected`, the
workflows' matrices, the operator's objects, `plan`, `validate`, `where`, `shard plan` and the
program itself ask it.

- An environment is a stack file `Pulumi.<env>.yaml` that sets `configplane:platform`; its
  platform stack keeps the environment's name, so existing state keeps its platform resources.
- Without `platform.shards` the environment is one stack (the layout before issue 19). With it,
  each service sits in one shard, a stack `<env>-<shard>`:
  `platform.shards.services[<service>]`, else `platform.shards.teams[<first owner>]`, else the
  first owner's team (`@shop/api-team` -> `api-team`). The owners are the service's resolved
  `owners:`, the platform owners when it names none. The platform decides overrides (a
  platform file): a service cannot move itself into another team's shard, whose deployer
  would then change its resources.
- A shard holds at most `platform.shards.max_services` services (`topology_problems`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from configplane.inputs import (
    NAMESPACE,
    StackFileError,
    StackInputs,
    environment_of,
    environments,
    is_stack_name,
    merge,
    read_inputs,
    stack_file_name,
)
from configplane.ownership import (
    MAX_SHARD,
    github_deploy_environment,
    github_shared_environments,
    is_shard_name,
    shard_of_stack,
    shard_stack_name,
    team_shard,
)

PLATFORM_KEY = f"{NAMESPACE}:platform"
DEFAULT_MAX_SERVICES = 60  # ~22 resources a service: ~1,350 resources, under 1,500 a stack


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


class TopologyError(Exception):
    """A stack name that is no stack of the fleet (message names the fix)."""


def platform_stack(environment: str) -> FleetStack:
    return FleetStack(environment, environment, "platform")


def shard_stack(environment: str, shard: str) -> FleetStack:
    return FleetStack(shard_stack_name(environment, shard), environment, "shard", shard)


@dataclass(frozen=True)
class Topology:
    """One environment's stacks and which shard holds each service."""

    environment: str
    sharded: bool
    assignment: Mapping[str, str] = field(default_factory=dict)  # service -> shard
    max_services: int = DEFAULT_MAX_SERVICES
    # where each assignment came from (for messages): service -> "services" | "teams" | "owners"
    decided_by: Mapping[str, str] = field(default_factory=dict)

    @property
    def platform(self) -> FleetStack:
        return platform_stack(self.environment)

    def shards(self) -> dict[str, tuple[str, ...]]:
        """Each shard -> its services, by name."""
        out: dict[str, list[str]] = {}
        for service, shard in sorted(self.assignment.items()):
            out.setdefault(shard, []).append(service)
        return {shard: tuple(out[shard]) for shard in sorted(out)}

    def stacks(self) -> tuple[FleetStack, ...]:
        """The platform stack first, then its shards by name (one stack when not sharded)."""
        if not self.sharded:
            return (self.platform,)
        return (self.platform, *(shard_stack(self.environment, s) for s in self.shards()))

    def stack_of(self, service: str) -> FleetStack | None:
        """The stack holding `service` (the platform stack when not sharded), None if absent."""
        shard = self.assignment.get(service)
        if shard is None:
            return None
        return shard_stack(self.environment, shard) if self.sharded else self.platform

    def services_of(self, stack: FleetStack) -> tuple[str, ...]:
        """The services a stack declares: a shard's own; all of them in an unsharded
        environment's one stack; none in a sharded environment's platform stack."""
        if stack.kind == "shard":
            return self.shards().get(stack.shard or "", ())
        return () if self.sharded else tuple(sorted(self.assignment))


def shard_settings(inputs: StackInputs) -> Mapping[str, Any] | None:
    """`platform.shards` as the layers resolve it (project defaults, then the stack file), or
    None when the environment is one stack. Read before validation: a malformed value is
    read as absent here and reported by `validate` (the schema)."""
    platform: dict[str, Any] = {}
    for layer in inputs.platform_layers:
        document = layer.document.get("platform") if isinstance(layer.document, Mapping) else None
        if isinstance(document, Mapping):
            platform = merge(platform, document)
    shards = platform.get("shards")
    return shards if isinstance(shards, Mapping) else None


def _owners(layers: Iterable[Any], name: str) -> list[str]:
    owners: Any = None
    for layer in layers:  # lowest first: a list replaces, an explicit null deletes
        document = layer.document.get(name)
        if isinstance(document, Mapping) and "owners" in document:
            owners = document["owners"]
    if isinstance(owners, list):
        return [o for o in owners if isinstance(o, str)]
    return []


def _mapping(settings: Mapping[str, Any], key: str) -> dict[str, str]:
    value = settings.get(key)
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


def topology_of(inputs: StackInputs) -> Topology:
    """The topology of the environment whose inputs these are (every service of the catalog
    that is in the environment; a `services` selection narrows it)."""
    settings = shard_settings(inputs)
    if settings is None:
        return Topology(inputs.stack, False, {name: "" for name in inputs.service_layers})
    by_service, by_team = _mapping(settings, "services"), _mapping(settings, "teams")
    fallback = list(inputs.owners)
    assignment: dict[str, str] = {}
    decided_by: dict[str, str] = {}
    for name, layers in inputs.service_layers.items():
        owners = _owners(layers, name) or fallback
        if name in by_service:
            assignment[name], decided_by[name] = by_service[name], "services"
        elif owners and owners[0] in by_team:
            assignment[name], decided_by[name] = by_team[owners[0]], "teams"
        else:
            assignment[name], decided_by[name] = team_shard(owners), "owners"
    bound = settings.get("max_services", DEFAULT_MAX_SERVICES)
    bound = bound if isinstance(bound, int) and not isinstance(bound, bool) and bound > 0 \
        else DEFAULT_MAX_SERVICES
    return Topology(inputs.stack, True, assignment, bound, decided_by)


def environment_topology(project_dir: Path, environment: str) -> Topology:
    return topology_of(read_inputs(Path(project_dir), environment))


def environment_stacks(project_dir: Path, environment: str) -> tuple[FleetStack, ...]:
    """The environment's stacks: its platform stack first, then its shards by name."""
    return environment_topology(project_dir, environment).stacks()


def service_stacks(project_dir: Path, environment: str,
                   services: Iterable[str] | None = None) -> dict[str, FleetStack]:
    """Each service of the environment's catalog -> the stack that holds it (only `services`,
    when given). A service the environment's overlay removes (`null`) is absent."""
    # each service's shard is decided by it and the platform alone: read only the ones asked
    topology = topology_of(read_inputs(Path(project_dir), environment, services=services))
    return {name: stack for name in topology.assignment
            if (stack := topology.stack_of(name)) is not None}


def service_stack(project_dir: Path, environment: str, service: str) -> FleetStack | None:
    """The stack that holds `service` in `environment`, or None when it is not there."""
    return service_stacks(project_dir, environment, [service]).get(service)


def secure_values_stack(project_dir: Path, environment: str, service: str) -> str:
    """The stack whose file holds `service`'s secure values in `environment`: its shard in an
    environment split into stacks (only that stack can decrypt its file: docs/fleet.md), else
    the environment's own. A project that cannot be read yet keeps the environment's:
    validate reports why."""
    try:
        placed = service_stack(project_dir, environment, service)
    except (StackFileError, TopologyError, OSError, ValueError):
        return environment
    return placed.name if placed is not None else environment


def stack_role(project_dir: Path, stack: str,
               known: Iterable[str] | None = None) -> FleetStack:
    """What the Pulumi stack `stack` is: the shard `<env>-<shard>` of the environment with the
    longest name it extends, else an environment's platform stack (its own name; one whose
    stack file is missing is reported by the reader, as before). Raises TopologyError for a
    name Pulumi would not accept as a stack name."""
    if not is_stack_name(stack):
        raise TopologyError(f"`{stack}` is not a stack name (letters, digits, `-`, `_`, `.`; at "
                            "most 100). Fix: name an environment or a shard `<env>-<shard>`.")
    names = tuple(known) if known is not None else environments(project_dir)
    if stack not in names:
        environment = environment_of(stack, names)
        shard = shard_of_stack(stack, environment) if environment is not None else None
        if environment is not None and shard is not None and is_shard_name(shard):
            return shard_stack(environment, shard)
    return platform_stack(stack)


Problem = tuple[str, str, str]


def _origin(topology: Topology, stack: FleetStack, file: str) -> tuple[str, str]:
    """(key path, what it is) of the setting that names `stack`: the shard's platform
    override or its first service's owners; for a platform stack, its stack file's name."""
    if stack.kind == "platform":
        return "(stack)", f"the platform stack of environment `{stack.environment}` ({file})"
    first = topology.shards()[stack.shard or ""][0]
    decided = topology.decided_by.get(first)
    path = (f"platform.shards.services.{first}" if decided == "services"
            else "platform.shards.teams" if decided == "teams" else f"services.{first}.owners")
    return path, (f"shard `{stack.shard}` of environment `{stack.environment}` "
                  f"({file}: {path})")


def fleet_names(topology: Topology) -> list[tuple[str, FleetStack]]:
    """(name, stack) for every name one of the environment's stacks takes where the whole
    fleet shares one namespace: its Pulumi stack name, which is also the GitHub environment it
    deploys in (github_deploy_environment), and for the platform stack the environment's
    shared GitHub environments (previews, approval). A shard whose name is no label is left
    out (refused on its own)."""
    out: list[tuple[str, FleetStack]] = []
    for stack in topology.stacks():
        if stack.kind == "shard" and not is_shard_name(stack.shard or ""):
            continue
        out.append((github_deploy_environment(stack.name), stack))
        if stack.kind == "platform":
            out += [(name, stack) for name in github_shared_environments(stack.environment)]
    return out


def fleet_key(name: str) -> str:
    """Names compared as GitHub compares environment names: regardless of case."""
    return name.lower()


def related_environments(environment: str, known: Iterable[str]) -> tuple[str, ...]:
    """The other environments whose stacks' names can meet `environment`'s: every name of an
    environment's stacks is the environment's name or extends it by `-`, so two meet only
    when the names are equal but for case, or one extends the other by `-`."""
    mine = fleet_key(environment)
    return tuple(sorted(other for other in set(known) - {environment}
                        if (theirs := fleet_key(other)) == mine
                        or theirs.startswith(mine + "-") or mine.startswith(theirs + "-")))


def collision_problems(topology: Topology, file: str, others: Iterable[Topology]
                       ) -> list[Problem]:
    """(key path, file, message) for each stack of this environment that takes a name another
    stack of the fleet takes too: one Pulumi stack name (one state, one lock, and `<env>-<shard>`
    no longer says which environment), or one GitHub environment (its deploy role and Vault
    login would trust the other stack's jobs). `others`: the other environments' topologies
    (their platform stacks alone when not read: Topology(env, False))."""
    taken: dict[str, list[tuple[str, FleetStack, Topology]]] = {}
    for each in (topology, *others):
        for name, stack in fleet_names(each):
            taken.setdefault(fleet_key(name), []).append((name, stack, each))
    problems: list[Problem] = []
    seen: set[frozenset[FleetStack]] = set()
    for holders in taken.values():
        holders.sort(key=lambda h: h[1].kind != "shard")  # a shard's setting is the one to fix
        for name, stack, _ in holders:
            if stack.environment != topology.environment:
                continue
            for other_name, other, other_topology in holders:
                if other == stack or frozenset((stack, other)) in seen:
                    continue
                seen.add(frozenset((stack, other)))
                other_file = file if other.environment == topology.environment \
                    else stack_file_name(other.environment)
                path, mine = _origin(topology, stack, file)
                _, theirs = _origin(other_topology, other, other_file)
                what = (f"stack `{stack.name}`" if stack.name == other.name else
                        f"GitHub environment `{name}`" if name == other_name else
                        f"GitHub environment `{name}` (GitHub ignores case: `{other_name}`)")
                problems.append((path, file, (
                    f"{mine} and {theirs} both take the {what}: "
                    + ("two stacks of one name share one state and one lock, and the name no "
                       "longer says which environment it belongs to"
                       if stack.name == other.name else
                       "each stack's deploy role and Vault login trust the jobs of its GitHub "
                       "environment, so each would trust the other's")
                    + ". Fix: rename one of the shards in platform.shards (services or teams), "
                      "or rename one of the environments.")))
    return problems


def topology_problems(topology: Topology, file: str,
                      other_environments: Iterable[str] = (),
                      other_topologies: Iterable[Topology] = ()) -> list[Problem]:
    """(key path, file, message) for a stack the platform cannot deploy: a shard whose name is
    no label, a stack or GitHub environment name another stack of the fleet takes too
    (collision_problems: the other environments' platform stacks from their names, their
    shards from `other_topologies`), a shard past the bound."""
    read = {t.environment: t for t in other_topologies}
    others = [read.get(env, Topology(env, False))
              for env in sorted(set(other_environments) | set(read)) if env != topology.environment]
    problems = collision_problems(topology, file, others)
    if not topology.sharded:
        return problems
    for shard, services in topology.shards().items():
        if not is_shard_name(shard):
            path, _ = _origin(topology, shard_stack(topology.environment, shard), file)
            problems.append((path, file, f"shard `{shard}` is not an RFC 1123 label of at most "
                             f"{MAX_SHARD} characters (it names the stack `<env>-<shard>`). "
                             "Fix: name the shard with lowercase letters, digits and '-'."))
            continue
        if len(services) > topology.max_services:
            problems.append(("platform.shards", file, f"shard `{shard}` holds {len(services)} "
                             f"services; the bound is {topology.max_services} "
                             "(platform.shards.max_services), so that no stack grows past what "
                             "one preview and one lock can serve. Fix: split it: name a second "
                             f"shard for some of its services in platform.shards.services "
                             f"(e.g. `{services[-1]}: {shard[:MAX_SHARD - 2]}-2`), or map one of "
                             "its teams to its own shard in platform.shards.teams."))
    return problems


def declared_services(topology: Topology, stack: FleetStack, one_stack: bool = False
                      ) -> tuple[str, ...]:
    """The services a run of `stack` declares: with `one_stack`, the whole environment as the
    one stack it was before its split (what `shard plan` moves resources from)."""
    if one_stack:
        return tuple(sorted(topology.assignment))
    return topology.services_of(stack)


def narrowed(inputs: StackInputs, services: Iterable[str]) -> StackInputs:
    """The inputs with only these services' layers (a shard's, or a selection's)."""
    keep = set(services)
    return replace(inputs, service_layers={name: layers for name, layers
                                           in inputs.service_layers.items() if name in keep})
