"""`configplane validate`: check a stack's configuration without running anything."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import click
from rich.table import Table

from configplane.catalog import read_inputs
from configplane.cliutil import FORMAT_OPTION, emit, plain_console, protect_stack
from configplane.pack import use_project_dir
from configplane.stack import load_stack
from configplane.stackfiles import PROJECT_FILE, StackFileError, stack_file_name
from configplane.stackmodel import InvalidStack, Issue, StackModel

STACK_OPTION = click.option("--stack", "stack", required=True, help="Stack name (dev, staging, prod).")
def _project_dir(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    use_project_dir(value)  # the project's pack holds the detector every command uses
    return value


PROJECT_DIR_OPTION = click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    callback=_project_dir,
    help="Directory with Pulumi.yaml and the stack files.",
)


SERVICE_OPTION = click.option(
    "--service", "services", multiple=True, metavar="NAME",
    help="Only this service (repeatable): its files, the fleet defaults and the platform; the "
         "same verdicts as the whole stack gives it, in a fraction of the time.")


def load_or_issues(project_dir: Path, stack: str, services: Iterable[str] | None = None
                   ) -> tuple[StackModel | None, list[Issue]]:
    """The validated stack, or every problem found (an unreadable file is one problem).
    With `services`, only those services are read and checked."""
    try:
        inputs = read_inputs(project_dir, stack, services=services)
        missing = sorted(set(services or ()) - set(inputs.service_layers))
        if missing:
            return None, [Issue(f"services.{name}", f"services/{name}/", f"service `{name}` is "
                                f"not in stack {stack}. Fix: check the name (services/<name>/ "
                                "with service.yaml or <stack>.yaml).") for name in missing]
        return load_stack(inputs, project_dir / "schemas"), []
    except (StackFileError, InvalidStack) as exc:
        return None, issues_of(exc, stack)
    except UnicodeDecodeError as exc:
        return None, [undecodable(project_dir, stack, exc)]


def undecodable(project_dir: Path, stack: str, exc: UnicodeDecodeError) -> Issue:
    """The file that is not UTF-8 (the loader only says that one is not)."""
    for name in (PROJECT_FILE, stack_file_name(stack)):
        try:
            (project_dir / name).read_bytes().decode("utf-8")
        except UnicodeDecodeError as found:
            exc = found
            break
        except OSError:
            continue
    else:
        name = stack_file_name(stack)
    byte = exc.object[exc.start:exc.start + 1].hex()
    return Issue("", name, f"not UTF-8 text (byte 0x{byte} at offset {exc.start}). Fix: save "
                 "the file as UTF-8.")


def issues_of(exc: StackFileError | InvalidStack, stack: str) -> list[Issue]:
    """The problems behind a stack that cannot be loaded (an unreadable file is one)."""
    if isinstance(exc, InvalidStack):
        return exc.issues
    if exc.problem is not None:
        fix = "" if "Fix:" in exc.problem else ". Fix: check --stack and --project-dir."
        return [Issue("", exc.file or stack_file_name(stack), exc.problem + fix, exc.line)]
    file = str(exc).split(":", 1)[0] or stack_file_name(stack)
    return [Issue("", file, stack_file_problem(exc))]


def stack_file_problem(exc: StackFileError) -> str:
    """The message of an unreadable file, with the fix that fits it: a missing file is the
    wrong --stack or --project-dir; anything else is the file's content."""
    text = str(exc).split(": ", 1)[-1].rstrip(".")
    if "Fix:" in text:
        return text
    if "not found" in text or "No such file" in text:
        return f"{text}. Fix: check --stack and --project-dir."
    return f"{text}. Fix: correct the file at the place shown."


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
            grid.add_row(issue.where, issue.path, issue.message)
        console.print(grid)

    emit(data, fmt, table)


@click.command("validate")
@STACK_OPTION
@SERVICE_OPTION
@PROJECT_DIR_OPTION
@FORMAT_OPTION
def command(stack: str, services: tuple[str, ...], project_dir: Path, fmt: str) -> None:
    """Validate a stack's layered configuration against the schemas.

    Exit 0 when valid, 1 when not; every error names its file (and line), key path and fix.
    Also checks that the stack config the Pulumi CLI would pass (PULUMI_CONFIG) stays well
    under Linux's 128 KiB limit for one environment variable.

    Example: configplane validate --stack prod --service api --format json
    """
    protect_stack(project_dir, stack)
    _, issues = load_or_issues(project_dir, stack, services or None)
    report(stack, issues, fmt)
    if issues:
        raise SystemExit(1)
