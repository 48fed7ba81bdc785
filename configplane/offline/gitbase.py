"""The project as it is at a git commit, materialised into a directory of its own.

`plan --compare <ref>` plans that copy (its own program, components, catalog and pack) beside
the working tree. The copy is made with `git archive` piped into `tarfile` with the `data`
extraction filter: nothing of the commit runs (no checkout hooks, no worktree), and a member
that would land outside the directory (an absolute path, `..`, a link pointing out) is refused.
Every git call is an argv list; the ref is checked to name a commit before anything else uses
it, and `--end-of-options` keeps a ref that starts with `-` from being read as an option.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from configplane.model import printable

PROJECT_MARKER = "Pulumi.yaml"


class GitRefError(Exception):
    """The base of a comparison cannot be materialised (message names the ref and the fix)."""


@dataclass(frozen=True)
class BaseCommit:
    ref: str  # as the user named it
    commit: str  # the full object name it resolves to
    prefix: str  # the project's directory inside the repository ("" at the top)
    toplevel: str  # the repository's work tree (git archive of a subtree runs from there)


def _git(project_dir: Path, *args: str, binary: bool = False) -> subprocess.CompletedProcess:
    git = shutil.which("git")
    if git is None:
        raise GitRefError("git is not installed, and --compare reads the base from git. Fix: "
                          "install git, or plan without --compare.")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    return subprocess.run([git, "-C", str(project_dir), *args], capture_output=True,
                          text=not binary, env=env, check=False)


def resolve_base(project_dir: Path, ref: str) -> BaseCommit:
    """The commit `ref` names in the repository that holds `project_dir`, and where the
    project sits in it. Raises GitRefError for anything else."""
    shown = printable(ref)
    if not ref or ref.startswith("-") or any(c in ref for c in "\0\n\r"):
        raise GitRefError(f"--compare {shown!r}: not a git ref. Fix: name a branch, tag or "
                          "commit, e.g. --compare origin/main.")
    top = _git(project_dir, "rev-parse", "--show-toplevel", "--show-prefix")
    if top.returncode != 0:
        raise GitRefError(f"--compare: {project_dir} is not inside a git repository. Fix: run "
                          "it in a clone of the project, or plan without --compare.")
    found = _git(project_dir, "rev-parse", "--verify", "--quiet", "--end-of-options",
                 f"{ref}^{{commit}}")
    commit = found.stdout.strip()
    if found.returncode != 0 or len(commit) not in (40, 64):
        raise GitRefError(f"--compare {shown!r}: not a commit in this repository. Fix: name a "
                          "branch, tag or commit that exists here (in a shallow clone, fetch "
                          "it first: git fetch origin <branch>).")
    toplevel, _, prefix = top.stdout.rstrip("\n").partition("\n")
    prefix = prefix.strip().rstrip("/")
    marker = f"{prefix}/{PROJECT_MARKER}" if prefix else PROJECT_MARKER
    if _git(project_dir, "cat-file", "-e", f"{commit}:{marker}").returncode != 0:
        raise GitRefError(f"--compare {shown!r}: commit {commit[:12]} has no {marker}: the "
                          "project did not exist there. Fix: compare with a commit that has it.")
    return BaseCommit(ref=ref, commit=commit, prefix=prefix, toplevel=toplevel)


def materialise(base: BaseCommit, into: Path) -> Path:
    """Write the project as it is at `base` into the empty directory `into`; return it."""
    tree = f"{base.commit}:{base.prefix}" if base.prefix else base.commit
    archive = _git(Path(base.toplevel), "archive", "--format=tar", tree, binary=True)
    if archive.returncode != 0:
        raise GitRefError(f"--compare {printable(base.ref)!r}: git archive of {base.commit[:12]} "
                          "failed. Fix: check that the commit is complete in this clone "
                          "(git fsck), or fetch it again.")
    try:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout), mode="r:") as tar:
            tar.extractall(into, filter="data")
    except tarfile.FilterError as exc:
        member = printable(getattr(exc, "tarinfo", None) and exc.tarinfo.name or "?")
        raise GitRefError(f"--compare {printable(base.ref)!r}: {member} in commit "
                          f"{base.commit[:12]} points outside the project; it is not copied. "
                          "Fix: compare with a commit whose links stay inside the project.") from None
    return into
