"""The click options the commands share: --stack, --service and --project-dir (the last two
also make the command's run: configplane.cli.boundary.Verb)."""

from __future__ import annotations

from pathlib import Path

import click

STACK_OPTION = click.option("--stack", "stack", required=True, help="Stack name (dev, staging, prod).")


def _project_dir(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path:
    if value is None:  # as the Pulumi CLI does: the nearest Pulumi.yaml from here up
        from configplane.inputs import find_project_dir

        value = find_project_dir(Path.cwd())
    return value  # the run (its detector: the project's pack) is made from it: boundary.Verb


PROJECT_DIR_OPTION = click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    callback=_project_dir,
    help="Directory with Pulumi.yaml and the stack files.  [default: the nearest directory "
         "with a Pulumi.yaml, from here up]",
)


SERVICE_OPTION = click.option(
    "--service", "services", multiple=True, metavar="NAME",
    help="Only this service (repeatable): its files, the fleet defaults and the platform; the "
         "same verdicts as the whole stack gives it, in a fraction of the time.")


SHARD_OPTION = click.option(
    "--shard", "shards", multiple=True, metavar="NAME",
    help="Only this shard of the environment (repeatable), beside its platform stack "
         "(`configplane where <service>` names a service's shard).")
