"""`configplane operator stacks`: the Pulumi Kubernetes Operator's objects for an environment's
stacks, as YAML for review and `kubectl apply`. The objects are configplane.ops.operator's."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml

from configplane.cli.boundary import UserError, Verb, protect_stack
from configplane.cli.commands.options import PROJECT_DIR_OPTION
from configplane.model import environments, printable
from configplane.ops import (
    VAULT_AGENT_IMAGE,
    OperatorError,
    Source,
    operator_objects,
    role_template_problem,
)


@click.group("operator")
def command() -> None:
    """Objects for the Pulumi Kubernetes Operator, which runs stacks in the cluster.

    Example: configplane operator stacks --env prod --repo https://github.com/shop/config
    --organization shop --secrets-provider awskms://alias/pulumi-prod
    --platform-role-arn arn:aws:iam::333333333333:role/configplane-bootstrap-prod
    """


@command.command("stacks", cls=Verb)
@click.option("--env", "environment", required=True, help="The environment (Pulumi.<env>.yaml).")
@click.option("--repo", "repository", required=True, metavar="URL",
              help="The git repository the operator fetches the program from.")
@click.option("--branch", default="refs/heads/main", show_default=True)
@click.option("--repo-dir", default="", help="The project's directory in the repository.")
@click.option("--organization", required=True,
              help="The Pulumi organization (stacks are <organization>/<stack>).")
@click.option("--namespace",
              help="Where the Stack objects and their service accounts live: the "
                   "environment's platform.shards.operator_namespace (default "
                   "pulumi-operator), which its deploy roles trust; if given, it must agree.")
@click.option("--secrets-provider", required=True,
              help="The stacks' secrets provider, e.g. awskms://alias/pulumi-prod?region=eu-west-1.")
@click.option("--access-token-secret", default="pulumi-api-secret", show_default=True,
              help="The Secret (key accessToken) with the Pulumi access token.")
@click.option("--role-arn", metavar="TEMPLATE",
              help="Each shard stack's deploy role ({account}, {stack}, {environment} filled "
                   "in; default arn:aws:iam::{account}:role/configplane-deploy-{stack}, the "
                   "role its platform stack plans).")
@click.option("--platform-role-arn", metavar="ARN",
              help="The platform stack's deploy role: the environment's bootstrap role, which "
                   "no stack plans (docs/fleet.md). Required.")
@click.option("--vault-agent-image", default=VAULT_AGENT_IMAGE, show_default=True,
              help="The Vault Agent image of each shard's workspace: it logs in to the "
                   "shard's Vault role with the workspace account's token (docs/fleet.md).")
@click.option("--resync", "resync_seconds", type=click.IntRange(60), default=3600,
              show_default=True, help="Seconds between refreshes that correct drift.")
@PROJECT_DIR_OPTION
def stacks(environment: str, repository: str, branch: str, repo_dir: str, organization: str,
           namespace: str | None, secrets_provider: str, access_token_secret: str,
           role_arn: str | None, platform_role_arn: str | None, vault_agent_image: str,
           resync_seconds: int, project_dir: Path) -> None:
    """Print a Stack object per stack of the environment (the platform stack, then each shard),
    each with its own least-privilege ServiceAccount, as multi-document YAML.

    Example: configplane operator stacks --env prod --repo https://github.com/shop/config.git
    --organization shop --secrets-provider awskms://alias/pulumi-prod?region=eu-west-1
    --platform-role-arn arn:aws:iam::333333333333:role/configplane-bootstrap-prod
    """
    known = environments(project_dir)
    if environment not in known:
        raise UserError(f"--env {printable(environment)!r}: no such environment (no "
                        f"Pulumi.<env>.yaml). Fix: use one of: {', '.join(known) or 'none'}.")
    protect_stack(project_dir, environment)
    if role_arn is not None and role_template_problem(role_arn):
        raise UserError(f"--role-arn {printable(role_arn)!r}: not a template configplane can fill "
                        f"({role_template_problem(role_arn)}). Fix: use only {{account}}, "
                        "{stack} and {environment}, and write a literal brace as {{ or }}.")
    if not vault_agent_image or any(c.isspace() or not c.isprintable()
                                    for c in vault_agent_image):
        raise UserError(f"--vault-agent-image {printable(vault_agent_image)!r}: not an image "
                        f"reference. Fix: give one such as {VAULT_AGENT_IMAGE}.")
    source = Source(repository, branch, repo_dir, organization, namespace, secrets_provider,
                    access_token_secret, role_arn, resync_seconds, platform_role_arn,
                    vault_agent_image)
    try:
        objects = operator_objects(project_dir, environment, source)
    except OperatorError as exc:
        raise UserError(str(exc)) from None
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False))
