"""Load a stack, or list every problem that keeps it from loading (an unreadable file, a
file that is not UTF-8, an unknown service, schema errors), each naming its file and fix."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from configplane.inputs import (
    NAMESPACE,
    PROJECT_FILE,
    StackFileError,
    collector_paused,
    read_inputs,
    stack_file_name,
)
from configplane.model import (
    InvalidStack,
    Issue,
    StackModel,
    Topology,
    TopologyError,
    environments,
    narrowed,
    related_environments,
    shard_stack_files,
    stack_role,
    topology_of,
    topology_problems,
)
from configplane.ownership import shard_stack_name
from configplane.projectfiles import ProjectFileError, read_bytes
from configplane.validation.pipeline import load_stack


def load_or_issues(project_dir: Path, stack: str, services: Iterable[str] | None = None
                   ) -> tuple[StackModel | None, list[Issue]]:
    """The validated stack, or every problem found (an unreadable file is one problem).
    With `services`, only those services are read and checked.

    `stack` is an environment (its platform stack: then the whole environment is checked, its
    shards' bounds and where each secure value lives included) or one shard `<env>-<shard>`
    (its services; configplane.model.topology)."""
    with collector_paused():
        return _load_or_issues(project_dir, stack, services)


def _load_or_issues(project_dir: Path, stack: str, services: Iterable[str] | None
                    ) -> tuple[StackModel | None, list[Issue]]:
    problems: list[Issue] = []  # the topology's, kept when the stack then fails to load
    try:
        role = stack_role(project_dir, stack)
        environment = role.environment
        shard_files = ([role.name] if role.kind == "shard"
                       else shard_stack_files(project_dir, environment))
        whole = services is None
        inputs = read_inputs(project_dir, environment, services=services,
                             shard_files=shard_files)
        missing = sorted(set(services or ()) - set(inputs.service_layers))
        if missing:
            return None, [Issue(f"services.{name}", f"services/{name}/", f"service `{name}` is "
                                f"not in stack {stack}. Fix: check the name (services/<name>/ "
                                "with service.yaml or <stack>.yaml).") for name in missing]
        topology = topology_of(inputs)
        if role.kind == "shard":
            inputs = narrowed(inputs, topology.services_of(role))
        if whole:
            known = environments(project_dir)
            problems = [Issue(*p) for p in topology_problems(
                topology, inputs.stack_file, known,
                related_topologies(project_dir, environment, known))]
        model = load_stack(inputs, project_dir / "schemas")
        problems += secure_placement_problems(model, topology, inputs.shard_secure,
                                              inputs.stack_file, inputs.values)
        if problems:
            return None, problems
        return model, []
    except (StackFileError, InvalidStack) as exc:
        return None, problems + issues_of(exc, stack)
    except TopologyError as exc:
        return None, [Issue("(stack)", stack_file_name(stack), str(exc))]
    except UnicodeDecodeError as exc:
        return None, [undecodable(project_dir, stack, exc)]


def related_topologies(project_dir: Path, environment: str, known: Iterable[str]
                       ) -> list[Topology]:
    """The topologies of the environments whose stacks' names can meet `environment`'s (none,
    unless one environment's name extends another's by `-`); one that cannot be read is left
    to its own validation."""
    out = []
    for other in related_environments(environment, known):
        try:
            out.append(topology_of(read_inputs(project_dir, other)))
        except (StackFileError, TopologyError, OSError, UnicodeDecodeError):
            continue
    return out


def run_issues(project_dir: Path, stack: str, shards: Iterable[str] = (),
               services: Iterable[str] | None = None) -> list[Issue]:
    """Every problem of what one command covers: the stack (an environment, or a shard), or
    with `shards` each of those shards of the environment `stack`; `validate` and `plan`
    judge the same inputs (their verdicts never differ)."""
    chosen = list(services) if services is not None else None
    issues: list[Issue] = []
    for name in [shard_stack_name(stack, shard) for shard in shards] or [stack]:
        issues += load_or_issues(project_dir, name, chosen)[1]
    return issues


def secure_placement_problems(model: StackModel, topology: Topology,
                              held: Mapping[str, str], environment_file: str,
                              present: Collection[str]) -> list[Issue]:
    """In a sharded environment each service's `secure` values live in its shard's stack file:
    the one a run of that shard can decrypt (docs/fleet.md)."""
    if not topology.sharded:
        return []
    out = []
    for name, svc in sorted(model.services.items()):
        stack = topology.stack_of(name)
        if stack is None:
            continue
        want = stack_file_name(stack.name)
        for key, spec in sorted(svc.spec.secrets.items()):
            if spec.source != "secure" or spec.config_key is None:
                continue
            full = f"{NAMESPACE}:{spec.config_key}"
            if full not in present:
                continue  # no value at all: the secret's own check says so
            found = held.get(full, environment_file)
            source = found.removeprefix("Pulumi.").removesuffix(".yaml")
            if found != want:
                out.append(Issue(f"services.{name}.secrets.{key}.config_key", found,
                                 f"`{spec.config_key}` is read by service `{name}`, which stack "
                                 f"{stack.name} declares; only that stack can decrypt its own "
                                 f"file. Fix: `pulumi config cp --stack {source} "
                                 f"--dest {stack.name} {full}`, then remove it from {found}."))
    return out


def undecodable(project_dir: Path, stack: str, exc: UnicodeDecodeError) -> Issue:
    """The file that is not UTF-8 (the loader only says that one is not)."""
    for name in (PROJECT_FILE, stack_file_name(stack)):
        try:
            read_bytes(project_dir, name).decode("utf-8")
        except UnicodeDecodeError as found:
            exc = found
            break
        except (OSError, ProjectFileError):
            continue
    else:
        name = stack_file_name(stack)
    byte = exc.object[exc.start:exc.start + 1].hex()
    return Issue("", name, f"not UTF-8 text (byte 0x{byte} at offset {exc.start}). Fix: save "
                 "the file as UTF-8.")


def issues_of(exc: StackFileError | InvalidStack, stack: str) -> list[Issue]:
    """The problems behind a stack that cannot be loaded (an unreadable file is one)."""
    if isinstance(exc, InvalidStack):
        return exc.issues
    if exc.problem is not None:
        fix = "" if "Fix:" in exc.problem else ". Fix: check --stack and --project-dir."
        return [Issue("", exc.file or stack_file_name(stack), exc.problem + fix, exc.line)]
    file = str(exc).split(":", 1)[0] or stack_file_name(stack)
    return [Issue("", file, stack_file_problem(exc))]


def stack_file_problem(exc: StackFileError) -> str:
    """The message of an unreadable file, with the fix that fits it: a missing file is the
    wrong --stack or --project-dir; anything else is the file's content."""
    text = str(exc).split(": ", 1)[-1]
    if "Fix:" in text:
        return text
    text = text.rstrip(".")
    if "not found" in text or "No such file" in text:
        return f"{text}. Fix: check --stack and --project-dir."
    return f"{text}. Fix: correct the file at the place shown."
