"""The `configplane` command: a thin shell over library functions, one verb per command.

`configplane --help` and `--version` import nothing but click: each verb's module (and what it
needs: the model, the detector, the Pulumi SDK) is imported when that verb runs, and the list
of verbs comes from the table below, whose summaries a test keeps equal to each command's own.
"""

from __future__ import annotations

import importlib

import click
from click.formatting import HelpFormatter

# verb -> (module under configplane.cli.commands exposing `command`, the first sentence of
# its help, shown by `configplane --help` without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("validate", "Validate a stack's layered configuration against the schemas."),
    "plan": ("plan", "Show every resource `pulumi up` would create, without cloud or Pulumi CLI."),
    "scan": ("scan", "Tell which configuration values are plaintext secrets."),
    "drift-report": ("drift_report", "Turn `pulumi preview --json` output (FILE, or - for stdin) "
                                     "into a drift report."),
    "drift": ("drift", "Check a deployed stack for drift: refresh, then preview with no changes "
                       "expected."),
    "explain": ("explain", "Explain a resolved value: the layer and file that set it and every "
                           "value it overrode."),
    "diff": ("diff", "Compare two stacks' services side by side (environment parity)."),
    "import": ("import_", "Turn a .env file or ConfigMap/Secret manifests into a service's "
                          "files: for a new service its base (services/<name>/service.yaml, "
                          "with --owner) and the stack's overlay, split by the parity rules, "
                          "and `null` overlays for the other stacks until they are imported; "
                          "for an existing service, the overlay of what differs from its base."),
    "rollback": ("rollback", "Say exactly what to run to point SERVICE back at an earlier config "
                             "generation."),
    "prune": ("prune", "Print the `kubectl delete` commands for config generations beyond the "
                       "keep count."),
    "flags": ("flags", "Show each flag's state, default variant, the share of targeting keys "
                       "each variant gets (from the rollout or the fractional targeting), a "
                       "summary of other targeting rules and the rollout step this stack is at."),
    "migrate": ("migrate", "Move service definitions out of Pulumi config into the service "
                           "catalog."),
    "codeowners": ("codeowners", "Generate CODEOWNERS: each service's owners review "
                                 "services/<name>/, the platform owners (services/defaults.yaml) "
                                 "everything else (a catch-all: the project, the program, the "
                                 "pack, the build files, CI and tests)."),
    "dr": ("dr", "Disaster recovery: prove that a backup restores what the stack declares "
                 "(docs/dr.md)."),
    "secret": ("secret", "Secrets of a service (`secret set`: add a `secure` value in one "
                         "step)."),
    "where": ("where", "Print the Pulumi stack that holds SERVICE in each environment, and the "
                       "stack output its app reads."),
    "shard": ("shard", "The environment's shard stacks (docs/fleet.md)."),
    "affected": ("affected", "List the stacks a change touches."),
    "github-environments": ("github_environments", "Print the `gh` commands that create "
                                                   "each shard's own GitHub environment."),
    "operator": ("operator", "Objects for the Pulumi Kubernetes Operator, which runs stacks in "
                             "the cluster."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"configplane.cli.commands.{COMMANDS[name][0]}")
        return module.command

    def format_commands(self, ctx: click.Context, formatter: HelpFormatter) -> None:
        # click's own layout, from the table: listing the verbs imports none of them
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, click.utils.make_default_short_help(COMMANDS[name][1], limit))
                for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> object:
        # The one error and output boundary of every command (configplane.cli.boundary.boundary):
        # outputs redacted, input errors as clean messages, no traceback, no value.
        from configplane.cli.boundary import boundary

        with boundary():
            return super().invoke(ctx)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="configplane", prog_name="configplane",
                      message="%(prog)s %(version)s")
def main() -> None:
    """configplane: configuration and secrets for a fleet of services, per Pulumi stack."""
