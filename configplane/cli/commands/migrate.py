"""`configplane migrate`: move service definitions from Pulumi config into services/."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import click

from configplane.cli.boundary import UserError, Verb, plain_console
from configplane.cli.commands.options import PROJECT_DIR_OPTION
from configplane.ops import MigrationError, plan_migration
from configplane.projectfiles import ProjectFileError, writing


@click.command("migrate", cls=Verb)
@PROJECT_DIR_OPTION
@click.option("--write", is_flag=True, help="Write the files (default: show what would change).")
@click.option("--overwrite", is_flag=True,
              help="Replace catalog files that exist and differ (the config's definitions win).")
def command(project_dir: Path, write: bool, overwrite: bool) -> None:
    """Move service definitions out of Pulumi config into the service catalog.

    configplane:defaults.services.<name> (Pulumi.yaml) becomes services/<name>/service.yaml and
    configplane:services.<name> (Pulumi.<stack>.yaml) becomes services/<name>/<stack>.yaml;
    each subtree moves as it is (comments included where it is in block style). Plans before
    and after are identical. Without --write, nothing is written.

    Example: configplane migrate --write
    """
    try:
        with writing(project_dir) if write else nullcontext() as writer:
            migration = plan_migration(project_dir, overwrite=overwrite)
            if writer is not None and migration.writes:
                migration.apply(writer)  # all files or none; then say what was written
    except (MigrationError, ProjectFileError) as exc:
        raise UserError(str(exc)) from None
    console = plain_console()
    if not migration.writes:
        console.print("nothing to migrate: no service definitions in Pulumi config")
        return
    verb = "wrote" if write else "would write"
    for rel in migration.writes:
        console.print(f"{verb} {rel}")
    console.print(f"{len(migration.services)} service(s): {', '.join(migration.services) or '-'}")
    if not write:
        console.print("dry run: pass --write to write these files")
