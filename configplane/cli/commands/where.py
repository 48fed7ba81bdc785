"""`configplane where`: the stack that holds a service, and where its outputs are."""

from __future__ import annotations

from pathlib import Path

import click

from configplane.cli.boundary import FORMAT_OPTION, UserError, Verb, emit, plain_console
from configplane.cli.commands.options import PROJECT_DIR_OPTION
from configplane.inputs import CATALOG_DIR
from configplane.model import environments, service_stack
from configplane.ownership import is_service_name, service_directory
from configplane.projectfiles import kind_of, shown


@click.command("where", cls=Verb)
@click.argument("service")
@click.option("--stack", "stacks", multiple=True, metavar="ENV",
              help="Only this environment (repeatable); default: every environment.")
@PROJECT_DIR_OPTION
@FORMAT_OPTION
def command(service: str, stacks: tuple[str, ...], project_dir: Path, fmt: str) -> None:
    """Print the Pulumi stack that holds SERVICE in each environment, and the stack output
    its app reads. That output is `services.<name>` of that stack (`pulumi stack output
    --stack <stack> --json services`, or a StackReference). Exit 1 when no environment has it.

    Example: configplane where api --stack prod --format json
    """
    known = environments(project_dir)
    for env in stacks:
        if env not in known:
            raise UserError(f"`{env}` is not an environment (environments: "
                            f"{', '.join(known) or 'none'}). Fix: name one of them.")
    rows = []
    for env in stacks or known:
        stack = service_stack(project_dir, env, service)
        if stack is not None:
            rows.append({"service": service, "output": f"services.{service}", **stack.as_dict(),
                         "command": ["pulumi", "stack", "output", "--stack", stack.name,
                                     "--json", "services"]})
    if not rows:
        if is_service_name(service) and kind_of(project_dir, folder := service_directory(service)) == "dir":
            # its files are there but no environment could read them: validate says why
            raise UserError(f"{folder}: no environment reads `{service}` from these files. Fix: "
                            f"run `configplane validate --stack <env>` and correct what it "
                            "reports.")
        raise UserError(f"no environment has service `{shown(service)}`. Fix: check the name "
                        f"({CATALOG_DIR}/<name>/).")

    def table(data: list[dict]) -> None:
        out = plain_console()
        for row in data:
            out.print(f"{row['environment']}: stack {row['stack']} ({row['kind']}), "
                      f"output {row['output']}")

    emit(rows, fmt, table)
