"""`configplane shard plan`: split an environment's one stack into its platform stack and
shards by moving state, never by destroying anything (docs/fleet.md, Moving)."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from configplane.cli.boundary import FORMAT_OPTION, UserError, Verb, emit, plain_console, protect_stack
from configplane.cli.commands.options import PROJECT_DIR_OPTION, STACK_OPTION
from configplane.cli.commands.validate import report
from configplane.cli.installed import require_extra
from configplane.inputs import StackFileError
from configplane.model import InvalidStack, TopologyError, environment_topology
from configplane.validation import issues_of


@click.group("shard")
def command() -> None:
    """The environment's shard stacks (docs/fleet.md).

    Example: configplane shard plan --stack prod
    """


@command.command("plan", cls=Verb)
@STACK_OPTION
@PROJECT_DIR_OPTION
@FORMAT_OPTION
def plan(stack: str, project_dir: Path, fmt: str) -> None:
    """Print the commands that move an environment's one stack into its platform stack and
    shard stacks: per shard, `pulumi state move` (Pulumi >= 3.120) with the top-level URNs
    whose subtrees it takes, and the `pulumi config cp`/`rm` that move a shard's secure values
    into its own stack file. Computed from two offline plans of the same program (the
    environment as one stack, and each stack of the split); exit 1 when a resource would be
    created or deleted by the split. Nothing is run.

    Example: configplane shard plan --stack prod --format json
    """
    require_extra("plan", "shard plan")  # two offline plans of the program
    from configplane.offline import MIN_PULUMI, PolicyPackError, split_environment

    protect_stack(project_dir, stack)
    try:
        if not environment_topology(project_dir, stack).sharded:
            raise UserError(f"environment `{stack}` is one stack (no platform.shards). Fix: set "
                            "platform.shards in Pulumi.yaml or the stack file first.")
        split = split_environment(project_dir, stack)
    except (StackFileError, InvalidStack) as exc:
        report(stack, issues_of(exc, stack), fmt)
        raise SystemExit(1) from None
    except (TopologyError, PolicyPackError) as exc:
        raise UserError(str(exc)) from None
    data = split.as_dict()

    def table(data: dict) -> None:
        out = plain_console()
        out.print(f"# split {data['environment']} (pulumi >= {MIN_PULUMI}); "
                  f"{data['stays_in_platform_stack']} resources stay in stack "
                  f"{data['environment']}")
        for move in data["moves"]:
            out.print(f"pulumi stack init {shlex.quote(move['dest'])}  # if it does not exist")
        for argv in data["config"]:
            out.print(shlex.join(argv))
        for move in data["moves"]:
            out.print(f"# {move['dest']}: {move['resources']} resources")
            out.print(shlex.join(move["argv"]))
        for problem, key in (("would be deleted", "unmatched_old"),
                             ("would be created", "unmatched_new")):
            for urn in data[key]:
                out.print(f"# ERROR: {urn} {problem} by the split")

    emit(data, fmt, table)
    if data["unmatched_old"] or data["unmatched_new"]:
        raise SystemExit(1)
