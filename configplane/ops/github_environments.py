"""The GitHub environments a split environment's shards deploy in (docs/ci.md): one per shard,
named by ownership.github_deploy_environment, the only one its deploy role and Vault login
trust. GitHub creates an environment a workflow merely names WITHOUT protection, so any branch
could then get a token with its `sub`: these are the `gh` commands that create each one first,
with deployment branch `<branch>` only, its own deploy role and Vault login role, and the
environment-wide variables copied from the platform stack's GitHub environment `<env>`.

Commands are argv lists (for tools and tests); the CLI joins them for a shell (shlex).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from configplane import ownership, refs
from configplane.model import environment_stacks
from configplane.validation import load_or_issues

# What every stack of an environment reads from its GitHub environment (docs/ci.md): the same
# in each shard's as in `<env>`; a shard's AWS_ROLE_ARN and VAULT_ROLE are its own.
SHARED_VARIABLES = ("AWS_ACCOUNT_ID", "AWS_REGION", "EKS_CLUSTER", "VAULT_ADDR")
# Secrets GitHub never reveals, so they cannot be copied (repository-wide, or set per shard).
SECRETS = ("PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE")
BRANCH = "main"  # deploy.yml deploys pushes to main
# a branch name git accepts, conservatively: no spaces, `..`, leading `-` or `/`
BRANCH_NAME = re.compile(r"(?![-/])(?!.*\.\.)[A-Za-z0-9._/-]{1,200}(?<![/.])")


class GithubEnvironmentsError(Exception):
    """The environment cannot be read, or has no repository (message names the fix)."""


@dataclass(frozen=True)
class ShardEnvironment:
    """One shard's GitHub environment and what is set in it."""

    stack: str
    name: str  # the GitHub environment
    branch: str  # the only branch that may deploy in it
    variables: dict[str, str]  # its own values: the deploy role, the Vault login role
    create: list[list[str]]  # argv: create it (or keep it) with custom branch rules
    rules: list[str]  # argv: the names of its branch rules (one per line)
    add_rule: list[str]  # argv: add the branch rule, when `rules` does not list it
    assign: list[list[str]]  # argv: set its own variables
    copy: list[tuple[str, list[str], list[str]]]  # (variable, argv reading <env>'s, argv setting)


def shard_environments(project_dir: Path, environment: str, branch: str = BRANCH
                       ) -> tuple[str, list[ShardEnvironment]]:
    """(the repository, each shard's GitHub environment) of a split environment; none when it
    is one stack (it deploys in `<env>`, which the platform sets up: docs/ci.md). The
    repository is the one the planned roles trust (platform.shards.github_repository)."""
    model, issues = load_or_issues(Path(project_dir), environment)
    if issues or model is None:
        first = issues[0] if issues else None
        raise GithubEnvironmentsError(
            f"stack {environment} is not valid"
            + (f" ({first.where}: {first.path}: {first.message})" if first else "")
            + f". Fix: `configplane validate --stack {environment}`.")
    if not BRANCH_NAME.fullmatch(branch):
        raise GithubEnvironmentsError(
            f"--branch {branch!r} is not a branch name (letters, digits, `.`, `_`, `-`, `/`; "
            "no `..`, no leading `-` or `/`). Fix: e.g. --branch main.")
    shards = model.platform.shards
    repository = shards.github_repository if shards else None
    if shards is not None and repository is None:
        raise GithubEnvironmentsError(
            f"stack {environment} sets no platform.shards.github_repository, so no shard "
            "trusts GitHub's deploy jobs and there is no GitHub environment to create. Fix: "
            f"set it (Pulumi.{environment}.yaml or Pulumi.yaml) to the repository whose "
            "deploy.yml deploys the shards.")
    repository = repository or ""
    account = model.platform.aws.account_id
    out = []
    for stack in environment_stacks(Path(project_dir), environment):
        if stack.kind != "shard":
            continue
        name = ownership.github_deploy_environment(stack.name)
        out.append(_shard(stack.name, name, environment, repository, branch, {
            "AWS_ROLE_ARN": refs.iam_role_arn(account, ownership.deploy_role_name(stack.name)),
            "VAULT_ROLE": ownership.deploy_login_role(stack.name)}))
    return repository, out


def _shard(stack: str, name: str, environment: str, repository: str, branch: str,
           variables: dict[str, str]) -> ShardEnvironment:
    api = f"repos/{repository}/environments/{name}"
    create = [
        # custom branch policies: deployments from the branches listed next only (PUT: the
        # same environment again is no change, so the script runs again after a new shard)
        ["gh", "api", "--method", "PUT", api,
         "-F", "deployment_branch_policy[protected_branches]=false",
         "-F", "deployment_branch_policy[custom_branch_policies]=true"],
    ]
    rules = ["gh", "api", f"{api}/deployment-branch-policies",
             "--jq", ".branch_policies[].name"]
    # POST of a rule that exists is refused by GitHub: added only when it is not listed
    add_rule = ["gh", "api", "--method", "POST", f"{api}/deployment-branch-policies",
                "-f", f"name={branch}", "-f", "type=branch"]
    assign = [_set(repository, name, key, value) for key, value in variables.items()]
    copy = [(key, ["gh", "variable", "get", key, "--repo", repository, "--env", environment],
             _set(repository, name, key, None)) for key in SHARED_VARIABLES]
    return ShardEnvironment(stack, name, branch, variables, create, rules, add_rule, assign,
                            copy)


def _set(repository: str, name: str, key: str, value: str | None) -> list[str]:
    """`gh variable set`; value None: the shell variable `value` (a copied one)."""
    return ["gh", "variable", "set", key, "--repo", repository, "--env", name,
            "--body", value if value is not None else "$value"]


def script_lines(environment: str, repository: str, shards: Sequence[ShardEnvironment]
                 ) -> list[str]:
    """The shell script: every name quoted (shlex.join), a copied value read into `value`
    first so that `set -eu` stops at a variable `<env>` lacks. Run again (after a shard is
    added), it changes nothing that is already as it should be."""

    def quoted(argv: list[str]) -> str:
        # "$value" stays a shell expansion, quoted as one word; everything else is literal
        return " ".join('"$value"' if a == "$value" else shlex.quote(a) for a in argv)

    where = f" in {repository}" if repository else ""
    lines = [f"# configplane github-environments --env {environment}: each shard's own GitHub "
             f"environment{where} (docs/ci.md)", "set -eu"]
    if not shards:
        lines.append(f"# {environment} is one stack: it deploys in the GitHub environment "
                     f"{environment}; there is no shard environment to create")
    for shard in shards:
        lines.append(f"# {shard.name}: deployments from {shard.branch} only; the "
                     f"deploy role and Vault login of {shard.stack}; {environment}'s "
                     f"{', '.join(SHARED_VARIABLES)}")
        lines += [shlex.join(argv) for argv in shard.create]
        lines += [f"if ! {shlex.join(shard.rules)} | grep -qxF -- {shlex.quote(shard.branch)}; "
                  "then", shlex.join(shard.add_rule), "fi"]
        lines += [shlex.join(argv) for argv in shard.assign]
        for _, read, write in shard.copy:
            lines += [f"value=$({shlex.join(read)})", quoted(write)]
    lines.append(f"# not copied (GitHub never reveals secrets): {', '.join(SECRETS)}; keep "
                 "them repository-wide, or set them per shard environment with `gh secret set "
                 "NAME --repo REPO --env ENV`")
    return lines
