"""The click options the commands share: --stack, --service and --project-dir (the last two
also make the command's run: configplane.cli.boundary.Verb)."""

from __future__ import annotations

from pathlib import Path

import click

STACK_OPTION = click.option("--stack", "stack", required=True, help="Stack name (dev, staging, prod).")


PROJECT_DIR_OPTION = click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory with Pulumi.yaml and the stack files.",
)


SERVICE_OPTION = click.option(
    "--service", "services", multiple=True, metavar="NAME",
    help="Only this service (repeatable): its files, the fleet defaults and the platform; the "
         "same verdicts as the whole stack gives it, in a fraction of the time.")
