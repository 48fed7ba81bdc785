"""`configplane import`: adopt a service's existing configuration (.env, ConfigMap, Secret)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import yaml

from configplane.cli.boundary import (
    FORMAT_OPTION,
    UserError,
    Verb,
    check_written,
    current_run,
    emit,
    protect,
    protect_stack,
    raw_stdout,
    redactor,
)
from configplane.cli.commands.options import PROJECT_DIR_OPTION
from configplane.inputs import PROJECT_FILE
from configplane.ops import (
    STORES,
    ImportProblem,
    ImportProposal,
    catalog_text,
    emit_value,
    import_edits,
    plan_import,
    read_input,
    result_problems,
)
from configplane.projectfiles import ProjectFileError, writing
from configplane.redaction import url_userinfo


@click.command("import", cls=Verb)
@click.argument("service", required=False)
@click.option("--stack", metavar="STACK", help="Stack the inputs come from (dev, staging, prod); "
              "required unless --emit-value.")
@click.option("--from", "sources", multiple=True, required=True, metavar="FILE",
              help="A .env file, or Kubernetes manifests (.yaml/.yml/.json, several documents "
                   "or a List); repeat for several files.")
@click.option("--app-schema", help="schemas/services/<name>.schema.json for a new service.")
@click.option("--owner", "owners", multiple=True, metavar="OWNER",
              help="Who reviews a new service (`@org/team`, `@user`, e-mail); repeatable. "
                   "Required for a new service.")
@click.option("--store", type=click.Choice(STORES), default="vault", show_default=True,
              help="Where the imported secrets are kept.")
@click.option("--write", is_flag=True,
              help="Write the service's files under services/<name>/ and the secret "
                   "declarations into Pulumi.yaml (instead of printing them); refused while "
                   "validate would reject the result.")
@click.option("--emit-value", "emit_value_key", metavar="KEY",
              help="Print one value of the input to a pipe, for `| pulumi config set --secret`; "
                   "refuses a terminal. The commands import prints use it.")
@PROJECT_DIR_OPTION
@FORMAT_OPTION
def command(service: str | None, stack: str | None, sources: tuple[str, ...],
            app_schema: str | None, owners: tuple[str, ...], store: str, write: bool,
            emit_value_key: str | None, project_dir: Path, fmt: str) -> None:
    """Turn a .env file or ConfigMap/Secret manifests into a service's files: for a new
    service its base (services/<name>/service.yaml, with --owner) and the stack's overlay,
    split by the parity rules, and `null` overlays for the other stacks until they are
    imported; for an existing service, the overlay of what differs from its base.

    Secret manifests' keys, and ConfigMap/.env values the pack's plaintext detector flags,
    become `source: secure` secrets: their values never land in a file nor on screen.
    Instead it prints, per secret, a command that pipes the value from the input file into
    `pulumi config set --secret` when you run it. Without --write the section and the
    Pulumi.yaml declarations are printed; with --write they are added to the files
    (comments kept). Either way the result is validated first, with the secrets counted as
    set: --write writes nothing while validate would reject it.

    Example: configplane import billing --stack dev --from .env --app-schema http-api --owner @shop/billing
    """
    try:
        if emit_value_key is not None:
            _emit(list(sources), emit_value_key)
            return
        _protect_inputs(sources)
        if stack:
            protect_stack(project_dir, stack)
        if not service or not stack:
            raise UserError("give the SERVICE and --stack to import into, e.g. `configplane "
                            "import billing --stack dev --from billing.env`.")
        def prepare() -> tuple[ImportProposal, dict[str, str]]:
            plan = plan_import(project_dir, stack, service, list(sources), app_schema, store,
                               owners, detector=current_run().detector, known=redactor().knows)
            try:
                edits = import_edits(project_dir, plan)
            except ImportProblem as exc:
                if write:
                    raise
                edits = {}
                plan.notes.append(f"--write would refuse: {exc}")
            plan.problems = result_problems(project_dir, plan, edits) if edits else []
            return plan, edits

        written: list[str] = []
        if write:  # planned and written under the project's write lock: imports queue up
            with writing(project_dir) as writer:
                plan, edits = prepare()
                if plan.problems:
                    raise ImportProblem(
                        "nothing written: validate would reject the imported service (with its "
                        "secrets set):\n  " + "\n  ".join(plan.problems) + "\nFix: correct the "
                        "inputs (or --app-schema, --store), or run without --write and add the "
                        "files by hand.")
                # what is written passes the boundary the screen does; nothing is withheld
                for file, document in plan.files.items():
                    check_written(file, document)
                check_written(PROJECT_FILE, plan.declarations)  # grants: their config_keys
                # all prepared and checked first, then one change: all files or none
                written = writer.commit({file: redactor().text(text)
                                         for file, text in edits.items()})
        else:
            plan, edits = prepare()
    except (ImportProblem, ProjectFileError) as exc:
        redactor().foreign(str(exc))  # it may name a key or an object of a foreign file
        raise UserError(str(exc)) from None
    document = plan.as_dict(project_dir)
    document["written"] = written
    emit(document, fmt, render_text)


def _protect_inputs(sources: tuple[str, ...]) -> None:
    """The inputs' secret values (a Secret's keys, what the detector flags) are never printed,
    nor what the detector finds in their keys, names and notes (foreign text)."""
    for source in sources:
        try:
            found, notes = read_input(source)
        except ImportProblem:
            continue  # reported by the import itself
        redactor().foreign(notes, [(entry.key, entry.origin) for entry in found])
        for entry in found:
            if (entry.always_secret or current_run().detector.rules(entry.key, entry.value)
                    or url_userinfo(entry.value)):
                protect(entry.value)


def _to_terminal() -> bool:
    return sys.stdout.isatty()


def _emit(sources: list[str], key: str) -> None:
    if _to_terminal():
        raise UserError("refusing to print a secret value to a terminal. Fix: pipe it, e.g. "
                        f"`configplane import --from {sources[0]} --emit-value {key} | pulumi "
                        "config set --secret configplane:<key> --stack <stack>`.")
    value = emit_value(sources, key)
    # `pulumi config set` drops one trailing newline from stdin: add one, keep the value exact.
    # The one deliberate way past the redactor: a value into a pipe (a terminal is refused).
    out = raw_stdout()
    out.write(value + "\n")
    out.flush()


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True,
                          width=1000)


def render_text(document: dict[str, Any]) -> None:
    out = click.echo
    written = document["written"]
    for file, body in document["files"].items():
        out(f"# {'wrote' if file in written else 'write to'} {file}:")
        out(catalog_text(document["service"], file, body).rstrip())
    if document["declarations"]:
        out("")
        out(f"# {'declared in' if written else 'add to'} {PROJECT_FILE}, under config:")
        out(_yaml({"config": document["declarations"]}).rstrip())
    if document["secrets"]:
        out("")
        out("# secrets moved out (values not shown):")
        for secret in document["secrets"]:
            out(f"#   {secret['key']} from {secret['from']}: {secret['reason']}")
        out("# set them from the inputs (each value is piped, never printed; run where the")
        out("# input files are, then delete the inputs or keep them out of git):")
        for line in document["commands"]:
            out(line)
    for note in document["notes"]:
        out(f"note: {note}")
    for problem in document["problems"]:
        out(f"validate would report: {problem}")
    stack = document["stack"]
    out(f"then: configplane validate --stack {stack} && configplane plan --stack {stack}"
        + (" && configplane codeowners --write" if "owners" in document["section"][
            document["service"]] else ""))
