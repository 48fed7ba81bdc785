"""`configplane validate`: check a stack's configuration without running anything."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from configplane.cliutil import FORMAT_OPTION, emit, plain_console
from configplane.stack import InvalidStack, Issue, StackModel, load_stack
from configplane.stackfiles import StackFileError, read_stack_files, stack_file_name

STACK_OPTION = click.option("--stack", "stack", required=True, help="Stack name (dev, staging, prod).")
PROJECT_DIR_OPTION = click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory with Pulumi.yaml and the stack files.",
)


def load_or_issues(project_dir: Path, stack: str) -> tuple[StackModel | None, list[Issue]]:
    """The validated stack, or every problem found (an unreadable file is one problem)."""
    try:
        return load_stack(read_stack_files(project_dir, stack), project_dir / "schemas"), []
    except (StackFileError, InvalidStack) as exc:
        return None, issues_of(exc, stack)


def issues_of(exc: StackFileError | InvalidStack, stack: str) -> list[Issue]:
    """The problems behind a stack that cannot be loaded (an unreadable file is one)."""
    if isinstance(exc, InvalidStack):
        return exc.issues
    file = str(exc).split(":", 1)[0] or stack_file_name(stack)
    return [Issue("", file, str(exc).split(": ", 1)[-1] + ". Fix: check --stack and --project-dir.")]


def report(stack: str, issues: list[Issue], fmt: str) -> None:
    data = {"stack": stack, "valid": not issues, "errors": [i.as_dict() for i in issues]}

    def table(data: dict) -> None:
        console = plain_console()
        if data["valid"]:
            console.print(f"stack {stack}: configuration is valid")
            return
        grid = Table(title=f"stack {stack}: {len(issues)} error(s)", show_lines=False)
        for column in ("file", "path", "problem and fix"):
            grid.add_column(column, overflow="fold")
        for issue in issues:
            grid.add_row(issue.file, issue.path, issue.message)
        console.print(grid)

    emit(data, fmt, table)


@click.command("validate")
@STACK_OPTION
@PROJECT_DIR_OPTION
@FORMAT_OPTION
def command(stack: str, project_dir: Path, fmt: str) -> None:
    """Validate a stack's layered configuration against the schemas.

    Config values that look like plaintext secrets (the policy pack's detector) are errors too.
    Exit 0 when valid, 1 when not; every error names its file, key path and fix.

    Example: configplane validate --stack prod --format json
    """
    model, issues = load_or_issues(project_dir, stack)
    if model is not None:
        from configplane.plaintext import plaintext_issues  # the pack's detector, loaded lazily

        issues = plaintext_issues(model)
    report(stack, issues, fmt)
    if issues:
        raise SystemExit(1)
