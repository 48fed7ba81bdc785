"""`configplane codeowners`: .github/CODEOWNERS from the catalog's owners."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from configplane.cli.boundary import UserError, Verb
from configplane.cli.commands.options import PROJECT_DIR_OPTION
from configplane.ops import CODEOWNERS, OwnersError, codeowners
from configplane.projectfiles import is_file, read_text, write_files


@click.command("codeowners", cls=Verb)
@PROJECT_DIR_OPTION
@click.option("--write", is_flag=True, help=f"Write {CODEOWNERS} (default: print it).")
@click.option("--check", is_flag=True, help=f"Exit 1 when {CODEOWNERS} is not current.")
def command(project_dir: Path, write: bool, check: bool) -> None:
    """Generate CODEOWNERS: each service's owners review services/<name>/, platform owners
    (services/defaults.yaml) review Pulumi.*.yaml, policies/, components/ and schemas/.

    Example: configplane codeowners --write
    """
    try:
        text = codeowners(project_dir)
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
        write_files(project_dir, {CODEOWNERS: text})  # atomic: never a truncated CODEOWNERS
        click.echo(f"wrote {CODEOWNERS}")
    else:
        sys.stdout.write(text)
