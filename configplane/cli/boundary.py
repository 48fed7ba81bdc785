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
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from configplane.redaction import Redactor, file_secrets, stack_secrets

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


# --- the redactor of the running command -------------------------------------------------

_ACTIVE = Redactor()


def redactor() -> Redactor:
    """The running command's redactor (what `emit` and the output streams apply)."""
    return _ACTIVE


def protect(*values: Any) -> None:
    """Make these values secret for the rest of the command."""
    _ACTIVE.add(*values)


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

    files = [project_dir / PROJECT_FILE, project_dir / stack_file_name(stack)]
    try:  # keys declared secret: their values are secret even where the stack file is broken
        declared = [k for k, d in read_project_file(project_dir).declarations.items() if d.secret]
    except Exception:  # noqa: BLE001 - an unreadable project file is reported by the command
        declared = []
    _ACTIVE.add(*file_secrets(files, declared))
    try:
        inputs = read_stack_files(project_dir, stack)
    except (StackFileError, OSError, ValueError, RecursionError, MemoryError):
        return
    except Exception:  # noqa: BLE001 - the loader's own failure is reported by the command
        return
    _ACTIVE.add(*stack_secrets(inputs))


def emit(data: Any, fmt: str, render_table: Callable[[Any], None]) -> None:
    """Print `data` (redacted) as JSON, or hand it to `render_table` for people."""
    data = _ACTIVE.tree(data)
    if fmt == "json":
        json.dump(data, sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
    else:
        render_table(data)


def write_text(path: Path, text: str) -> None:
    """Write a file the user asked for (`--out`, import) through the redactor."""
    path.write_text(_ACTIVE.text(text))


def plain_console(stderr: bool = False) -> Console:
    """A console that prints text as it is: no markup (`[secret]` stays), no emoji codes."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True, markup=False, emoji=False)


# --- streams ----------------------------------------------------------------------------


class RedactingStream(io.TextIOBase):
    """A text stream that redacts each line before it reaches the real stream."""

    def __init__(self, target: Any, name: str):
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
            self._target.write(_ACTIVE.text(text))
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

    return (StackFileError, InvalidStack)


def _say(message: str) -> None:
    try:
        sys.stderr.write(message.rstrip("\n") + "\n")
        sys.stderr.flush()
    except (OutputClosed, OSError, ValueError):
        pass


@contextmanager
def boundary() -> Iterator[None]:
    """Run one command: outputs redacted, user errors clean, internal errors value-free."""
    global _ACTIVE
    saved = (sys.stdin, sys.stdout, sys.stderr)
    previous, _ACTIVE = _ACTIVE, Redactor()
    if sys.stdin is None:
        sys.stdin = open(os.devnull)  # noqa: SIM115 - a closed stdin reads as empty
    sys.stdout = RedactingStream(saved[1], "standard output")
    sys.stderr = RedactingStream(saved[2], "standard error")
    code = 0
    try:
        try:
            yield
        finally:
            _flush_stdout()
    except (SystemExit, Exception) as exc:  # noqa: BLE001 - the boundary: every end has a code
        code = _exit_code(exc)
    finally:
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, RedactingStream):
                with suppress(OutputClosed, OSError, ValueError):
                    stream.flush()
        if sys.stdin is not saved[0] and sys.stdin is not None:
            sys.stdin.close()
        sys.stdin, sys.stdout, sys.stderr = saved
        _ACTIVE = previous
    if code:
        raise SystemExit(code)


def _flush_stdout() -> None:
    """What the command printed goes out before the boundary closes; a closed stdout is an
    OutputClosed (a reader gone away, BrokenPipeError, stays one)."""
    try:
        sys.stdout.flush()
    except (OutputClosed, BrokenPipeError):
        raise
    except OSError as exc:
        raise OutputClosed(f"standard output ({exc.strerror})") from None


def _exit_code(exc: BaseException) -> int:
    """How a command ended: its own exit, click's, or an error said once, cleanly."""
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if isinstance(exc, click.exceptions.Exit):
        return exc.exit_code
    if isinstance(exc, click.ClickException):
        exc.show()
        return exc.exit_code
    if isinstance(exc, click.Abort):
        _say("Aborted!")
        return 1
    if isinstance(exc, BrokenPipeError):
        return 1  # the reader went away (`| head`): nothing more to say
    _say(_error_message(exc))
    return 1


def _error_message(exc: BaseException) -> str:
    """The one message for an error (checked in the order of specificity)."""
    if isinstance(exc, OutputClosed):
        return (f"error: cannot write the output: {exc} is closed. Fix: run the command with "
                "its output open (a terminal, a pipe or a file: `> out.json`).")
    if isinstance(exc, _input_errors()):
        return f"error: {exc}"
    if isinstance(exc, UnicodeDecodeError):
        return (f"error: an input file is not UTF-8 text (byte offset {exc.start}). Fix: save the "
                "files as UTF-8.")
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return (f"error: cannot access{where}: {exc.strerror or type(exc).__name__}. Fix: check "
                "the path and its permissions.")
    if isinstance(exc, RecursionError):
        return "error: the input is nested too deeply to process. Fix: flatten the document."
    if isinstance(exc, MemoryError):
        return "error: the input is too large to process. Fix: split or shrink the files."
    # a bug, reported without values
    if os.environ.get(DEBUG_ENV) == "1":
        _say("".join(traceback.format_exception(exc)))
    return (f"error: internal error ({type(exc).__name__}); no values are shown. Fix: report "
            f"it with the command line; run with {DEBUG_ENV}=1 for the traceback.")


class Verb(click.Command):
    """A `configplane` verb: it runs inside its own boundary, with its own redactor, however it
    is invoked (through the group, or directly as tests and other tools call it)."""

    def invoke(self, ctx: click.Context) -> Any:
        with boundary():
            return super().invoke(ctx)
