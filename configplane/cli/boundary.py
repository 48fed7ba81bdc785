"""Shared pieces of the CLI shell: the output and error boundary, user errors, output formats.

Every byte a command writes to stdout or stderr goes through one `RedactingStream` that
applies the command's `Redactor` (configplane.redaction.redactor); `emit` redacts structured data
before it is rendered. `boundary()` wraps each command (configplane.cli.app): a user error is one
clean message, anything else a short internal-error message that prints no values.
"""

from __future__ import annotations

import errno
import io
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from configplane import projectfiles
from configplane.redaction import Redactor, file_secrets, stack_secrets

if TYPE_CHECKING:  # imported when a verb runs: `configplane --help` stays fast
    from configplane.inputs import RunContext

FORMAT_OPTION = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
DEBUG_ENV = "CONFIGPLANE_DEBUG"


class UserError(click.ClickException):
    """A problem with the user's input: printed as a clean message, exit 1, no traceback."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class OutputClosed(Exception):
    """stdout (or stderr) is closed: nothing can be printed there."""


# --- the run of the running command ------------------------------------------------------


def current_run() -> RunContext:
    """The running verb's context (configplane.inputs.RunContext): `Verb` creates it for each
    invocation and hands it down on click's context, so no two commands share one."""
    from configplane.inputs import RunContext

    ctx = click.get_current_context(silent=True)
    run = ctx.find_object(RunContext) if ctx is not None else None
    if run is None:
        raise RuntimeError("no configplane command is running (call it through its Verb)")
    return run


def redactor() -> Redactor:
    """The running command's redactor (what `emit` and the output streams apply)."""
    return current_run().redactor


def protect(*values: Any) -> None:
    """Make these values secret for the rest of the command."""
    redactor().add(*values)


def protect_stack(project_dir: Path, stack: str) -> None:
    """Every secret value of a stack's files, known before anything is printed. Files that do
    not parse are read line by line (a YAML error's message may quote a line)."""
    from configplane.inputs import (
        PROJECT_FILE,
        StackFileError,
        read_project_file,
        read_stack_files,
        stack_file_name,
    )

    run = current_run()
    files = [project_dir / PROJECT_FILE, project_dir / stack_file_name(stack)]
    try:  # keys declared secret: their values are secret even where the stack file is broken
        declared = [k for k, d in read_project_file(project_dir).declarations.items() if d.secret]
    except Exception:  # noqa: BLE001 - an unreadable project file is reported by the command
        declared = []
    run.redactor.add(*file_secrets(files, declared, run.detector))
    try:
        inputs = read_stack_files(project_dir, stack)
    except (StackFileError, OSError, ValueError, RecursionError, MemoryError):
        return
    except Exception:  # noqa: BLE001 - the loader's own failure is reported by the command
        return
    run.redactor.add(*stack_secrets(inputs, run.detector))


def emit(data: Any, fmt: str, render_table: Callable[[Any], None]) -> None:
    """Print `data` (redacted) as JSON, or hand it to `render_table` for people."""
    data = redactor().tree(data)
    if fmt == "json":
        json.dump(data, sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
    else:
        render_table(data)


def write_files(root: Path, files: Mapping[str, str], secrets: Redactor | None = None
                ) -> list[str]:
    """Write files the user asked for (`--out`, ...) under `root` through `secrets` (None: the
    running command's redactor): the same boundary as the screen, then the one atomic writer
    (all files or none, contained in `root`, under its write lock)."""
    redact = secrets or redactor()
    return projectfiles.write_files(root, {rel: redact.text(text) for rel, text in files.items()})


def write_text(path: Path, text: str, secrets: Redactor | None = None) -> None:
    """One file through the redactor and the atomic writer (see write_files)."""
    write_files(path.parent, {path.name: text}, secrets)


def plain_console(stderr: bool = False) -> Console:
    """A console that prints text as it is: no markup (`[secret]` stays), no emoji codes."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True, markup=False, emoji=False)


# --- streams ----------------------------------------------------------------------------


class RedactingStream(io.TextIOBase):
    """A text stream that redacts each line, with its command's redactor, before it reaches
    the real stream."""

    def __init__(self, target: Any, name: str, redactor: Redactor):
        self._redactor = redactor
        self._target = target
        self._name = name
        self._pending = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._target, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return getattr(self._target, "errors", None) or "strict"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        try:
            return bool(self._target is not None and self._target.isatty())
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        if self._target is None:
            raise OSError(errno.EBADF, f"{self._name} is closed")
        return self._target.fileno()

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            text = text.decode("utf-8", errors="replace")
        self._pending += text
        if "\n" in self._pending:
            done, self._pending = self._pending.rsplit("\n", 1)
            self._put(done + "\n")
        return len(text)

    def flush(self) -> None:
        if self._pending:
            text, self._pending = self._pending, ""
            self._put(text)
        if self._target is not None:
            try:
                self._target.flush()
            except ValueError:  # closed file object
                raise OutputClosed(self._name) from None

    def _put(self, text: str) -> None:
        if self._target is None:
            raise OutputClosed(self._name)
        try:
            self._target.write(self._redactor.text(text))
        except ValueError:
            raise OutputClosed(self._name) from None

    def raw(self) -> Any:
        """The stream behind this one, for the single deliberate exception (import's
        `--emit-value`, which writes one value into a pipe and refuses a terminal)."""
        self.flush()
        return self._target


def raw_stdout() -> Any:
    out = sys.stdout
    return out.raw() if isinstance(out, RedactingStream) else out


# --- the error boundary -------------------------------------------------------------------

def _input_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are always the input's fault; each names its file and fix."""
    from configplane.inputs import StackFileError
    from configplane.model import InvalidStack

    return (StackFileError, InvalidStack, projectfiles.ProjectFileError)


def _say(message: str) -> None:
    try:
        sys.stderr.write(message.rstrip("\n") + "\n")
        sys.stderr.flush()
    except (OutputClosed, OSError, ValueError):
        pass


@contextmanager
def boundary(redactor: Redactor | None = None) -> Iterator[None]:
    """Run one command: outputs redacted (by `redactor`, the command's; None: a fresh one),
    user errors clean, internal errors value-free."""
    redactor = redactor if redactor is not None else Redactor()
    saved = (sys.stdin, sys.stdout, sys.stderr)
    if sys.stdin is None:
        sys.stdin = open(os.devnull)  # noqa: SIM115 - a closed stdin reads as empty
    sys.stdout = RedactingStream(saved[1], "standard output", redactor)
    sys.stderr = RedactingStream(saved[2], "standard error", redactor)
    code = 0
    try:
        try:
            yield
        finally:
            try:
                sys.stdout.flush()
            except (OutputClosed, BrokenPipeError):
                raise
            except OSError as exc:
                raise OutputClosed(f"standard output ({exc.strerror})") from None
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except click.Abort:
        _say("Aborted!")
        code = 1
    except OutputClosed as exc:
        _say(f"error: cannot write the output: {exc} is closed. Fix: run the command with "
             "its output open (a terminal, a pipe or a file: `> out.json`).")
        code = 1
    except BrokenPipeError:
        code = 1  # the reader went away (`| head`): nothing more to say
    except _input_errors() as exc:
        _say(f"error: {exc}")
        code = 1
    except UnicodeDecodeError as exc:
        _say(f"error: an input file is not UTF-8 text (byte offset {exc.start}). Fix: save the "
             "files as UTF-8.")
        code = 1
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        _say(f"error: cannot access{where}: {exc.strerror or type(exc).__name__}. Fix: check "
             "the path and its permissions.")
        code = 1
    except RecursionError:
        _say("error: the input is nested too deeply to process. Fix: flatten the document.")
        code = 1
    except MemoryError:
        _say("error: the input is too large to process. Fix: split or shrink the files.")
        code = 1
    except Exception as exc:  # noqa: BLE001 - the boundary: a bug, reported without values
        if os.environ.get(DEBUG_ENV) == "1":
            _say("".join(traceback.format_exception(exc)))
        _say(f"error: internal error ({type(exc).__name__}); no values are shown. Fix: report "
             f"it with the command line; run with {DEBUG_ENV}=1 for the traceback.")
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, RedactingStream):
                try:
                    stream.flush()
                except (OutputClosed, OSError, ValueError):
                    pass
        if sys.stdin is not saved[0] and sys.stdin is not None:
            sys.stdin.close()
        sys.stdin, sys.stdout, sys.stderr = saved
    if code:
        raise SystemExit(code)


@contextmanager
def running(run: RunContext) -> Iterator[RunContext]:
    """Run code as a verb runs, outside click's parsing (another tool, a test): `run` is the
    current run, inside its own boundary."""
    with click.Context(click.Command("configplane"), obj=run), boundary(run.redactor):
        yield run


class Verb(click.Command):
    """A `configplane` verb: each invocation creates its run (configplane.inputs.RunContext:
    the project of `--project-dir`, the `--service` selection, that project's detector and a
    fresh redactor) and runs inside its own boundary, however it is invoked (through the
    group, or directly as tests and other tools call it)."""

    def invoke(self, ctx: click.Context) -> Any:
        from configplane.inputs import RunContext

        run = RunContext.create(ctx.params.get("project_dir") or Path("."),
                                ctx.params.get("services") or None)
        ctx.obj = run
        with boundary(run.redactor):
            return super().invoke(ctx)
