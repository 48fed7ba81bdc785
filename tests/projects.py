"""The sample project as tests use it: one way to copy it where a test may break it, one way
to read back every file a command left in it, and its plans, made once per test run."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from configplane.offline import Plan

REPO = Path(__file__).resolve().parents[1]
# What `pulumi preview` and the offline plan need of the project: the Pulumi files, the program
# and what it imports beside it, the schemas and the service catalog.
# Every stack file: the environments' and their shards' (docs/fleet.md).
PROJECT_FILES = ("Pulumi.yaml", *sorted(p.name for p in REPO.glob("Pulumi.*.yaml")),
                 "__main__.py")
PROJECT_DIRS = ("components", "schemas", "lambdas", "services")


def copy_project(target: Path, *, policies: bool = False) -> Path:
    """Copy the project to `target` (which must not exist yet); with `policies`, the pack is
    linked in (read-only use: the pack is never edited through a copy)."""
    target.mkdir(parents=True)
    for name in PROJECT_FILES:
        shutil.copy(REPO / name, target / name)
    for name in PROJECT_DIRS:
        shutil.copytree(REPO / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    if policies:
        (target / "policies").symlink_to(REPO / "policies")
    return target


def files_text(folder: Path) -> str:
    """The text of every file under `folder`, in path order (undecodable bytes replaced)."""
    return "\n".join(p.read_bytes().decode("utf-8", "replace")
                     for p in sorted(folder.rglob("*")) if p.is_file())


@functools.cache
def sample_plan(stack: str) -> Plan:
    """The sample project's offline plan of `stack` (the real program and pack, run_plan's
    defaults), made once per test run and shared by every test that reads it: never change it
    (a test that needs another plan makes its own). The environment as one stack, as it was
    before its split (docs/fleet.md): every resource of every shard in one plan."""
    from configplane.offline import run_plan

    return run_plan(REPO, stack, one_stack=True)
