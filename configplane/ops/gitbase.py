"""The project as it is at a git commit: materialised into a directory of its own, and the
files that differ between it and the working tree.

`plan --compare <ref>` plans that copy (its own program, components, catalog and pack) beside
the working tree; `affected --base <ref>` reads its catalog and lists the changed files. The
copy is made with `git archive` piped into `tarfile` with the `data` extraction filter: nothing
of the commit runs (no checkout hooks, no worktree), and a member that would land outside the
directory (an absolute path, `..`, a link pointing out) is refused. Every git call is an argv
list; the ref is checked to name a commit before anything else uses it, and `--end-of-options`
keeps a ref that starts with `-` from being read as an option.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, replace
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
    option: str = "--compare"  # the flag that named the ref, for messages


def _git(project_dir: Path, *args: str, binary: bool = False,
         option: str = "--compare") -> subprocess.CompletedProcess:
    git = shutil.which("git")
    if git is None:
        raise GitRefError(f"git is not installed, and {option} reads the base from git. Fix: "
                          f"install git, or run without {option}.")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    return subprocess.run([git, "-C", str(project_dir), *args], capture_output=True,
                          text=not binary, env=env, check=False)


def resolve_base(project_dir: Path, ref: str, option: str = "--compare") -> BaseCommit:
    """The commit `ref` (given as `option`) names in the repository that holds `project_dir`,
    and where the project sits in it. Raises GitRefError for anything else."""
    shown = printable(ref)
    if not ref or ref.startswith("-") or any(c in ref for c in "\0\n\r"):
        raise GitRefError(f"{option} {shown!r}: not a git ref. Fix: name a branch, tag or "
                          f"commit, e.g. {option} origin/main.")
    top = _git(project_dir, "rev-parse", "--show-toplevel", "--show-prefix", option=option)
    if top.returncode != 0:
        raise GitRefError(f"{option}: {project_dir} is not inside a git repository. Fix: run "
                          f"it in a clone of the project, or run without {option}.")
    found = _git(project_dir, "rev-parse", "--verify", "--quiet", "--end-of-options",
                 f"{ref}^{{commit}}")
    commit = found.stdout.strip()
    if found.returncode != 0 or len(commit) not in (40, 64):
        raise GitRefError(f"{option} {shown!r}: not a commit in this repository. Fix: name a "
                          "branch, tag or commit that exists here (in a shallow clone, fetch "
                          "it first: git fetch origin <branch>).")
    toplevel, _, prefix = top.stdout.rstrip("\n").partition("\n")
    prefix = prefix.strip().rstrip("/")
    marker = f"{prefix}/{PROJECT_MARKER}" if prefix else PROJECT_MARKER
    if _git(project_dir, "cat-file", "-e", f"{commit}:{marker}").returncode != 0:
        raise GitRefError(f"{option} {shown!r}: commit {commit[:12]} has no {marker}: the "
                          "project did not exist there. Fix: compare with a commit that has it.")
    return BaseCommit(ref=ref, commit=commit, prefix=prefix, toplevel=toplevel, option=option)


def branch_point(base: BaseCommit, project_dir: Path) -> BaseCommit:
    """The commit this work branched from `base` at (`git merge-base <base> HEAD`): what
    `git diff base...HEAD` compares with."""
    found = _git(project_dir, "merge-base", "--end-of-options", base.commit, "HEAD")
    commit = found.stdout.strip()
    if found.returncode != 0 or len(commit) not in (40, 64):
        raise GitRefError(f"{base.option} {printable(base.ref)!r}: HEAD has no common history "
                          f"with {base.commit[:12]}. Fix: name the branch this work started "
                          "from (in a shallow clone, fetch more history: git fetch --unshallow).")
    return replace(base, commit=commit)


def changed_files(base: BaseCommit, project_dir: Path) -> list[str]:
    """The project's files that differ between `base` and the working tree (committed,
    staged, unstaged and untracked), relative to `project_dir`; a rename is its two paths.
    Paths are read NUL-separated and decoded as the file system does (any byte survives)."""
    diff = _git(project_dir, "diff", "--name-only", "--no-renames", "--relative", "-z",
                "--no-ext-diff", "--end-of-options", base.commit, "--", binary=True)
    untracked = _git(project_dir, "ls-files", "--others", "--exclude-standard", "-z", binary=True)
    if diff.returncode != 0 or untracked.returncode != 0:
        raise GitRefError(f"{base.option} {printable(base.ref)!r}: git could not list the "
                          "changed files. Fix: check the clone (git status), or fetch the base.")
    names = {os.fsdecode(n) for out in (diff.stdout, untracked.stdout)
             for n in out.split(b"\0") if n}
    return sorted(names)


def materialise(base: BaseCommit, into: Path) -> Path:
    """Write the project as it is at `base` into the empty directory `into`; return it."""
    tree = f"{base.commit}:{base.prefix}" if base.prefix else base.commit
    archive = _git(Path(base.toplevel), "archive", "--format=tar", tree, binary=True)
    if archive.returncode != 0:
        raise GitRefError(f"{base.option} {printable(base.ref)!r}: git archive of {base.commit[:12]} "
                          "failed. Fix: check that the commit is complete in this clone "
                          "(git fsck), or fetch it again.")
    try:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout), mode="r:") as tar:
            tar.extractall(into, filter="data")
    except tarfile.FilterError as exc:
        member = printable(getattr(exc, "tarinfo", None) and exc.tarinfo.name or "?")
        raise GitRefError(f"{base.option} {printable(base.ref)!r}: {member} in commit "
                          f"{base.commit[:12]} points outside the project; it is not copied. "
                          "Fix: compare with a commit whose links stay inside the project.") from None
    return into
