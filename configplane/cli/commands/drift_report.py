"""`configplane drift-report`: a preview JSON document (+ event log) as a drift report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from configplane.cli.boundary import UserError, Verb, redactor
from configplane.cli.commands.drift_render import render
from configplane.cli.commands.options import PROJECT_DIR_OPTION
from configplane.ops import (
    EXIT_ERROR,
    DriftInputError,
    DriftReport,
    build_report,
    parse_events,
    parse_preview,
)
from configplane.projectfiles import ProjectFileError, read_argument, shown
from configplane.wording import count

REPORT_FORMAT_OPTION = click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
    help="markdown for a pull-request comment or job summary; json for tools.",
)


def read_input(name: str) -> str:
    """The text of FILE, or of stdin for `-`; unreadable input is a UserError naming it."""
    if name == "-":
        return sys.stdin.read()
    try:
        return read_argument(name).decode("utf-8")  # bounded: a regular file's size first
    except ProjectFileError as e:
        raise UserError(str(e)) from None
    except FileNotFoundError:
        raise UserError(f"{shown(name)}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{shown(name)}: cannot read it ({e.__class__.__name__})") from None


def show(report: DriftReport, fmt: str) -> None:
    """Print the report and exit with its status (0 no drift, 7 drift, 1 errors). What the
    report quotes comes from outside (diagnostics, policy messages, names and paths): the
    secrets the detector finds in it are redacted, in markdown and JSON alike."""
    redactor().foreign(report.as_dict())
    click.echo(render(report, fmt), nl=False)
    if report.exit_code == EXIT_ERROR:
        problems = []
        if report.errors:
            problems.append(f"the preview reported {count(len(report.errors), 'error')}")
        mandatory = sum(v.level == "mandatory" for v in report.violations)
        if mandatory:
            problems.append(f"{count(mandatory, 'mandatory policy violation')}")
        click.echo(f"error: {' and '.join(problems)}; see the report above", err=True)
    sys.exit(report.exit_code)


@click.command("drift-report", cls=Verb)
@click.argument("file", default="-")
@click.option(
    "--events",
    "events_file",
    metavar="FILE",
    help="The engine event log (`pulumi preview --event-log FILE`): adds policy violations "
    "and what refresh found.",
)
@PROJECT_DIR_OPTION
@REPORT_FORMAT_OPTION
def command(file: str, events_file: str | None, project_dir: Path, fmt: str) -> None:
    """Turn `pulumi preview --json` output (FILE, or - for stdin) into a drift report.

    Each changed resource is classified: drift (changed outside Pulumi), config-changed,
    secret-rotated (expected, never alarmed), replacement, deletion or creation. Secret
    values never appear. Exit status: 0 no drift (or only secret rotations), 7 changes or
    drift, 1 unreadable input, preview errors or mandatory policy violations.

    \b
    Example:
      pulumi preview --refresh --json --event-log events.jsonl > preview.json
      configplane drift-report preview.json --events events.jsonl --format markdown
    """
    source = "<stdin>" if file == "-" else file
    try:
        preview = parse_preview(read_input(file), source)
        events = parse_events(read_input(events_file), events_file) if events_file else []
    except DriftInputError as e:
        raise UserError(str(e)) from None
    show(build_report(preview, events), fmt)
