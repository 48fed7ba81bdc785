"""`pip install .` (not editable) gives a working `configplane`: the wheel holds the CLI and
all its commands, and finds the schemas and the pack through the project directory.

The wheel is built from a copy of this checkout without its build products (setuptools reuses
an in-tree `build/` and `*.egg-info`, which can ship files no longer declared), with the venv's
own setuptools (no build isolation, so no download). It is installed with `--no-deps --target`
into an empty directory; the commands run from outside the checkout with that directory first
on the path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source") / "configplane"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(source)], check=True, capture_output=True)
    wheel = next(out.glob("configplane-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "configplane/cli/commands/validate.py" in names and "configplane/cli/app.py" in names
    assert not any(n.startswith(("components/", "policies/", "tests/")) for n in names)
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    return target


def _run(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_installed_cli_runs_outside_the_checkout(installed, tmp_path):
    where = _run(installed, tmp_path, "-c", "import configplane; print(configplane.__file__)")
    assert where.stdout.strip().startswith(str(installed)), where
    helped = _run(installed, tmp_path, "-m", "configplane", "--help")
    assert helped.returncode == 0, helped.stderr
    for verb in ("validate", "plan", "explain", "migrate", "rollback", "flags"):
        assert verb in helped.stdout


def test_the_installed_cli_validates_the_sample_project(installed, tmp_path):
    done = _run(installed, tmp_path, "-m", "configplane", "validate", "--stack", "dev",
                "--project-dir", str(REPO))
    assert (done.returncode, done.stdout) == (0, "stack dev: configuration is valid\n"), done.stderr


def test_the_installed_cli_reads_a_preview_with_its_packaged_schema(installed, tmp_path):
    # the preview schema is package data: drift-report checks a document outside the checkout
    fixtures = REPO / "tests" / "fixtures" / "preview"
    done = _run(installed, tmp_path, "-m", "configplane", "drift-report",
                str(fixtures / "no-changes.json"), "--format", "json")
    assert done.returncode == 0, done.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"steps": {}}')
    refused = _run(installed, tmp_path, "-m", "configplane", "drift-report", str(bad))
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (f"error: {bad}: steps: expected a list of steps; expected the "
                              "output of `pulumi preview --json`\n")
