"""`configplane codeowners`: .github/CODEOWNERS from the catalog's owners."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from configplane.cli.boundary import UserError, Verb, current_run, write_files
from configplane.cli.commands.options import PROJECT_DIR_OPTION
from configplane.ops import CODEOWNERS, OwnersError, codeowners
from configplane.projectfiles import is_file, read_text


@click.command("codeowners", cls=Verb)
@PROJECT_DIR_OPTION
@click.option("--write", is_flag=True, help=f"Write {CODEOWNERS} (default: print it).")
@click.option("--check", is_flag=True, help=f"Exit 1 when {CODEOWNERS} is not current.")
def command(project_dir: Path, write: bool, check: bool) -> None:
    """Generate CODEOWNERS: each service's owners review services/<name>/, the platform owners
    (services/defaults.yaml) everything else (a catch-all: the project, the program, the pack,
    the build files, CI and tests).

    Example: configplane codeowners --write
    """
    try:
        text = codeowners(project_dir, current_run().detector)
    except OwnersError as exc:
        raise UserError(str(exc)) from None
    if check:
        current = read_text(project_dir, CODEOWNERS) if is_file(project_dir, CODEOWNERS) else ""
        if current != text:
            raise UserError(f"{CODEOWNERS} is not current. Fix: run `configplane codeowners "
                            "--write` and commit it.")
        click.echo(f"{CODEOWNERS} is current")
        return
    if write:
        # the redaction boundary as the screen, then the atomic writer: never a truncated file
        write_files(project_dir, {CODEOWNERS: text})
        click.echo(f"wrote {CODEOWNERS}")
    else:
        sys.stdout.write(text)
