"""`configplane diff`: environment parity between two stacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from configplane.cli.boundary import (
    FORMAT_OPTION,
    UserError,
    Verb,
    emit,
    plain_console,
    print_table,
    protect_stack,
)
from configplane.cli.commands.options import PROJECT_DIR_OPTION
from configplane.inputs import PROJECT_FILE
from configplane.model import StackModel
from configplane.ops import PARITY_KEY, ParityConfigError, compare, load_expectations
from configplane.validation import load_or_issues
from configplane.wording import count

MARKS = {"same": "", "expected": "expected", "unexpected": "DIFFERS"}


@click.command("diff", cls=Verb)
@click.option("--stack", "stacks", multiple=True, required=True,
              help="A stack to compare; give it twice (--stack staging --stack prod).")
@PROJECT_DIR_OPTION
@FORMAT_OPTION
@click.option("--differences-only", is_flag=True, help="Leave out the keys that are the same.")
def command(stacks: tuple[str, ...], project_dir: Path, fmt: str, differences_only: bool) -> None:
    """Compare two stacks' services side by side (environment parity).

    Keys present on one side only are shown; secrets are compared by their spec (source,
    store, config_key, ref), never by value. What may differ between environments is declared
    once in Pulumi.yaml under `configplane:parity` (expected_differences: dotted paths, `*` for
    any key). Exit 0 when parity holds, 1 when a difference is not declared (or on bad input).

    Example: configplane diff --stack staging --stack prod --differences-only
    """
    if len(stacks) != 2 or stacks[0] == stacks[1]:
        raise UserError("give two different stacks: --stack A --stack B (e.g. --stack staging "
                        "--stack prod).")
    try:
        expectations = load_expectations(project_dir)
    except ParityConfigError as exc:
        raise UserError(str(exc)) from None
    for stack in stacks:
        protect_stack(project_dir, stack)
    a, b = (_load(project_dir, stack) for stack in stacks)
    parity = compare(a, b, expectations)
    document = parity.as_dict()
    if differences_only:
        document["services"] = {
            name: kept for name, rows in document["services"].items()
            if (kept := [r for r in rows if r["status"] != "same"])
        }
    emit(document, fmt, render_table)
    if not parity.holds:
        raise SystemExit(1)


def _load(project_dir: Path, stack: str) -> StackModel:
    model, issues = load_or_issues(project_dir, stack)
    if model is not None:
        return model
    if len(issues) == 1 and not issues[0].path:  # the file itself: missing or not YAML
        raise UserError(f"{issues[0].file}: {issues[0].message}")
    files = ", ".join(sorted({i.file for i in issues}))
    raise UserError(f"stack {stack} is not valid ({count(len(issues), 'error')} in {files}); "
                    f"diff compares valid stacks. Fix: run `configplane validate --stack {stack}` "
                    "and fix them.")


def _show(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, dict) and "source" in value and "store" in value:
        return f"secret: {value['source']}, {value['store']}"  # a whole secret spec: summarize
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _mark(row: dict[str, Any]) -> str:
    if row["status"] == "unexpected" and "only_in" in row:
        return f"ONLY IN {row['only_in'].upper()}"
    if row["status"] == "expected" and row.get("reason"):
        return f"expected: {row['reason']}"
    return MARKS[row["status"]]


def render_table(data: dict[str, Any]) -> None:
    # markup/emoji off: values like "[secret]" or ":secret:" are data, not markup.
    console = plain_console()
    a, b = data["stacks"]
    for service, rows in data["services"].items():
        # keep paths whole; values and reasons fold on a terminal
        print_table(console, f"service {service}", ("key", a, b, "parity"),
                    [(row["path"] or "(service)", _show(row[a]), _show(row[b]), _mark(row))
                     for row in rows], whole=("key",))
    summary = data["summary"]
    for note in data["notes"]:
        console.print(f"note: {note}")
    if data["parity"]:
        console.print(f"parity holds between {a} and {b}: "
                      f"{count(summary['expected'], 'expected difference')}, "
                      f"{count(summary['same'], 'key')} the same")
    else:
        console.print(f"parity broken between {a} and {b}: "
                      f"{count(summary['unexpected'], 'unexpected difference')}. "
                      f"Fix: align the values, or declare the path under "
                      f"`{PARITY_KEY}` expected_differences in {PROJECT_FILE}.")
