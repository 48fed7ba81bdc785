"""`configplane prune`: the `kubectl delete` commands for config generations beyond the keep count."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from configplane.cli.boundary import FORMAT_OPTION, UserError, Verb, emit, plain_console
from configplane.cli.commands.options import PROJECT_DIR_OPTION, STACK_OPTION
from configplane.cli.commands.rollback import (
    CONFIGMAPS_OPTION,
    current_generations,
    load_model,
    read_generations,
    read_input,
)
from configplane.ops import (
    WORKLOADS_COMMAND,
    ListingError,
    delete_command,
    in_use,
    parse_workloads,
    prune_decisions,
)


@click.command("prune", cls=Verb)
@STACK_OPTION
@CONFIGMAPS_OPTION
@click.option("--keep", type=click.IntRange(min=1),
              help="Generations to keep per ConfigMap (default: platform.config_history.keep).")
@click.option("--workloads", "workloads_file",
              type=click.Path(dir_okay=False, allow_dash=True, path_type=str),
              help=f"Also keep what workloads and their rollout history use: the output of "
                   f"`{WORKLOADS_COMMAND}`.")
@PROJECT_DIR_OPTION
@FORMAT_OPTION
def command(stack: str, configmaps_file: str, keep: int | None, workloads_file: str | None,
            project_dir: Path, fmt: str) -> None:
    """Print the `kubectl delete` commands for config generations beyond the keep count.

    Per ConfigMap (a service's, or a tenant's), keeps the current generation (the one the
    stack declares), the N newest by creation time and, with --workloads, every generation a
    workload, ReplicaSet or ControllerRevision still references (`kubectl rollout undo` needs
    those); prints one delete command per older generation, nothing else, on stdout (what is
    kept goes to stderr). Only ConfigMaps the stack declares, in its services' namespaces,
    are considered: flags ConfigMaps, other stacks' and other namespaces' are never listed.
    Every name is checked whole and each command is an argv joined for the shell (`--format
    json` also gives the argv lists). It deletes nothing itself: review, then pipe to sh.

    Example: configplane prune --stack prod --configmaps cms.json --keep 5 | sh
    """
    model = load_model(project_dir, stack, fmt)
    keep = keep or model.platform.config_history.keep
    generations = read_generations(configmaps_file, model)
    used: set[tuple[str, str]] = set()
    if workloads_file is not None:
        text, source = read_input(workloads_file, f"the output of `{WORKLOADS_COMMAND}`")
        try:
            used = in_use(parse_workloads(text, source))
        except ListingError as exc:
            raise UserError(str(exc)) from None
    decisions = prune_decisions(generations, current_generations(model), keep, used)
    deleted = [d for d in decisions if not d.keep]
    argv = [delete_command(d.generation) for d in deleted]
    emit({
        "stack": stack,
        "keep": keep,
        "delete": [d.generation.as_dict() for d in deleted],
        "kept": [d.as_dict() for d in decisions if d.keep],
        "commands": [shlex.join(a) for a in argv],  # for sh
        "argv": argv,  # for tools: run each as it is, no shell
    }, fmt, render_table)


def render_table(data: Mapping[str, Any]) -> None:
    """stdout: only the commands, so the output can be piped to sh; the rest to stderr."""
    out, err = plain_console(), plain_console(stderr=True)
    for g in data["kept"]:
        err.print(f"# keep {g['namespace']}/{g['configmap']} ({g['reason']})")
    for line in data["commands"]:
        out.print(line)
    err.print(f"# {len(data['commands'])} to delete, {len(data['kept'])} kept "
              f"(keep {data['keep']} per ConfigMap)")
