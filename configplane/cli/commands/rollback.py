"""`configplane rollback`: what to run to point a service back at an earlier config generation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from configplane.cli.boundary import FORMAT_OPTION, UserError, Verb, emit, plain_console, redactor
from configplane.cli.commands.options import PROJECT_DIR_OPTION, STACK_OPTION
from configplane.cli.commands.validate import report
from configplane.inputs import StackFileError, read_stack_files
from configplane.model import InvalidStack, StackModel
from configplane.ops import (
    LISTING_COMMAND,
    Generation,
    ListingError,
    RollbackError,
    parse_configmaps,
    parse_workloads,
    rollback_commands,
)
from configplane.projectfiles import ProjectFileError, read_argument, shown
from configplane.validation import issues_of, load_stack

CONFIGMAPS_OPTION = click.option(
    "--configmaps", "configmaps_file", required=True,
    type=click.Path(dir_okay=False, allow_dash=True, path_type=str),
    help=f"The live ConfigMaps: a file with the output of `{LISTING_COMMAND}`, or - for stdin.",
)


def read_input(path: str, what: str) -> tuple[str, str]:
    """(text, name to show) of a file argument, `-` being stdin; a clean error otherwise. A
    listing is foreign text: what the detector finds in it is never printed (names, kinds)."""
    if path == "-":
        text, source = click.get_text_stream("stdin").read(), "(stdin)"
    else:
        text, source = _read_file(path, what), path
    redactor().foreign(text)
    return text, source


def _read_file(path: str, what: str) -> str:
    try:  # bounded: a regular file's size is checked before it is read
        return read_argument(path).decode("utf-8")
    except ProjectFileError as exc:
        raise UserError(f"{exc} (expected {what})") from None
    except FileNotFoundError:
        raise UserError(f"{shown(path)}: no such file. Fix: save {what} to it first, or pass - "
                        "to read stdin.") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise UserError(f"{shown(path)}: cannot be read ({reason}). Fix: pass {what}.") from None


def load_model(project_dir: Path, stack: str, fmt: str) -> StackModel:
    """The validated stack; an invalid one is reported as `validate` does, exit 1."""
    try:
        return load_stack(read_stack_files(project_dir, stack), project_dir / "schemas")
    except (StackFileError, InvalidStack) as exc:
        report(stack, issues_of(exc, stack), fmt)
        raise SystemExit(1) from None


def read_generations(path: str, model: StackModel) -> list[Generation]:
    """The listing's generations that belong to this stack's environment."""
    text, source = read_input(path, f"the output of `{LISTING_COMMAND}`")
    try:
        generations = parse_configmaps(text, source)
    except ListingError as exc:
        raise UserError(str(exc)) from None
    return [g for g in generations if g.environment in ("", model.environment)]


def current_generations(model: StackModel) -> dict[tuple[str, str], str]:
    """(namespace, ConfigMap base name) -> the hash the stack declares now."""
    current = {}
    for svc in model.services.values():
        for cm in (svc.config, *svc.tenants.values()):
            current[(svc.namespace, cm.base_name)] = cm.hash
    return current


@click.command("rollback", cls=Verb)
@STACK_OPTION
@click.argument("service")
@click.option("--to", "to_hash", metavar="HASH",
              help="The generation to go back to (default: the one before the current).")
@click.option("--tenant", help="Roll back this tenant's ConfigMap instead of the service's.")
@CONFIGMAPS_OPTION
@click.option("--workload", "workload_file",
              type=click.Path(dir_okay=False, allow_dash=True, path_type=str),
              help="The workload as `kubectl get deployment/<name> -n <ns> -o json` prints it: "
                   "then the answer is an exact patch of its ConfigMap references.")
@PROJECT_DIR_OPTION
@FORMAT_OPTION
def command(stack: str, service: str, to_hash: str | None, tenant: str | None,
            configmaps_file: str, workload_file: str | None, project_dir: Path,
            fmt: str) -> None:
    """Say exactly what to run to point SERVICE back at an earlier config generation.

    Previous generations stay in the cluster (hash-named ConfigMaps are retained on delete);
    this command checks that the target is there and intact (its data hashes to its name)
    and prints the commands: `kubectl rollout undo` for the previous generation, or, with
    --workload, a JSON patch of the workload's ConfigMap references and its pod template's
    checksum/config annotation. It runs nothing. Exit 1 when the target does not exist.

    Example: configplane rollback --stack prod api --configmaps cms.json --workload api.json
    """
    model = load_model(project_dir, stack, fmt)
    svc = model.services.get(service)
    if svc is None:
        raise UserError(f"unknown service {service!r} in stack {stack}. Fix: use one of "
                        f"{', '.join(sorted(model.services))}.")
    cm = svc.config
    if tenant is not None:
        if tenant not in svc.tenants:
            known = ", ".join(sorted(svc.tenants)) or "none"
            raise UserError(f"service {service} has no tenant {tenant!r} in stack {stack}. "
                            f"Fix: use one of: {known}.")
        cm = svc.tenants[tenant]
    generations = read_generations(configmaps_file, model)
    workload = None
    if workload_file is not None:
        text, source = read_input(workload_file, "the workload's `kubectl get ... -o json`")
        try:
            objects = parse_workloads(text, source)
        except ListingError as exc:
            raise UserError(str(exc)) from None
        if len(objects) != 1:
            raise UserError(f"{source}: holds {len(objects)} objects; --workload takes one. Fix: "
                            f"`kubectl get deployment/{service} -n {svc.namespace} -o json`.")
        workload = objects[0]
    try:
        result = rollback_commands(generations, base=cm.base_name, namespace=svc.namespace,
                                   current_hash=cm.hash, service=service, to_hash=to_hash,
                                   workload=workload)
    except RollbackError as exc:
        raise UserError(str(exc)) from None
    emit({"stack": stack, "service": service, "tenant": tenant, **result}, fmt, render_table)


def render_table(data: Mapping[str, Any]) -> None:
    out = plain_console()
    who = data["service"] + (f" (tenant {data['tenant']})" if data["tenant"] else "")
    out.print(f"stack {data['stack']}, {who}: generations of {data['configmap']} in "
              f"{data['namespace']}, newest first")
    for g in data["generations"]:
        mark = "current" if g["current"] else "<- target" if g["target"] else ""
        out.print(f"  {g['hash']}  {g['created']}  {mark}".rstrip())
    out.print(f"roll {data['workload']} back to {data['target']['configmap']}: run")
    for line in data["commands"]:
        out.print(f"  {line}")
    out.print("then check")
    status, annotation = data["verify"]
    out.print(f"  {status}")
    out.print(f"  {annotation}  # prints {data['verify_prints']}")
    if data.get("caveat"):
        out.print(f"note: {data['caveat']}")
