"""The shell: the `configplane` command, its error and redaction boundary, one module per verb."""

from configplane.cli.app import main

__all__ = ["main"]
