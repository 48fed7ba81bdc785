"""`configplane affected`: the stacks a change touches, as a table, JSON or a GitHub Actions
matrix. The mapping is configplane.ops.affected; this module checks the options and renders."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.table import Table

from configplane.cli.boundary import UserError, Verb, emit, plain_console
from configplane.cli.commands.options import PROJECT_DIR_OPTION
from configplane.model import environments, printable
from configplane.ops import (
    MATRIX_LIMIT,
    Affected,
    AffectedError,
    GitRefError,
    affected,
    every_stack,
    select,
)


def _table(data: dict) -> None:
    console = plain_console()
    stacks = data["stacks"]
    against = f" (changes since {data['base']}, {data['commit'][:12]})" if data["base"] else ""
    grid = Table(title=f"{len(stacks)} stack(s){against}")
    for column in ("stack", "environment", "kind", "because of"):
        grid.add_column(column, overflow="fold")
    for s in stacks:
        paths = s["paths"]
        why = "" if not paths else paths[0] + (f" (+{len(paths) - 1} more)" if len(paths) > 1 else "")
        grid.add_row(s["stack"], s["environment"], s["kind"], printable(why))
    console.print(grid)
    if data["paths"]:
        changed = Table(title=f"{len(data['paths'])} changed file(s)")
        for column in ("path", "reaches", "why"):
            changed.add_column(column, overflow="fold")
        for p in data["paths"]:
            changed.add_row(printable(p["path"]), p["scope"], p["why"])
        console.print(changed)


@click.command("affected", cls=Verb)
@click.option("--base", "base", metavar="GIT-REF",
              help="The branch or commit the change is based on; compared from where HEAD "
                   "branched off it (git diff BASE...HEAD) plus the working tree.")
@click.option("--all", "every", is_flag=True,
              help="Every stack of every environment (no git): the drift check, a full deploy.")
@click.option("--environment", "wanted", multiple=True, metavar="ENV",
              help="Only the stacks of this environment (repeatable).")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(["platform", "shard"]),
              help="Only platform stacks or only shard stacks (repeatable).")
@PROJECT_DIR_OPTION
@click.option("--format", "fmt", type=click.Choice(["table", "json", "github-matrix"]),
              default="table", show_default=True,
              help="github-matrix: one line of JSON, {\"include\": [{stack, environment, kind, "
                   "shard, github_environment}, ...]}, for a job's `strategy.matrix: "
                   "${{ fromJSON(...) }}` (github_environment: where its `pulumi up` runs).")
@click.option("--services", "with_services", is_flag=True,
              help="With --format json: each stack also lists `services`, those it holds in "
                   "the working tree (reads each listed environment's whole catalog, which the "
                   "mapping itself avoids).")
def command(base: str | None, every: bool, wanted: tuple[str, ...], kinds: tuple[str, ...],
            project_dir: Path, fmt: str, with_services: bool) -> None:
    """List the stacks a change touches. A service's files reach its shard stack in each
    environment it is in (its overlay only that environment's), a stack file its environment's
    platform stack and shards, what every stack reads (Pulumi.yaml, services/defaults.yaml,
    components, policies, schemas, the program) every stack. Deleted services and changed
    owners count in the base's topology as well as the working tree's.

    Example: configplane affected --base origin/main --format github-matrix
    """
    if every == (base is not None):
        raise UserError("give either --base GIT-REF (the stacks a change touches) or --all "
                        "(every stack). Fix: e.g. configplane affected --base origin/main.")
    known = environments(project_dir)
    unknown = [e for e in wanted if e not in known]
    if unknown:
        raise UserError(f"--environment {printable(unknown[0])!r}: no such environment (no "
                        f"Pulumi.<env>.yaml). Fix: use one of: {', '.join(known) or 'none'}.")
    if with_services and fmt != "json":
        raise UserError("--services lists each stack's services in the JSON output. Fix: add "
                        "--format json.")
    try:
        result: Affected = (every_stack(project_dir, services=with_services) if every
                            else affected(project_dir, base or "", services=with_services))
    except (AffectedError, GitRefError) as exc:
        raise UserError(str(exc)) from None
    result = select(result, wanted, kinds)
    if fmt == "github-matrix":
        if len(result.stacks) > MATRIX_LIMIT:
            raise UserError(f"{len(result.stacks)} stacks: a GitHub Actions matrix runs at most "
                            f"{MATRIX_LIMIT} jobs. Fix: one matrix per environment "
                            "(--environment ENV) or per kind (--kind).")
        sys.stdout.write(json.dumps(result.matrix(), separators=(",", ":")) + "\n")
        return
    emit(result.as_dict(), fmt, _table)
