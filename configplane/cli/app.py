"""The `configplane` command: a thin shell over library functions, one verb per command."""

from __future__ import annotations

import importlib

import click

from configplane.cli.boundary import boundary

# verb -> module under configplane.cli.commands exposing `command` (imported lazily: fast --help)
COMMANDS = {
    "validate": "validate",
    "plan": "plan",
    "scan": "scan",
    "drift-report": "drift_report",
    "drift": "drift",
    "explain": "explain",
    "diff": "diff",
    "import": "import_",
    "rollback": "rollback",
    "prune": "prune",
    "flags": "flags",
    "migrate": "migrate",
    "codeowners": "codeowners",
    "where": "where",
    "shard": "shard",
    "affected": "affected",
    "operator": "operator",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"configplane.cli.commands.{COMMANDS[name]}")
        return module.command

    def invoke(self, ctx: click.Context) -> object:
        # The one error and output boundary of every command (configplane.cli.boundary.boundary):
        # outputs redacted, input errors as clean messages, no traceback, no value.
        with boundary():
            return super().invoke(ctx)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """configplane: configuration and secrets for a fleet of services, per Pulumi stack."""
