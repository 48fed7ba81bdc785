"""`configplane validate`: check a stack's configuration without running anything."""

from __future__ import annotations

from pathlib import Path

import click

from configplane.cli.boundary import (
    FORMAT_OPTION,
    Verb,
    emit,
    plain_console,
    print_table,
    protect_stack,
)
from configplane.cli.commands.options import (
    PROJECT_DIR_OPTION,
    SERVICE_OPTION,
    SHARD_OPTION,
    STACK_OPTION,
)
from configplane.model import Issue, read_clock
from configplane.validation import run_issues
from configplane.wording import count


def report(stack: str, issues: list[Issue], fmt: str) -> None:
    data = {"stack": stack, "valid": not issues, "errors": [i.as_dict() for i in issues]}

    def table(data: dict) -> None:
        console = plain_console()
        if data["valid"]:
            console.print(f"stack {stack}: configuration is valid")
            return
        print_table(console, f"stack {stack}: {count(len(issues), 'error')}",
                    ("file", "path", "problem and fix"),
                    [(issue.where, issue.path, issue.message) for issue in issues])

    emit(data, fmt, table)


@click.command("validate", cls=Verb, read_only=True)
@STACK_OPTION
@SHARD_OPTION
@SERVICE_OPTION
@PROJECT_DIR_OPTION
@FORMAT_OPTION
def command(stack: str, shards: tuple[str, ...], services: tuple[str, ...], project_dir: Path,
            fmt: str) -> None:
    """Validate a stack's layered configuration against the schemas.

    Exit 0 when valid, 1 when not; every error names its file (and line), key path and fix.
    Also checks that the stack config the Pulumi CLI would pass (PULUMI_CONFIG) stays well
    under Linux's 128 KiB limit for one environment variable.

    An environment split into stacks (docs/fleet.md) is checked whole: every service, each
    shard within its bound, each secure value in the stack file of the shard that reads it.
    --shard (or --stack <env>-<shard>) checks one shard's services.

    Example: configplane validate --stack prod --service api --format json

    Example: configplane validate --stack prod --shard payments-team
    """
    protect_stack(project_dir, stack, services or None)
    read_clock()  # CONFIGPLANE_NOW, as the program reads it: refused alike
    issues = run_issues(project_dir, stack, shards, services or None)
    report(stack, issues, fmt)
    if issues:
        raise SystemExit(1)
