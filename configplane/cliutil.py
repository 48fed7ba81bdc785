"""Shared pieces of the CLI shell: user errors, output formats."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

FORMAT_OPTION = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)


class UserError(click.ClickException):
    """A problem with the user's input: printed as a clean message, exit 1, no traceback."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def emit(data: Any, fmt: str, render_table: Callable[[Any], None]) -> None:
    """Print `data` as JSON, or hand it to `render_table` for people."""
    if fmt == "json":
        json.dump(data, sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
    else:
        render_table(data)


def plain_console(stderr: bool = False) -> Console:
    """A console that prints text as it is: no markup (`[secret]` stays), no emoji codes."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True, markup=False, emoji=False)
