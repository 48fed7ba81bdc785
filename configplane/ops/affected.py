"""Which stacks a change touches: the files that differ from a base commit, mapped to stacks.

Each changed path gets a scope (`scope_of`, a pure function of the path and the environments):

- a service's files (`services/<name>/...`) -> that service's shard stack in every environment
  it is in; its overlay `services/<name>/<env>.yaml` -> its shard stack in that environment only;
- a stack file `Pulumi.<env>.yaml`, or the pack's config for it `policies/config/<env>.json`
  -> the environment's platform stack and all its shards; a shard's own stack file
  `Pulumi.<env>-<shard>.yaml` (its secure values) -> that shard stack;
- what every stack runs or reads (Pulumi.yaml, services/defaults.yaml, __main__.py,
  components/, policies/, schemas/, configplane/, lambdas/, requirements, the build files)
  -> every stack;
- what no stack reads (docs/, tests/, benchmarks/, .github/, .ci/, top-level documents) -> none;
- anything else, including a directory under services/ that is not named like a service
  (names are matched whole) -> every stack: an unknown file may be read by the program, and
  previewing too much is safe where previewing too little is not.

The scopes are then resolved against the fleet's topology (configplane.model.topology) twice,
at the base and in the working tree, and the union kept: a deleted service still maps to the
shard it was in, a service whose owners change maps to both shards, a removed environment to
its old stacks. A service that enters, leaves or changes shards also reaches its
environment's platform stack, which plans each shard's deploy rights by service name.
Services are read only as far as the scopes need (all of an environment only when a platform
file of it changed), unless the caller asks for each stack's services (`--services`, in the JSON
output, which plan-diff.yml turns into `plan --compare --service ...`).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from configplane import ownership
from configplane.inputs import PROJECT_FILE, StackFileError, read_inputs
from configplane.model import (
    FleetStack,
    Topology,
    environment_topology,
    environments,
    is_stack_name,
    platform_stack,
    printable,
    service_stacks,
)
from configplane.ops.gitbase import branch_point, changed_files, materialise, resolve_base
from configplane.projectfiles import is_file

EVERY_STACK = ("Pulumi.yaml", "__main__.py", "services/defaults.yaml", "pyproject.toml",
               "Makefile", "components/", "policies/", "schemas/", "configplane/", "lambdas/")
REQUIREMENTS = re.compile(r"requirements[^/]*\.txt")
NO_STACK = ("docs/", "tests/", "benchmarks/", ".github/", ".ci/", "README.md", "CHANGELOG.md",
            "LICENSE", ".gitignore", ".gitattributes", ".editorconfig")
STACK_FILE = re.compile(r"Pulumi\.(?P<env>.+)\.yaml")
POLICY_CONFIG = re.compile(r"policies/config/(?P<env>[^/]+)\.json")
MATRIX_LIMIT = 256  # GitHub Actions runs at most 256 jobs from one matrix


def shown(path: str) -> str:
    """A path as text any output can carry: bytes that are not UTF-8 as `\\xff`."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class AffectedError(Exception):
    """The affected stacks cannot be worked out (message names the file or ref and the fix)."""


@dataclass(frozen=True)
class Scope:
    """What one changed path reaches, before the topology says which stacks that is."""

    kind: str  # "none" | "every" | "environment" | "service"
    why: str
    environment: str | None = None  # "environment"; "service": its overlay's environment
    service: str | None = None


def scope_of(path: str, known: Iterable[str]) -> Scope:
    """The scope of a path relative to the project; `known`: the environments (at the base
    and in the working tree), so that `services/<name>/<env>.yaml` is recognised as an overlay."""
    known = set(known)
    top, _, rest = path.partition("/")
    if top == ownership.CATALOG_DIR and path != "services/defaults.yaml":
        name, _, inner = rest.partition("/")
        if not inner or not ownership.is_service_name(name):
            return Scope("every", "under services/ but not a service's directory (services/<name>/ "
                         "with an RFC 1123 name): read by every stack's catalog")
        stem, dot, ext = inner.rpartition(".")
        if dot and ext == "yaml" and stem in known:
            return Scope("service", f"overlay of service {name} in {stem}", stem, name)
        return Scope("service", f"file of service {name}", None, name)
    match = STACK_FILE.fullmatch(path) or POLICY_CONFIG.fullmatch(path)
    if match and is_stack_name(match["env"]):
        what = "stack file" if path.startswith("Pulumi.") else "policy config"
        return Scope("environment", f"{what} of {match['env']}", match["env"])
    if path in EVERY_STACK or any(path.startswith(p) for p in EVERY_STACK if p.endswith("/")) \
            or REQUIREMENTS.fullmatch(path):
        return Scope("every", "read or run by every stack")
    if path in NO_STACK or any(path.startswith(p) for p in NO_STACK if p.endswith("/")):
        return Scope("none", "read by no stack")
    return Scope("every", "not a file configplane knows: previewed everywhere to be safe")


class TreeTopology:
    """The fleet's stacks in one tree of the project (the base commit's, or the working
    tree's), read lazily and once per environment.

    Not configplane.model.Topology, on purpose: that is one environment's whole assignment,
    built from every service's files; this asks it (environment_topology, service_stacks) for
    each environment of one tree, reading only the services a change names (a one-service pull
    request on a 2,000-service fleet reads that service's files, not the catalog), and names
    the tree when a file does not read. The rules stay in the model."""

    def __init__(self, project_dir: Path, label: str = "the working tree"):
        self.project_dir, self.label = Path(project_dir), label
        self.environments = environments(self.project_dir) if is_file(
            self.project_dir, PROJECT_FILE) else ()
        self._all: dict[str, Topology] = {}
        self._services: dict[str, dict[str, FleetStack]] = {}
        self._looked: dict[str, set[str]] = {}

    def topology(self, environment: str) -> Topology | None:
        """The environment's whole topology (every service read), None if the tree has none."""
        if environment not in self.environments:
            return None
        if environment not in self._all:
            with self._reading():
                self._all[environment] = environment_topology(self.project_dir, environment)
        return self._all[environment]

    def stacks(self, environment: str) -> tuple[FleetStack, ...]:
        topology = self.topology(environment)
        return topology.stacks() if topology is not None else ()

    def held(self, stack: FleetStack) -> tuple[str, ...]:
        """The services `stack` holds in this tree (Topology.services_of; none when the tree
        has no such stack)."""
        topology = self.topology(stack.environment)
        return topology.services_of(stack) if topology is not None else ()

    def stacks_of_file(self, name: str) -> tuple[FleetStack, ...]:
        """What `Pulumi.<name>.yaml` configures: an environment's stacks (its platform's
        settings reach them all), or one shard stack (a shard's own file), or, for a file that
        names no stack of the tree, every stack of the environment its name extends."""
        if name in self.environments:
            return self.stacks(name)
        extended = [e for e in self.environments
                    if ownership.shard_of_stack(name, e) is not None]
        for environment in extended:
            own = tuple(s for s in self.stacks(environment) if s.name == name)
            if own:
                return own
        return tuple(s for e in extended for s in self.stacks(e))

    def services(self, environment: str, names: Iterable[str]) -> dict[str, FleetStack]:
        """Each of `names` in `environment` -> its stack (absent: not in the environment)."""
        if environment not in self.environments:
            return {}
        names = set(names)
        found = self._services.setdefault(environment, {})
        looked = self._looked.setdefault(environment, set())
        if names - looked:
            with self._reading():
                found.update(service_stacks(self.project_dir, environment, sorted(names - looked)))
            looked |= names
        return {n: found[n] for n in sorted(names) if n in found}

    @contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except StackFileError as exc:
            raise AffectedError(f"{exc} (in {self.label}). Fix: correct that file.") from None

    def unreadable(self, service: str) -> list[str]:
        """Why a service's files do not read (`file: problem`), in any environment."""
        prefix = ownership.service_directory(service)
        found: dict[str, None] = {}
        for environment in self.environments:
            with self._reading():
                inputs = read_inputs(self.project_dir, environment, services=[service])
            found.update({f"{printable(p[1])}: {printable(p[2])}": None
                          for p in inputs.read_problems if str(p[1]).startswith(prefix)})
        return list(found)


@dataclass(frozen=True)
class AffectedStack:
    stack: FleetStack
    paths: tuple[str, ...]  # the changed paths that reach it
    # the services it holds in the working tree; None: not asked (reading them reads the
    # environment's whole catalog, which a one-service change otherwise never does)
    services: tuple[str, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        held = {} if self.services is None else {"services": list(self.services)}
        return {**self.stack.as_dict(), "paths": [shown(p) for p in self.paths], **held}


@dataclass(frozen=True)
class Affected:
    base: str  # the ref as given ("" for --all)
    commit: str  # the commit compared with (the branch point)
    stacks: tuple[AffectedStack, ...]  # by environment, the platform stack first
    paths: Mapping[str, Scope] = field(default_factory=dict)  # each changed path

    def as_dict(self) -> dict[str, Any]:
        return {"base": self.base, "commit": self.commit,
                "stacks": [s.as_dict() for s in self.stacks],
                "paths": [{"path": shown(p), "scope": s.kind, "why": s.why}
                          for p, s in self.paths.items()]}

    def matrix(self) -> dict[str, Any]:
        """A GitHub Actions matrix (`fromJSON`): one `include` entry per stack, with the
        GitHub environment its `pulumi up` runs in (the only one its deploy role trusts)."""
        return {"include": [{**s.stack.as_dict(), "github_environment":
                             ownership.github_deploy_environment(s.stack.name)}
                            for s in self.stacks]}


def resolve(scopes: Mapping[str, Scope], trees: Sequence[TreeTopology]) -> list[AffectedStack]:
    """The stacks each scope reaches in any of the trees, with the paths that reach them."""
    reached: dict[FleetStack, set[str]] = {}

    def add(stacks: Iterable[FleetStack], path: str) -> None:
        for stack in stacks:
            reached.setdefault(stack, set()).add(path)

    for path, scope in scopes.items():
        for tree in trees:
            if scope.kind == "every":
                for environment in tree.environments:
                    add(tree.stacks(environment), path)
            elif scope.kind == "environment":
                add(tree.stacks_of_file(scope.environment or ""), path)
            elif scope.kind == "service":
                wanted = [scope.environment] if scope.environment else tree.environments
                for environment in wanted:
                    add(tree.services(environment, [scope.service or ""]).values(), path)
        if scope.kind == "service":
            add(rights_changed(scope, trees), path)
    order = {"platform": 0, "shard": 1}
    return [AffectedStack(s, tuple(sorted(reached[s])))
            for s in sorted(reached, key=lambda s: (s.environment, order[s.kind], s.name))]


def rights_changed(scope: Scope, trees: Sequence[TreeTopology]) -> list[FleetStack]:
    """The platform stacks whose shard deploy rights a service's change rewrites: the rights
    name each service of a shard (docs/fleet.md, Per-shard deploy rights), so a service that
    comes into a shard, leaves one or moves between two changes its environment's platform
    stack too, which the deploy order then runs before the shard."""
    environments = ([scope.environment] if scope.environment
                    else sorted({e for tree in trees for e in tree.environments}))
    out = []
    for environment in environments:
        homes = {tuple(tree.services(environment, [scope.service or ""]).values())
                 for tree in trees}
        if len(homes) > 1 and any(s.kind == "shard" for home in homes for s in home):
            out.append(platform_stack(environment))
    return out


def unmapped_problems(scopes: Mapping[str, Scope], stacks: Sequence[AffectedStack],
                      head: TreeTopology) -> list[str]:
    """Why changed services that reach no stack do not: their files do not read. (A service
    removed from an environment, or from the catalog, reaches none and has no problem.)"""
    reached = {p for s in stacks for p in s.paths}
    silent = sorted({s.service for p, s in scopes.items()
                     if s.kind == "service" and s.service and p not in reached})
    return [problem for service in silent for problem in head.unreadable(service)]


def holding(stacks: Iterable[AffectedStack], tree: TreeTopology) -> tuple[AffectedStack, ...]:
    """The stacks, each with the services it holds in `tree`."""
    return tuple(replace(s, services=tree.held(s.stack)) for s in stacks)


def affected(project_dir: Path, base_ref: str, *, services: bool = False) -> Affected:
    """The stacks that the difference between `base_ref` (its branch point with HEAD) and the
    working tree touches, in the base's topology and in the working tree's; with `services`,
    each with the services it holds in the working tree."""
    project_dir = Path(project_dir)
    base = branch_point(resolve_base(project_dir, base_ref, option="--base"), project_dir)
    paths = changed_files(base, project_dir)
    with tempfile.TemporaryDirectory(prefix="configplane-affected-") as tmp:
        old = TreeTopology(materialise(base, Path(tmp) / "project"), f"the base {base.commit[:12]}")
        new = TreeTopology(project_dir)
        known = {*old.environments, *new.environments}
        scopes = {p: scope_of(p, known) for p in paths}
        stacks = resolve(scopes, (old, new))
        problems = unmapped_problems(scopes, stacks, new)
        if services and not problems:
            stacks = list(holding(stacks, new))
    if problems:
        raise AffectedError("a changed service maps to no stack because its files do not "
                            "read: " + "; ".join(problems[:5]) + ". Fix: correct the file "
                            "(`configplane validate` lists every problem).")
    return Affected(base_ref, base.commit, tuple(stacks), scopes)


def every_stack(project_dir: Path, *, services: bool = False) -> Affected:
    """Every stack of every environment (the scheduled drift check, a deploy by hand); with
    `services`, each with the services it holds."""
    tree = TreeTopology(Path(project_dir))
    stacks = [AffectedStack(s, ()) for e in tree.environments for s in tree.stacks(e)]
    return Affected("", "", holding(stacks, tree) if services else tuple(stacks))


def select(result: Affected, environments: Sequence[str] = (), kinds: Sequence[str] = ()
           ) -> Affected:
    """Only the stacks of these environments and kinds (empty: all)."""
    kept = tuple(s for s in result.stacks
                 if (not environments or s.stack.environment in environments)
                 and (not kinds or s.stack.kind in kinds))
    return Affected(result.base, result.commit, kept, result.paths)
