"""`configplane secret set`: a `secure` secret added in one command (configplane.ops.secret_set):
the spec in the service's files, the declaration in Pulumi.yaml, the platform's grant (written
with --grant, else printed for the platform) and `pulumi config set --secret` (printed, or run
with --run: the value read from a hidden prompt or stdin, never from the command line)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click

from configplane.cli.boundary import FORMAT_OPTION, UserError, Verb, emit, protect, redactor
from configplane.cli.commands.options import PROJECT_DIR_OPTION, STACK_OPTION
from configplane.ops import SecretSetProblem, SecretSetProposal, propose_secret
from configplane.projectfiles import ProjectFileError, kind_of, writing


@click.group("secret")
def command() -> None:
    """Secrets of a service (`secret set`: add a `secure` value in one step).

    Example: configplane secret set --stack dev --service api PARTNER_TOKEN
    """


@command.command("set", cls=Verb)
@STACK_OPTION
@click.option("--service", required=True, metavar="NAME", help="The service (services/<NAME>/).")
@click.argument("key")
@click.option("--store", type=click.Choice(["vault", "aws"]), default="vault", show_default=True,
              help="Where the secret is kept: Vault KV or AWS Secrets Manager.")
@click.option("--config-key", help="The Pulumi config key, without `configplane:` "
              "(default: service + KEY in camelCase, e.g. apiPartnerToken).")
@click.option("--overlay", is_flag=True, help="Write the spec in services/<NAME>/<stack>.yaml "
              "(this stack only) instead of service.yaml.")
@click.option("--grant", is_flag=True, help="Also write the platform's grant of the key to the "
              "service in Pulumi.yaml (for the platform team; otherwise it is printed).")
@click.option("--description", help="The declaration's description in Pulumi.yaml.")
@click.option("--run", "run_pulumi", is_flag=True, help="Run `pulumi config set --secret` too, "
              "with the value from a hidden prompt (or stdin when it is not a terminal).")
@PROJECT_DIR_OPTION
@FORMAT_OPTION
def set_secret(stack: str, service: str, key: str, store: str, config_key: str | None,
               overlay: bool, grant: bool, description: str | None, run_pulumi: bool,
               project_dir: Path, fmt: str) -> None:
    """Add secret KEY (source: secure) to a service: its spec in the service's files, the key
    declared in Pulumi.yaml (type: string, secret: true, so the Pulumi CLI refuses plaintext),
    the grant the platform must add (or --grant writes it), and the command that sets the value.
    The value never appears on a command line or in output.

    Example: configplane secret set --stack dev --service api PARTNER_TOKEN
    """
    try:  # read, prepared and written under the project's lock: one change, all files or none
        with writing(project_dir) as writer:
            proposal = propose_secret(project_dir, stack, service, key, store=store,
                                      config_key=config_key, overlay=overlay, grant=grant,
                                      description=description)
            writer.commit({file: redactor().text(text) for file, text in proposal.edits.items()},
                          new={file for file in proposal.edits
                               if kind_of(project_dir, file) is None})
    except (SecretSetProblem, ProjectFileError) as exc:
        raise UserError(str(exc)) from None
    if run_pulumi:
        _set_value(proposal, project_dir)
    emit(proposal.as_dict() | {"value_set": run_pulumi}, fmt, lambda data: _print(proposal,
                                                                                  run_pulumi))


def _print(proposal: SecretSetProposal, ran: bool) -> None:
    click.echo(f"wrote {', '.join(sorted(proposal.edits))}")
    if proposal.grant_needed:
        click.echo(f"the platform must grant {proposal.config_key} to {proposal.service} "
                   "(docs/security.md): in Pulumi.yaml, under configplane:defaults.value."
                   "platform.grants.secure_keys, add:")
        click.echo(f"  {proposal.service}: [{proposal.config_key}]   # appended to the list "
                   "if the service has one")
        click.echo("(or the platform runs this command with --grant)")
    if ran:
        click.echo(f"set {proposal.full_key} in stack {proposal.stack}")
    else:
        click.echo("set the value (pulumi prompts for it; it never goes on the command line):")
        click.echo(f"  {shlex.join(proposal.command)}")


def _set_value(proposal: SecretSetProposal, project_dir: Path) -> None:
    if shutil.which(proposal.command[0]) is None:
        raise UserError("the Pulumi CLI is not on PATH; the files are written. Fix: install it "
                        f"and run `{shlex.join(proposal.command)}`.")
    if sys.stdin.isatty():
        value = click.prompt(f"value of {proposal.full_key}", hide_input=True,
                             confirmation_prompt=True, err=True)
    else:
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
    if not value:
        raise UserError(f"no value given for {proposal.full_key}; the files are written. Fix: "
                        f"run `{shlex.join(proposal.command)}`.")
    protect(value)
    # `pulumi config set` reads a piped value from stdin and drops one trailing newline
    result = subprocess.run(list(proposal.command), input=value + "\n", text=True,
                            capture_output=True, check=False)
    if result.returncode != 0:
        click.echo(result.stderr, err=True, nl=False)
        raise UserError(f"`{shlex.join(proposal.command)}` failed (exit {result.returncode}); "
                        "the files are written. Fix: correct what it says and run it again.")
