"""Shared pieces of the security tests: the CLI as users run it (through `configplane.cli.app.main`,
so the output and error boundary is the real one), canaries and projects to plant them in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from configplane.cli.app import main
from tests.projects import copy_project


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + "\n" + self.stderr


def cli(*args: str, input: str | bytes | None = None) -> Run:
    result = CliRunner().invoke(main, list(args), input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"configplane {' '.join(args)} escaped the boundary: "
                             f"{type(result.exception).__name__}")
    return Run(tuple(args), result.exit_code, result.stdout, result.stderr)


def edit_yaml(path: Path, change) -> None:
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))


def assert_clean(run: Run, canaries: list[str], *, codes: tuple[int, ...] = (0, 1)) -> None:
    """The contract of every command on any input: a known exit code, no traceback, no canary,
    and a failure names a file."""
    assert run.code in codes, (run.args, run.code, run.text[-2000:])
    assert "Traceback" not in run.text, (run.args, run.text[-2000:])
    leaked = [c for c in canaries if c in run.text]
    assert leaked == [], (run.args, leaked)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")
