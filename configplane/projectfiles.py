"""The one door to the files of a project: every file configplane reads or writes goes through it.

Paths. A file is named relative to a root (the project directory, or a directory the user
named, such as `plan --out`) and must stay inside it: no absolute path, no `..` or `.`, no
empty component, no control character (a newline in a name would split a CODEOWNERS line or a
printed command). Once symlinks are resolved the file must still be inside the root and have
the same owner: a file under `services/<name>/` stays in that service's own directory, and a
platform file (anything else) stays out of every service's directory. So a symlink can neither
leave the project nor let one owner's file stand for another's.

Reading. The file must be a regular file (not a FIFO, a device or a directory) and its size is
checked with fstat on the open descriptor before a byte is read; the read stops at the limit
(a file that grows meanwhile is refused, not read whole). Files a user names on the command
line (a kubectl listing, a .env to import: often a pipe or `<(kubectl ...)`) are read with the
same limit, without the containment the project's own files get.

Writing: one atomic writer. A change of one or several files is prepared in full -- each new
text in a temporary file beside its target, fsynced -- then committed by renames. A journal in
the root records the change before the first rename, so a process killed in the middle is
finished by the next writer, and one killed while preparing is undone; a failure while
preparing (disk full, a file-size limit, a read-only directory) removes what was prepared and
leaves every file as it was. Writers to one root are serialised by an flock on the root
directory, held by a command across its read-modify-write (`writing`).

Stdlib only, at the bottom of the layers, so every reader and writer can use it. Over 400
lines for a reason: reading and writing share the containment rule and the lock, so the door
is one module rather than two that could drift apart.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TypedDict

MAX_FILE_BYTES = 8 * 1024 * 1024  # a project file (YAML, JSON Schema): far above any real one
MAX_INPUT_BYTES = 64 * 1024 * 1024  # a file named on the command line (a cluster's listing)
CATALOG_DIR = "services"  # services/<name>/ is the service's own (ownership.CATALOG_DIR, pinned)
DEFAULTS_NAME = "defaults.yaml"  # services/defaults.yaml: a platform file inside services/
JOURNAL = ".configplane-journal.json"
_TEMP_SUFFIX = ".configplane-tmp"
LOCK_TIMEOUT = 60.0

Step = Callable[[str], None]


class ProjectFileError(Exception):
    """A file that may not or cannot be read or written: `path` (shown safely) and the problem,
    which says what to do."""

    def __init__(self, path: str, problem: str):
        self.path = shown(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def shown(name: str | os.PathLike[str]) -> str:
    """A name as it may be printed: control and format characters (newline, NUL, bidi
    overrides) escaped as Python writes them (`\\n`, `\\x00`, `\\u202e`), so a message naming a
    hostile path stays one line and reads true."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode()
                   for c in str(name))


def name_problem(name: str) -> str | None:
    """Why `name` cannot be one component of a path configplane reads or writes, or None."""
    if name in ("", ".", ".."):
        return "`..`, `.` or an empty name leaves or blurs the directory" if name else \
            "an empty path component"
    if "/" in name or "\\" in name:
        return "a separator inside a name"
    if not name.isprintable():
        return "a control character (a newline, NUL, a bidi override...) in the name"
    return None


def parts_of(rel: str | os.PathLike[str]) -> tuple[str, ...]:
    """The components of a relative path, each checked (see `name_problem`)."""
    text = os.fspath(rel)
    if text.startswith("/"):
        raise ProjectFileError(text, "an absolute path; configplane reads and writes only inside "
                               "the project. Fix: name a path inside it.")
    parts = tuple(text.split("/")) if text else ()
    for part in parts:
        problem = name_problem(part)
        if problem:
            raise ProjectFileError(text, f"{problem}. Fix: rename it (a path inside the project, "
                                   "printable characters only).")
    if not parts:
        raise ProjectFileError(text, "an empty path. Fix: name a file.")
    return parts


def owner_of(parts: tuple[str, ...]) -> tuple[str, ...]:
    """The directory a path must stay inside after symlinks: `services/<name>` for a
    service's files, () (the project, outside every service directory) for the platform's."""
    if len(parts) >= 2 and parts[0] == CATALOG_DIR and parts[1] != DEFAULTS_NAME:
        return parts[:2]
    return ()


def contained(root: str | os.PathLike[str], rel: str | os.PathLike[str]) -> Path:
    """The real path of `rel` under `root`, refused (ProjectFileError) unless it stays inside
    the root and inside its owner's directory once every symlink is resolved (a dangling link
    too: it is resolved to where a write would go)."""
    return Path(_contained(root, rel))


def _contained(root: str | os.PathLike[str], rel: str | os.PathLike[str]) -> str:
    """`contained`, as a string: what the readers open (a fleet's run reads thousands)."""
    parts = parts_of(rel)
    # strings, not Path objects: a fleet's plan resolves tens of thousands of files
    base = os.path.realpath(root)
    inside = base.rstrip(os.sep) + os.sep  # the root "/" ends with its separator already
    real = real_below(inside, parts)
    if real != base and not real.startswith(inside):
        raise ProjectFileError(os.fspath(rel), "a symlink to outside the project. Fix: replace "
                               "the link with the file itself.")
    owner = owner_of(parts)
    if owner_of(tuple(real[len(inside):].split(os.sep)) if real != base else ()) != owner:
        whose = f"its service's directory ({'/'.join(owner)}/)" if owner else \
            "the platform's files (a link into a service's directory)"
        raise ProjectFileError(os.fspath(rel), f"a symlink to outside {whose}: one owner's file "
                               "cannot stand for another's. Fix: replace the link with the file "
                               "itself.")
    return real


def real_below(inside: str, parts: tuple[str, ...]) -> str:
    """`os.path.realpath` of `parts` (checked components: `parts_of`) under the real directory
    `inside` (ending with its separator), computed as realpath does below that directory
    only: when no component there is a symlink, realpath keeps each one as it is (a missing
    one too), so the path is `inside` + the parts, found with one lstat per part; at the
    first link, realpath itself resolves the whole path. realpath's own walk would lstat
    every component of the root's path again, for each of a fleet's thousands of files.
    (Either way the answer is as of the lstat: a link made later is refused when the file
    is opened, by O_NOFOLLOW for the last component, as before.)"""
    path = inside.rstrip(os.sep)
    for part in parts:
        path = f"{path}{os.sep}{part}"
        try:
            link = stat.S_ISLNK(os.lstat(path).st_mode)
        except (OSError, ValueError):  # missing, or under a file: realpath keeps it as written
            link = False
        if link:
            return os.path.realpath(inside + os.sep.join(parts))
    return path or os.sep


def entries(root: str | os.PathLike[str], rel: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """(name, kind) of a contained directory's entries, sorted; kind is file, dir, symlink or
    other, never following a link."""
    directory = _contained(root, rel)
    found = []
    with os.scandir(directory) as listing:
        for entry in listing:
            if entry.is_symlink():
                kind = "symlink"
            elif entry.is_dir(follow_symlinks=False):
                kind = "dir"
            elif entry.is_file(follow_symlinks=False):
                kind = "file"
            else:
                kind = "other"
            found.append((entry.name, kind))
    return sorted(found)


def kind_of(root: str | os.PathLike[str], rel: str | os.PathLike[str]) -> str | None:
    """file, dir, symlink, other or None (nothing there), without following a final link."""
    try:
        mode = os.lstat(os.path.join(os.path.realpath(root), *parts_of(rel))).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISLNK(mode):
        return "symlink"
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def is_file(root: str | os.PathLike[str], rel: str | os.PathLike[str]) -> bool:
    """Something other than a directory is there: reading it gives the file, or says why it
    may not be read (a link out of the project, a FIFO...), never silently nothing."""
    kind = kind_of(root, rel)
    if kind == "symlink":
        with contextlib.suppress(OSError, ProjectFileError):
            return not contained(root, rel).is_dir()
    return kind not in (None, "dir")


def read_bytes(root: str | os.PathLike[str], rel: str | os.PathLike[str], *,
               limit: int = MAX_FILE_BYTES) -> bytes:
    """A project file's bytes. Raises ProjectFileError (outside, not a regular file, too large)
    or FileNotFoundError/PermissionError as the system says."""
    return _read(_contained(root, rel), os.fspath(rel), limit, regular_only=True)


def read_text(root: str | os.PathLike[str], rel: str | os.PathLike[str], *,
              limit: int = MAX_FILE_BYTES) -> str:
    """A project file as UTF-8 text (UnicodeDecodeError when it is not)."""
    return read_bytes(root, rel, limit=limit).decode("utf-8")


def read_argument(path: str | os.PathLike[str], *, limit: int = MAX_INPUT_BYTES) -> bytes:
    """A file named on the command line: a regular file, a pipe or `<(command)`; at most
    `limit` bytes (the size of a regular file is checked before reading)."""
    name = os.fspath(path)
    if not name.isprintable():
        raise ProjectFileError(name, "a control character in the file name. Fix: rename it.")
    return _read(Path(name), name, limit, regular_only=False)


def _read(path: str | Path, display: str, limit: int, *, regular_only: bool) -> bytes:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if regular_only:
        flags |= getattr(os, "O_NOFOLLOW", 0)  # the real path has no link left to follow
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ProjectFileError(display, "became a symlink while being read. Fix: run "
                                   "again.") from None
        raise
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ProjectFileError(display, "is a directory, expected a file. Fix: name a file.")
        regular = stat.S_ISREG(info.st_mode)
        if regular_only and not regular:
            raise ProjectFileError(display, "is not a regular file (a FIFO, a socket or a "
                                   "device). Fix: replace it with a file.")
        if regular and info.st_size > limit:
            raise ProjectFileError(display, f"is {info.st_size} bytes; configplane reads at "
                                   f"most {limit}. Fix: shrink or split it.")
        if not regular:  # a pipe: block on it like an ordinary read
            os.set_blocking(fd, True)
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise ProjectFileError(display, f"holds more than {limit} bytes; configplane reads "
                                   "at most that. Fix: shrink or split it.")
        return b"".join(chunks)
    finally:
        os.close(fd)


# --- writing ----------------------------------------------------------------------------


class Writer:
    """The write side of one root, while its lock is held (see `writing`)."""

    def __init__(self, root: Path):
        self.root = root

    def read_bytes(self, rel: str | os.PathLike[str], *, limit: int = MAX_FILE_BYTES) -> bytes:
        return read_bytes(self.root, rel, limit=limit)

    def read_text(self, rel: str | os.PathLike[str], *, limit: int = MAX_FILE_BYTES) -> str:
        return read_text(self.root, rel, limit=limit)

    def commit(self, files: Mapping[str, str | bytes], *, new: frozenset[str] | set[str] = frozenset(),
               step: Step | None = None) -> list[str]:
        """Write every file of `files` (relative path -> text) or none. `new`: paths that must
        not exist yet (nothing, not even a dangling link, may be there). `step` is called after
        each step with its name (tests stop or kill the process there). Returns the paths
        written, in order."""
        step = step or (lambda _name: None)
        plan = []
        for rel, content in files.items():
            target = contained(self.root, rel)
            kind = kind_of(self.root, rel)
            if kind == "dir" or (kind is not None and target.is_dir()):
                raise ProjectFileError(rel, "is a directory. Fix: move it away.")
            if rel in new and kind is not None:
                raise ProjectFileError(rel, "exists already. Fix: merge by hand (run without "
                                       "--write to see the text), or move it away.")
            data = content.encode("utf-8") if isinstance(content, str) else content
            temp = target.parent / f".{target.name}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"
            plan.append((rel, target, temp, data))
        if not plan:
            return []
        dirs = _missing_dirs(self.root, [target.parent for _, target, _, _ in plan])
        journal: _Journal = {
            "state": "prepare", "dirs": [self._rel(d) for d in dirs],
            "moves": [[self._rel(temp), self._rel(target)] for _, target, temp, _ in plan]}
        current = JOURNAL
        try:
            _write_journal(self.root, journal)
            step("journal")
            for directory in dirs:
                current = self._rel(directory)
                directory.mkdir()
            for rel, target, temp, data in plan:
                current = rel
                _write_temp(temp, data, target)
                step(f"write:{rel}")
            current = JOURNAL
            _write_journal(self.root, {**journal, "state": "commit"})
        except BaseException as exc:  # before the commit point: undo, whatever stopped us
            _undo(self.root, journal)
            if isinstance(exc, OSError):
                raise ProjectFileError(current, f"cannot be written ({_reason(exc)}); nothing "
                                       "was changed. Fix: free space or fix the permissions, "
                                       "then run again.") from None
            raise
        step("commit")
        try:
            for rel, target, temp, _ in plan:  # the change is decided: only forward from here
                current = rel
                os.replace(temp, target)
                step(f"rename:{rel}")
        except OSError as exc:
            try:
                recover(self.root)
            except OSError:
                raise ProjectFileError(current, f"could not be put in place ({_reason(exc)}); "
                                       f"the change is recorded in {JOURNAL} and the next "
                                       "configplane command that writes finishes it.") from None
        for directory in sorted({target.parent for _, target, _, _ in plan}):
            _fsync_dir(directory)
        _remove_journal(self.root)
        return [rel for rel, *_ in plan]

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


@contextlib.contextmanager
def writing(root: str | os.PathLike[str], *, timeout: float = LOCK_TIMEOUT) -> Iterator[Writer]:
    """Hold the root's write lock (another writer waits, up to `timeout` seconds, then is
    refused clearly); a change an interrupted writer left is finished or undone first. Read what
    you change through the Writer while holding it, so concurrent commands cannot lose updates."""
    base = Path(os.path.realpath(root))
    try:
        fd = os.open(base, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ProjectFileError(os.fspath(root), "no such directory. Fix: check the path.") from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ProjectFileError(os.fspath(root), "another configplane command is "
                                           "writing to this directory (its lock is held). Fix: "
                                           "wait for it to finish, then run again.") from None
                time.sleep(0.05)
        recover(base)
        yield Writer(base)
    finally:
        os.close(fd)  # releases the lock


def write_files(root: str | os.PathLike[str], files: Mapping[str, str | bytes], *,
                new: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Lock, then commit `files` all or nothing (for a change that reads nothing first)."""
    with writing(root) as writer:
        return writer.commit(files, new=new)


def recover(root: Path) -> bool:
    """Finish (after the commit point) or undo (before it) a change a killed writer left.
    Called with the lock held. True when there was one."""
    path = root / JOURNAL
    with contextlib.suppress(FileNotFoundError):  # a journal killed while being written
        (root / (JOURNAL + _TEMP_SUFFIX)).unlink()
    try:
        journal = json.loads(path.read_bytes())
    except FileNotFoundError:
        return False
    except ValueError:
        journal = {"state": "unknown", "moves": [], "dirs": []}
    moves = [(contained(root, t), contained(root, f)) for t, f in journal.get("moves", [])]
    if journal.get("state") == "commit":
        for temp, target in moves:
            if temp.exists():
                os.replace(temp, target)
        for directory in sorted({target.parent for _, target in moves}):
            _fsync_dir(directory)
        path.unlink()
        _fsync_dir(root)
    else:
        _undo(root, journal)
    return True


class _Journal(TypedDict):
    """The writer's journal (JOURNAL): its state, the directories it creates and each
    (temporary file, target) rename, all relative to the root."""

    state: str
    dirs: list[str]
    moves: list[list[str]]


def _undo(root: Path, journal: _Journal) -> None:
    for temp, _ in journal.get("moves", []):
        with contextlib.suppress(OSError):
            contained(root, temp).unlink()
    for directory in sorted(journal.get("dirs", []), key=len, reverse=True):
        with contextlib.suppress(OSError):  # not empty (someone else's file): keep it
            contained(root, directory).rmdir()
    _remove_journal(root)


def _missing_dirs(root: Path, parents: list[Path]) -> list[Path]:
    """The directories to create, outermost first."""
    missing: list[Path] = []
    for parent in parents:
        chain = []
        while parent != root and not parent.exists():
            chain.append(parent)
            parent = parent.parent
        for directory in reversed(chain):
            if directory not in missing:
                missing.append(directory)
    return missing


def _write_temp(temp: Path, data: bytes, target: Path) -> None:
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_CLOEXEC", 0), 0o666)  # the umask applies, as for any new file
    try:
        if target.exists():
            os.fchmod(fd, stat.S_IMODE(target.stat().st_mode))
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_journal(root: Path, journal: Mapping[str, object]) -> None:
    temp = root / (JOURNAL + _TEMP_SUFFIX)
    _write_temp(temp, json.dumps(journal).encode(), temp)
    os.replace(temp, root / JOURNAL)
    _fsync_dir(root)


def _remove_journal(root: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (root / (JOURNAL + _TEMP_SUFFIX)).unlink()
    with contextlib.suppress(FileNotFoundError):
        (root / JOURNAL).unlink()
        _fsync_dir(root)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot fsync a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _reason(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{exc.strerror or type(exc).__name__}{f', {name}' if name else ''}"
