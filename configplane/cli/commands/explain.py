"""`configplane explain`: where a service's value comes from, and what it overrode."""

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
from configplane.cli.commands.options import PROJECT_DIR_OPTION, STACK_OPTION
from configplane.inputs import StackFileError, read_stack_files
from configplane.ops import ExplainError, explain
from configplane.validation import stack_file_problem


@click.command("explain", cls=Verb)
@STACK_OPTION
@click.argument("service")
@click.argument("key_path", metavar="KEY.PATH")
@click.option("--tenant", help="Explain the value this tenant's ConfigMap gets (config keys).")
@PROJECT_DIR_OPTION
@FORMAT_OPTION
def command(stack: str, service: str, key_path: str, tenant: str | None, project_dir: Path,
            fmt: str) -> None:
    """Explain a resolved value: the layer and file that set it and every value it overrode.

    KEY.PATH is relative to the service: config.LOG_LEVEL, secrets.DATABASE_PASSWORD.store,
    flags.new-checkout, tenants.acme.config.RATE_LIMIT_RPS. A bare name such as LOG_LEVEL
    means config.LOG_LEVEL, or secrets.LOG_LEVEL when there is no such config key. Layers,
    lowest first: fleet (services/defaults.yaml), service (services/<name>/service.yaml),
    environment (services/<name>/<stack>.yaml), tenant; each with the file and line that set it.
    A secret is shown as "[secret]" with its spec; its value is never read.

    Example: configplane explain --stack prod worker CONCURRENCY --tenant acme
    """
    protect_stack(project_dir, stack)
    try:
        inputs = read_stack_files(project_dir, stack)
        result = explain(inputs, service, key_path, tenant, project_dir / "schemas")
    except StackFileError as exc:
        file = str(exc).split(":", 1)[0]
        raise UserError(f"{file}: {stack_file_problem(exc)}") from None
    except ExplainError as exc:
        raise UserError(str(exc)) from None
    emit(result.as_dict(), fmt, render_table)


def _show(value: Any) -> str:
    if value is None:
        return "(deleted)"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def render_table(data: dict[str, Any]) -> None:
    # markup/emoji off: values like "[secret]" or ":secret:" are data, not markup.
    console = plain_console()
    who = f"{data['service']}" + (f" (tenant {data['tenant']})" if data["tenant"] else "")
    console.print(f"stack {data['stack']}, service {who}: {data['path']} = {_show(data['value'])}")
    if data["spec"] is not None:
        spec = ", ".join(f"{k}: {_show(v)}" for k, v in data["spec"].items()
                         if k in ("source", "store", "config_key", "ref"))
        console.print(f"  secret spec: {spec}")
    if data["secret_value"] is not None:
        console.print(f"  value: {data['secret_value']['state']}")
    if data["delivered_as"] is not None:
        console.print("  delivered as: " + ", ".join(f"{k} {v}" for k, v in data["delivered_as"].items()))
    single = len(data["entries"]) == 1 and data["entries"][0]["path"] == data["path"]
    rows = []
    for entry in data["entries"]:
        key = [] if single else [entry["path"].removeprefix(data["path"] + ".")]
        steps = [*entry["overrode"], *([entry["set_by"]] if entry["set_by"] else [])]
        for n, step in enumerate(steps):
            mark = "<- resolved" if step is entry["set_by"] else "overridden"
            if entry["set_by"] is None and n == len(steps) - 1 and step["value"] is None:
                mark = "<- deleted"
            where = f"{step['file']}:{step['line']}" if step.get("line") else step["file"]
            rows.append((*key, step["layer"], where, _show(step["value"]), mark))
    print_table(console, None, ([] if single else ["key"]) + ["layer", "file", "value", "outcome"], rows)
    for note in data["notes"]:
        console.print(f"note: {note}")
