"""`configplane github-environments`: the `gh` commands that create each shard's own GitHub
environment before a workflow names it (GitHub would create it unprotected). The commands are
configplane.ops.github_environments'; this module checks the options and prints them."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from configplane.cli.boundary import UserError, Verb
from configplane.cli.commands.options import PROJECT_DIR_OPTION
from configplane.model import environments, printable
from configplane.ops import GithubEnvironmentsError, script_lines, shard_environments


@click.command("github-environments", cls=Verb)
@click.option("--env", "environment", required=True, help="The environment (Pulumi.<env>.yaml).")
@click.option("--branch", default="main", show_default=True,
              help="The only branch that may deploy in the shard environments.")
@PROJECT_DIR_OPTION
def command(environment: str, branch: str, project_dir: Path) -> None:
    """Print the `gh` commands that create each shard's own GitHub environment.

    In the repository `platform.shards.github_repository` names, one per shard stack
    `<env>-<shard>` (the only one its deploy role and Vault login trust):
    deployments from BRANCH only, AWS_ROLE_ARN its deploy role, VAULT_ROLE its Vault login
    role, and AWS_ACCOUNT_ID, AWS_REGION, EKS_CLUSTER and VAULT_ADDR copied from the GitHub
    environment `<env>`. Review, then run with `sh -e` before the first deploy that names them,
    and after a shard is added (docs/ci.md).

    Example: configplane github-environments --env prod > envs.sh && sh -e envs.sh
    """
    known = environments(project_dir)
    if environment not in known:
        raise UserError(f"--env {printable(environment)!r}: no such environment (no "
                        f"Pulumi.<env>.yaml). Fix: use one of: {', '.join(known) or 'none'}.")
    try:
        repo, shards = shard_environments(project_dir, environment, branch)
    except GithubEnvironmentsError as exc:
        raise UserError(str(exc)) from None
    sys.stdout.write("\n".join(script_lines(environment, repo, shards)) + "\n")
