"""`configplane plan`: the offline plan of a stack (the real program under Pulumi's mocks)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from configplane.cli.boundary import (
    UserError,
    Verb,
    emit,
    marked,
    plain_console,
    print_table,
    protect_stack,
    redactor,
    write_files,
)
from configplane.cli.commands.options import (
    PROJECT_DIR_OPTION,
    SERVICE_OPTION,
    SHARD_OPTION,
    STACK_OPTION,
)
from configplane.cli.commands.validate import report
from configplane.cli.installed import require_extra
from configplane.inputs import StackFileError
from configplane.model import InvalidStack, TopologyError, read_clock, stack_role
from configplane.projectfiles import ProjectFileError, name_problem, shown
from configplane.redaction import Redactor
from configplane.validation import issues_of, run_issues, undecodable
from configplane.wording import count

if TYPE_CHECKING:
    from configplane.offline import FleetPlan, Plan


@click.command("plan", cls=Verb, read_only=True)
@STACK_OPTION
@SHARD_OPTION
@SERVICE_OPTION
@PROJECT_DIR_OPTION
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]),
              default="table", show_default=True,
              help="Output format (markdown: with --compare, for a pull-request comment).")
@click.option("--compare", "compare_ref", metavar="GIT-REF",
              help="Also plan the project as it is at this commit (branch, tag or SHA) and "
                   "show what changes from it to the working tree, per service.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write each Kubernetes object as YAML, plus plan.json, into this directory.")
@click.option("--policy-pack-config", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Policy config file (default: policies/config/<stack>.json).")
@click.option("--no-policy", is_flag=True, help="Skip the policy pack.")
@click.option("--quiet", is_flag=True,
              help="No progress bar (there is none in CI or when stderr is not a terminal).")
def command(stack: str, shards: tuple[str, ...], services: tuple[str, ...], project_dir: Path,
            fmt: str,
            compare_ref: str | None, out: Path | None, policy_pack_config: Path | None,
            no_policy: bool, quiet: bool) -> None:
    """Show every resource `pulumi up` would create, without cloud or Pulumi CLI.

    Validates first (same messages as `validate`), then runs the project's __main__.py under
    the Pulumi SDK's mocks, and the policy pack in policies/ through the Analyzer protocol as
    `pulumi preview --policy-pack policies` would. Secret values are shown as "[secret]".
    Exit 1 on invalid configuration or any mandatory violation.

    An environment split into stacks (docs/fleet.md) plans its platform stack, then every
    shard in parallel processes (bounded by the cores), each shard reading the platform's
    planned outputs; the report lists each stack. --shard plans only that shard (and the
    platform stack it reads); --stack <env>-<shard> does the same.

    With --service, the program declares only those services (and the environment's
    shared resources), in the shards that hold them: what a service team runs before a pull
    request.

    With --compare GIT-REF, the project at that commit (materialised with `git archive`
    into a temporary directory: its own program, components, catalog and pack) and the
    working tree are both planned offline, and only what changes is shown: per service, the
    config keys (old -> new), the config hash, flags (variants, default, split), secret specs
    by metadata ("value changed" for a `secure` value, never the value), the resources to
    create, update, replace or delete, and new or resolved policy violations; the stack's
    shared resources apart. --policy-pack-config applies to the working tree; the base uses
    its own policies/config/<stack>.json.

    Example: configplane plan --stack dev --format json --out plan-out/

    Example: configplane plan --stack prod --shard payments-team

    Example: configplane plan --stack prod --compare origin/main --format markdown
    """
    require_extra("plan", "plan")
    # the Pulumi SDK (through configplane.offline): checked above
    from configplane.offline import (
        FleetSelectionError,
        PolicyPackError,
        collector_paused,
        no_collection_at_exit,
        plan_environment,
        run_plan,
    )

    protect_stack(project_dir, stack, services or None)
    read_clock()  # CONFIGPLANE_NOW, as the program reads it: refused alike
    report_fmt = "json" if fmt == "json" else "table"
    if fmt == "markdown" and compare_ref is None:
        raise UserError("--format markdown is the pull-request view of a comparison. Fix: add "
                        "--compare <git-ref>, or use --format table or json.")
    if compare_ref is not None and out is not None:
        raise UserError("--out writes one plan, --compare shows a difference of two. Fix: run "
                        "them as two commands.")
    # validate's verdict first, on what the run covers: the whole environment (its shards'
    # bounds and secure values included), one shard, or the services named
    issues = run_issues(project_dir, stack, shards, services or None)
    if issues:
        report(stack, issues, report_fmt)
        raise SystemExit(1)

    try:  # a shard's own stack name: its environment, with --shard
        role = stack_role(project_dir, stack)
    except TopologyError as exc:
        raise UserError(str(exc)) from None
    environment = role.environment
    shards = (*shards, role.shard) if role.shard else shards
    fleet: FleetPlan | None = None

    def plan_head() -> Plan:
        nonlocal fleet
        try:
            with plan_progress(stack, quiet) as progress:
                if compare_ref is not None:  # per service: the environment as one stack
                    return run_plan(project_dir, environment, policy=not no_policy,
                                    policy_config_file=policy_pack_config, progress=progress,
                                    services=services or None, one_stack=True)
                fleet = plan_environment(project_dir, environment, shards=shards,
                                         services=services, policy=not no_policy,
                                         policy_config_file=policy_pack_config,
                                         progress=progress, redactor=redactor())
                return fleet.merged()
        except (StackFileError, InvalidStack) as exc:  # run_plan validates before it runs
            report(stack, issues_of(exc, stack), report_fmt)
            raise SystemExit(1) from None
        except UnicodeDecodeError as exc:
            report(stack, [undecodable(project_dir, stack, exc)], report_fmt)
            raise SystemExit(1) from None
        except (PolicyPackError, FleetSelectionError) as exc:
            raise UserError(str(exc)) from None

    if compare_ref is not None and shards:
        raise UserError("--compare shows an environment per service. Fix: drop --shard "
                        "(use --service to narrow it).")
    # The plan's objects live until the process ends: no full collection need scan them,
    # now or at its exit.
    no_collection_at_exit()
    with collector_paused():
        if compare_ref is not None:
            # git and the ops layer: imported only to compare
            from configplane.cli.commands.plan_compare import run_compare

            plan = run_compare(project_dir, environment, compare_ref, services=services, fmt=fmt,
                               policy=not no_policy, plan_head=plan_head)
        else:
            plan = plan_head()
            _show(plan, fmt, out, fleet)
    if any(v["level"] == "mandatory" for v in plan.violations):
        raise SystemExit(1)


def _show(plan: Plan, fmt: str, out: Path | None, fleet: FleetPlan | None = None) -> None:
    # unredacted here: `emit` redacts what it prints, `write_out` what it writes (one tree
    # pass each; redacting twice cost a second pass over every value of the plan)
    document = plan.as_dict()
    if fleet is not None and len(fleet.plans) > 1:  # each stack's own count and verdict
        document["stacks"] = [
            {**s.as_dict(), "resources": len(p.resources),
             "violations": sum(v["level"] == "mandatory" for v in p.violations)}
            for s, p in zip(fleet.stacks, fleet.plans, strict=True)]
    if out is not None:
        try:
            write_out(plan, out, redactor(), redactor().tree(document))
        except ProjectFileError as exc:
            raise UserError(f"--out {shown(out)}: {exc}") from None
        except OSError as exc:
            raise UserError(f"--out {out}: cannot write the plan there ({exc.strerror or exc}"
                            f"{': ' + str(exc.filename) if exc.filename else ''}). Fix: name a "
                            "directory, or a path where one can be created.") from None
    emit(document, fmt, render_table, shown=table_part)


@contextmanager
def plan_progress(stack: str, quiet: bool) -> Iterator[Callable[[Any], None] | None]:
    """A progress bar on stderr while resources register; none with --quiet, in CI
    (`CI=true`) or when stderr is not a terminal, so logs and JSON output stay clean."""
    console = Console(stderr=True)
    if quiet or os.environ.get("CI", "").lower() in ("true", "1") or not console.is_terminal:
        yield None
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed} resources"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        yield _Bars(bar, stack)


class _Bars:
    """Progress of the program (called per registered resource) and, on a second line, of
    the policy pack (`analyzed`, per resource analysed): both are long at 2,000 services."""

    def __init__(self, bar: Progress, stack: str):
        self.bar = bar
        self.program = bar.add_task(f"planning {stack}", total=None)
        self.policy: Any = None

    def __call__(self, _resource: Any) -> None:
        self.bar.advance(self.program)

    def analyzed(self, _resource: Any) -> None:
        if self.policy is None:
            self.policy = self.bar.add_task("policy pack", total=None)
        self.bar.advance(self.policy)


TABLE_FLAGS = ("protect", "retainOnDelete", "deleteBeforeReplace")


def table_part(document: dict[str, Any]) -> dict[str, Any]:
    """What `render_table` prints of a plan document: each resource's type, name, read mark
    and flags, not its inputs and outputs (judging those for a table was a third of the
    output of a shard's plan)."""
    resources = [{"type": r["type"], "name": r["name"], "read": r.get("read"),
                  "options": {k: r["options"][k] for k in TABLE_FLAGS if k in r["options"]}}
                 for r in document["resources"]]
    shown = ("stack", "summary", "stacks", "violations")
    return {**{k: document[k] for k in shown if k in document}, "resources": resources}


def render_table(document: dict[str, Any]) -> None:
    out = plain_console()
    out.print(f"stack {document['stack']}: resources to create")
    width = max((len(r["type"]) for r in document["resources"]), default=0)
    lines = []
    for r in document["resources"]:
        flags = [k for k in TABLE_FLAGS if r["options"].get(k)]
        suffix = f"  [{', '.join(flags)}]" if flags else ""
        mark = "=" if r.get("read") else "+"  # a StackReference is read, not created
        lines.append(Text("  ") + marked(mark, f" {r['type']:<{width}}  {r['name']}{suffix}"))
    if lines:  # one print: rich lays out each printed object, thousands of lines add up
        out.print(Text("\n").join(lines))
    summary = document["summary"]
    out.print(f"{count(summary['resources'], 'resource')} to create")
    for stack in document.get("stacks", []):
        out.print(f"  stack {stack['stack']} ({stack['kind']}): "
                  f"{count(stack['resources'], 'resource')}, "
                  f"{count(stack['violations'], 'mandatory violation')}")
    if document["violations"]:
        print_table(out, "policy violations", ("level", "policy", "resource", "message"),
                    [(v["level"], v["policy"], v["urn"].rsplit("::", 1)[-1], v["message"])
                     for v in document["violations"]])
    else:
        out.print("policy violations: none")


def kubernetes_manifest(inputs: dict[str, Any], secrets: Redactor) -> dict[str, Any]:
    from configplane.offline import redact  # the Pulumi SDK: only once `plan` has checked it

    manifest = {"apiVersion": inputs.get("apiVersion"), "kind": inputs.get("kind")}
    manifest.update({k: v for k, v in redact(inputs).items() if k not in manifest})
    return secrets.tree(manifest)


def write_out(plan: Plan, out: Path, secrets: Redactor,
              document: dict[str, Any] | None = None) -> None:
    """Every manifest and plan.json (`document`, as printed; default the plan's), redacted by
    the command's `secrets`, in one atomic change: a failed write leaves the directory as it
    was (never a truncated plan.json beside new manifests)."""
    files: dict[str, str] = {}
    for resource in plan.resources:
        if not (resource.custom and resource.type.startswith("kubernetes:")):
            continue
        manifest = kubernetes_manifest(resource.inputs, secrets)
        meta = manifest.get("metadata") or {}
        parts = [manifest["kind"], meta.get("namespace"), meta.get("name") or resource.name]
        file_name = "-".join(str(p) for p in parts if p).lower() + ".yaml"
        if name_problem(file_name):  # names are the program's, checked; a file name anyway
            raise UserError(f"--out: cannot name a file after {shown(file_name)} "
                            f"({name_problem(file_name)}). Fix: report it.")
        files[file_name] = yaml.safe_dump(manifest, sort_keys=False)
    document = document if document is not None else plan.as_dict(secrets)
    files["plan.json"] = json.dumps(document, indent=2) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    write_files(out, files, secrets)
