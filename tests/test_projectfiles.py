"""The one door to a project's files (configplane/projectfiles.py): containment, size before
read, and the atomic writer under injected failures (a file-size limit, a read-only directory,
a killed process) and concurrent writers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from configplane.projectfiles import (
    JOURNAL,
    ProjectFileError,
    contained,
    name_problem,
    owner_of,
    read_argument,
    read_bytes,
    real_below,
    shown,
    write_files,
    writing,
)
from tests.projects import REPO


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under root (hidden ones too): files by content, links by target, dirs."""
    found: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = "-> " + os.readlink(path)
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = path.read_bytes()
    return found


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for rel, text in {"Pulumi.yaml": "name: shop\n", "Pulumi.dev.yaml": "config: {}\n",
                      "services/api/service.yaml": "config: {A: 1}\n",
                      "services/api/dev.yaml": "config: {B: 2}\n",
                      "services/web/service.yaml": "config: {C: 3}\n"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (tmp_path / "outside.yaml").write_text("stolen: true\n")
    return root


# --- containment ------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(name=st.text(min_size=0, max_size=12))
def test_a_name_is_refused_exactly_when_it_could_escape_or_mislead(name):
    problem = name_problem(name)
    bad = (name in ("", ".", "..") or "/" in name or "\\" in name or not name.isprintable())
    assert (problem is not None) == bad
    assert shown(name).isprintable()  # a message naming it stays one printable line


@pytest.mark.parametrize("rel", ["../outside.yaml", "services/../../outside.yaml", "/etc/passwd",
                                 "services/api/\nx.yaml", "services//dev.yaml", "./Pulumi.yaml",
                                 "services/api/dev.yaml\x00", "Pulumi.\u202eyaml"])
def test_lexically_hostile_paths_are_refused_naming_them_safely(project, rel):
    with pytest.raises(ProjectFileError) as caught:
        read_bytes(project, rel)
    assert caught.value.path == shown(rel) and "\n" not in str(caught.value)


@pytest.mark.parametrize("link, target", [
    ("services/api/dev.yaml", "../../../outside.yaml"),      # out of the project
    ("services/api/dev.yaml", "../web/service.yaml"),         # across services
    ("services/evil", "api"),                                 # a service dir naming another
    ("services/evil", "../.."),                               # a service dir out of the project
    ("Pulumi.dev.yaml", "services/api/dev.yaml"),             # a platform file into a service
    ("services/api/dev.yaml", "../../Pulumi.dev.yaml"),       # a service file onto the platform
    ("services/api/dev.yaml", "/nonexistent/dangling.yaml"),  # dangling, out of the project
])
def test_symlinks_out_of_the_owners_directory_are_refused(project, link, target):
    path = project / link
    if path.exists():
        path.unlink()
    path.symlink_to(target)
    probe = f"{link}/service.yaml" if link == "services/evil" else link
    with pytest.raises(ProjectFileError, match="symlink"):
        contained(project, probe)
    with pytest.raises(ProjectFileError):
        write_files(project, {probe: "x: 1\n"})
    assert (project.parent / "outside.yaml").read_text() == "stolen: true\n"
    assert not Path("/nonexistent").exists()


def test_a_symlink_inside_its_owners_directory_is_read(project):
    (project / "services/api/staging.yaml").symlink_to("dev.yaml")
    assert read_bytes(project, "services/api/staging.yaml") == b"config: {B: 2}\n"


# Trees of directories, files and symlinks (relative, absolute, dangling, looping, into and
# out of services), and paths through them: `contained` must answer exactly as it did when it
# resolved every path with os.path.realpath (`_contained_by_realpath`, the algorithm before).
_NAMES = ["services", "api", "web", "defaults.yaml", "a", "b.yaml"]
_TARGETS = ["..", "../..", "../../..", "api", "../web", "a/b.yaml", "services", "b.yaml",
            "nowhere", "@outside", "@outside/b.yaml", "@root", "@root/services/api", "@loop"]
_ENTRY = st.tuples(st.sampled_from(["dir", "file", "link"]),
                   st.lists(st.sampled_from(_NAMES), min_size=1, max_size=4),
                   st.sampled_from(_TARGETS))


def _contained_by_realpath(root: str, rel: str) -> str:
    """The containment rule as it was written first: realpath of the root and of the path."""
    parts = tuple(rel.split("/"))
    base = os.path.realpath(root)
    real = os.path.realpath(os.path.join(base, *parts))
    inside = base.rstrip(os.sep) + os.sep
    if real != base and not real.startswith(inside):
        return "refused: outside"
    if owner_of(tuple(real[len(inside):].split(os.sep)) if real != base else ()) != owner_of(parts):
        return "refused: owner"
    return real


def _build(top: Path, entries: list[tuple[str, list[str], str]]) -> None:
    for kind, parts, target in entries:
        path = top.joinpath("project", *parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "dir":
                path.mkdir()
            elif kind == "file":
                path.write_text("x: 1\n")
            else:
                absolute = {"@outside": str(top / "outside"), "@root": str(top / "project"),
                            "@loop": str(path)}
                head, _, rest = target.partition("/")
                path.symlink_to(absolute[head] + (f"/{rest}" if rest else "")
                                if head in absolute else target)
        except OSError:  # a parent that is a file or a link, a name taken: as a user's tree
            continue


@settings(max_examples=300, deadline=None)
@given(entries=st.lists(_ENTRY, max_size=12),
       probes=st.lists(st.lists(st.sampled_from(_NAMES), min_size=1, max_size=5), min_size=1,
                       max_size=8),
       via_link=st.booleans())
def test_containment_answers_as_realpath_does(entries, probes, via_link):
    with tempfile.TemporaryDirectory() as scratch:
        top = Path(os.path.realpath(scratch))
        (top / "outside").mkdir()
        (top / "outside" / "b.yaml").write_text("stolen: true\n")
        _build(top, entries)
        root = top / "project"
        root.mkdir(exist_ok=True)
        if via_link:  # the root named through a link: its real path is the project's
            (top / "alias").symlink_to(root)
            root = top / "alias"
        for parts in probes:
            rel = "/".join(parts)
            base = os.path.realpath(root)
            expected = _contained_by_realpath(str(root), rel)
            assert real_below(base.rstrip(os.sep) + os.sep, tuple(parts)) == \
                os.path.realpath(os.path.join(base, *parts))
            try:
                found = str(contained(root, rel))
            except ProjectFileError as exc:
                found = "refused: owner" if "one owner's file" in exc.problem else \
                    "refused: outside"
            assert found == expected, (rel, entries)


def test_containment_of_a_path_under_the_file_system_root():
    """The root `/` itself ends with its separator: paths under it are not doubled."""
    assert real_below("/", ("tmp",)) == os.path.realpath("/tmp")
    assert real_below("/", ("nonexistent-dir", "x")) == "/nonexistent-dir/x"


def test_the_size_is_checked_before_reading(project):
    """A 3 GiB sparse service.yaml is refused from its size: reading it would take seconds
    and gigabytes."""
    path = project / "services/api/service.yaml"
    os.truncate(path, 3 * 1024**3)
    started = time.process_time()
    with pytest.raises(ProjectFileError, match="3221225472 bytes"):
        read_bytes(project, "services/api/service.yaml")
    assert time.process_time() - started < 0.5


def test_a_fifo_is_refused_without_blocking(project):
    os.mkfifo(project / "services/api/prod.yaml")
    with pytest.raises(ProjectFileError, match="not a regular file"):
        read_bytes(project, "services/api/prod.yaml")


def test_an_argument_file_may_be_a_pipe_but_is_bounded(tmp_path):
    read, write = os.pipe()
    os.write(write, b"x" * 100)
    os.close(write)
    assert read_argument(f"/dev/fd/{read}", limit=100) == b"x" * 100
    os.close(read)
    with pytest.raises(ProjectFileError, match="more than 10 bytes"):
        read_argument("/dev/zero", limit=10)  # endless: stops at the limit


# --- the atomic writer ------------------------------------------------------------------

CHANGE = {"Pulumi.yaml": "name: shop\nconfig: {k: v}\n", "services/api/dev.yaml": "new: 1\n",
          "services/billing/dev.yaml": "config: {X: 1}\n",
          "services/billing/service.yaml": "a: " + "b" * 5000 + "\n"}


def _writer_process(project: Path, *, before: str = "", step: str | None = None,
                    user: bool = False) -> subprocess.CompletedProcess:
    """Commit CHANGE in a child process, optionally killing itself at one step."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        {before}
        from configplane.projectfiles import writing, ProjectFileError
        def step(name):
            if name == {step!r}:
                os.kill(os.getpid(), signal.SIGKILL)
        try:
            with writing({str(project)!r}) as w:
                w.commit({CHANGE!r}, step=step)
        except ProjectFileError as exc:
            print(exc, file=sys.stderr)
            sys.exit(1)
    """)
    return subprocess.run([*(UNPRIVILEGED if user else []), sys.executable, "-c", code],
                          capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)


# root writes into a read-only directory anyway: drop the capabilities that let it (the
# child starts without them), so the directory's mode decides as it does for anyone else.
UNPRIVILEGED = (["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner,-linux_immutable",
                 "--"] if os.geteuid() == 0 else [])


def _expected_after(before: dict) -> dict:
    after = dict(before)
    after["services/billing"] = "dir"
    for rel, text in CHANGE.items():
        after[rel] = text.encode()
    return after


def test_a_change_is_written_whole(project):
    before = tree(project)
    assert write_files(project, CHANGE) == list(CHANGE)
    assert tree(project) == _expected_after(before)


def test_a_file_size_limit_mid_change_changes_nothing(project):
    """RLIMIT_FSIZE (what a full disk does to one write): the first files fit, a later one
    does not; every file is as before, no temporary file or journal is left."""
    before = tree(project)
    run = _writer_process(project, before="import resource; resource.setrlimit("
                          "resource.RLIMIT_FSIZE, (2000, 2000))")
    assert run.returncode == 1, run.stderr
    assert run.stderr.startswith("services/billing/service.yaml: cannot be written (File too large")
    assert "nothing was changed" in run.stderr and "Traceback" not in run.stderr
    assert tree(project) == before


def test_a_read_only_directory_changes_nothing(project):
    before = tree(project)
    os.chmod(project / "services/api", 0o555)  # the second file of the change cannot be written
    try:
        run = _writer_process(project, user=True)
    finally:
        os.chmod(project / "services/api", 0o755)
    assert run.returncode == 1, run.stderr
    assert "services/api/dev.yaml" in run.stderr and "nothing was changed" in run.stderr
    assert tree(project) == before


STEPS = ["journal", *(f"write:{rel}" for rel in CHANGE), "commit",
         *(f"rename:{rel}" for rel in CHANGE)]


@pytest.mark.parametrize("step", STEPS)
def test_a_killed_writer_leaves_all_or_nothing_once_the_next_writer_runs(project, step):
    """Killed at each step: the next writer (any command that writes) undoes a change killed
    while preparing and finishes one killed after its commit point. Nothing is lost, nothing
    is half-written, no temporary file stays."""
    before = tree(project)
    run = _writer_process(project, step=step)
    assert run.returncode == -signal.SIGKILL
    with writing(project):
        pass
    after = tree(project)
    decided = STEPS.index(step) >= STEPS.index("commit")
    assert after == (_expected_after(before) if decided else before)
    assert not [p for p in after if "configplane-tmp" in p or JOURNAL in p]


def test_concurrent_writers_are_serialised(project):
    """Six processes each add one key to one file (read, then write, under the lock): all six
    keys are there."""
    (project / "keys.json").write_text("[]")
    code = textwrap.dedent(f"""
        import json, sys, time
        from configplane.projectfiles import writing
        with writing({str(project)!r}) as w:
            keys = json.loads(w.read_text("keys.json"))
            time.sleep(0.05)  # widen the window a lost update would need
            w.commit({{"keys.json": json.dumps(keys + [sys.argv[1]])}})
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i)], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)}) for i in range(6)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 6
    assert sorted(json.loads((project / "keys.json").read_text())) == [str(i) for i in range(6)]


def test_a_held_lock_is_refused_clearly_after_the_timeout(project):
    with writing(project), pytest.raises(ProjectFileError, match="another configplane command"), \
            writing(project, timeout=0.2):
        pass


def test_new_files_refuse_anything_already_there(project):
    (project / "services/api/prod.yaml").symlink_to("dev.yaml")
    with pytest.raises(ProjectFileError, match="exists already"):
        write_files(project, {"services/api/prod.yaml": "x: 1\n"}, new={"services/api/prod.yaml"})
    assert os.readlink(project / "services/api/prod.yaml") == "dev.yaml"


def test_a_written_file_keeps_its_mode(project):
    os.chmod(project / "Pulumi.yaml", 0o640)
    write_files(project, {"Pulumi.yaml": "name: x\n"})
    assert (project / "Pulumi.yaml").stat().st_mode & 0o777 == 0o640


def test_the_catalog_directory_is_the_ownership_models():
    """projectfiles keeps each service's files in services/<name>/: the same directory the
    ownership model gives a service (two stdlib facts that cannot import each other)."""
    from configplane import ownership, projectfiles

    assert projectfiles.CATALOG_DIR == ownership.CATALOG_DIR
    assert ownership.service_directory("api") == f"{projectfiles.CATALOG_DIR}/api/"
