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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

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
# A bug in configplane, not a problem with the input (1) or the command line (2): scripts and
# CI can tell them apart. 70 is EX_SOFTWARE of BSD's sysexits.h ("internal software error").
EXIT_INTERNAL = 70


class UserError(click.ClickException):
    """A problem with the user's input: printed as a clean message, exit 1, no traceback."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"{error_prefix()} {self.format_message()}", err=True)


class OutputClosed(Exception):
    """stdout (or stderr) is closed: nothing can be printed there."""


class InputClosed(Exception):
    """stdin is closed (`<&-`): reading it is an error, not an empty input."""


class _ClosedInput(io.TextIOBase):
    """What stdin is when the process has none: reading it raises InputClosed. `read(0)`
    too, so click's probe for a binary stream falls back to `buffer` (this object again)."""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> Any:
        raise InputClosed

    def readline(self, size: int | None = -1) -> Any:
        raise InputClosed

    def readinto(self, buffer: Any) -> int:
        raise InputClosed

    @property
    def buffer(self) -> _ClosedInput:
        return self


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


def protect_stack(project_dir: Path, stack: str, services: Iterable[str] | None = None) -> None:
    """Every secret value of a stack's files, known before anything is printed. Files that do
    not parse are read line by line (a YAML error's message may quote a line). `services`:
    a command that reads only these catalog services (`--service`) protects their files and
    the platform's, not the whole catalog's, which it never reads or prints."""
    from configplane.inputs import (
        PROJECT_FILE,
        StackFileError,
        is_stack_name,
        read_inputs,
        read_project_file,
        shard_stack_files,
        stack_file_name,
    )

    run = current_run()
    # the environment's shard stack files hold its services' secure values (docs/fleet.md)
    shards = shard_stack_files(project_dir, stack) if is_stack_name(stack) else ()
    files = [project_dir / PROJECT_FILE, project_dir / stack_file_name(stack),
             *(project_dir / stack_file_name(shard) for shard in shards)]
    try:  # keys declared secret: their values are secret even where the stack file is broken
        declared = [k for k, d in read_project_file(project_dir).declarations.items() if d.secret]
    except Exception:  # noqa: BLE001 - an unreadable project file is reported by the command
        declared = []
    run.redactor.add(*file_secrets(files, declared, run.detector))
    try:
        inputs = read_inputs(project_dir, stack, services=services)
    except (StackFileError, OSError, ValueError, RecursionError, MemoryError):
        return
    except Exception:  # noqa: BLE001 - the loader's own failure is reported by the command
        return
    run.redactor.add(*stack_secrets(inputs, run.detector))


def emit(data: Any, fmt: str, render_table: Callable[[Any], None],
         shown: Callable[[Any], Any] | None = None) -> None:
    """Print `data` (redacted) as JSON, or hand it to `render_table` for people: with its own
    key names, so a secret that happens to be part of one (`secret` in `secrets`) cannot break
    the renderer; the stream hides it where it is printed. `shown`: the part of `data` the
    table prints, the only part judged for it (a plan's table names its resources, not their
    inputs); the keys of the rest are judged as before (`Redactor.learn_keys`)."""
    secrets = redactor()
    if fmt == "json":  # one write: the stream redacts it in one pass, not per JSON token
        sys.stdout.write(json.dumps(secrets.tree(data), indent=2, sort_keys=False) + "\n")
    elif shown is None:
        render_table(secrets.tree(data, keep_keys=True))
    else:
        secrets.learn_keys(data)
        render_table(secrets.tree(shown(data), keep_keys=True))


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


def check_written(file: str, data: Any) -> None:
    """Refuse to write `data` into `file` when the redactor would change any of it: a file
    gets nothing the screen would hide, and a catalog file cannot hold `[secret]` instead."""
    if redactor().tree(data) != data:
        raise UserError(f"{file}: what would be written holds a value or a name that is a "
                        "secret; nothing was written. Fix: move the value out of the input "
                        "(or rename the key), then import again.")


# --- output for people and for pipes --------------------------------------------------------

NO_COLOR_META = "configplane.no_color"  # set by a verb's --no-color
MARK_STYLES = {"+": "green", "-": "red", "~": "yellow", "+-": "magenta"}
PLAIN_GAP = "  "  # between the columns of a table printed for a pipe


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def colour_wanted(stream: Any) -> bool:
    """Colour only for a person at a terminal: never into a pipe or a file, nor with NO_COLOR
    set to anything (https://no-color.org), TERM=dumb or --no-color."""
    ctx = click.get_current_context(silent=True)
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb" or \
            (ctx is not None and ctx.meta.get(NO_COLOR_META)):
        return False
    return is_terminal(stream)


def plain_console(stderr: bool = False) -> Console:
    """A console that prints text as it is: no markup (`[secret]` stays), no emoji codes, no
    wrapping of printed lines; colour only where `colour_wanted` (FORCE_COLOR is not obeyed: a
    pipe gets plain text)."""
    stream = sys.stderr if stderr else sys.stdout
    colour = colour_wanted(stream)
    return Console(file=stream, highlight=False, soft_wrap=True, markup=False, emoji=False,
                   force_terminal=is_terminal(stream), no_color=not colour,
                   color_system="standard" if colour else None)


def marked(mark: str, rest: str) -> Text:
    """A line that starts with a change mark (`+` create, `~` update, `+-` replace, `-`
    delete): the mark coloured where colour is wanted, the rest (names, values) never."""
    return Text.assemble((mark, MARK_STYLES.get(mark, "")), rest)


def error_prefix(stream: Any = None) -> str:
    """`error:`, red on a terminal that wants colour."""
    stream = stream if stream is not None else sys.stderr
    return click.style("error:", fg="red", bold=True) if colour_wanted(stream) else "error:"


def print_table(console: Console, title: str | None, columns: Sequence[str],
                rows: Iterable[Sequence[str]], *, whole: Iterable[str] = ()) -> None:
    """A table: boxed and folded to the width of a terminal; into a pipe or a file, plain
    aligned lines, each row one whole line (a `file:line` is never split), no trailing
    spaces. `whole`: columns never folded on a terminal either."""
    cells = [[" ".join(str(cell).splitlines()) for cell in row] for row in rows]
    if not console.is_terminal:
        for line in plain_table(title, columns, cells):
            console.print(line)
        return
    keep = set(whole)
    grid = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        grid.add_column(column, no_wrap=column in keep, overflow="fold")
    for row in cells:
        grid.add_row(*row)
    console.print(grid)


def plain_table(title: str | None, columns: Sequence[str], rows: list[list[str]]) -> list[str]:
    """The lines of a table for a pipe: the title, the header, one line per row, columns
    aligned (the last one as long as it is)."""
    widths = [max([len(column), *(len(row[i]) for row in rows)])
              for i, column in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(width) for cell, width in zip(cells[:-1], widths, strict=False)]
        return PLAIN_GAP.join([*padded, cells[-1]]).rstrip()

    return [*([title] if title else []), line(columns), *(line(row) for row in rows)]


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
        text = self._redactor.text(text)
        try:
            self._target.write(text)
        except UnicodeEncodeError:  # a lone surrogate (from a JSON escape) is not text
            self._target.write(text.encode(self.encoding, "replace").decode(self.encoding))
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
    from configplane.model import ClockError, InvalidStack

    return (StackFileError, InvalidStack, ClockError, projectfiles.ProjectFileError)


def _say(message: str) -> None:
    try:
        if message.startswith("error:"):
            message = error_prefix() + message.removeprefix("error:")
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
        sys.stdin = _ClosedInput()
    sys.stdout = RedactingStream(saved[1], "standard output", redactor)
    sys.stderr = RedactingStream(saved[2], "standard error", redactor)
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
    message = _error_message(exc)
    if message is not None:
        _say(message)
        return 1
    # a bug, reported without values
    if os.environ.get(DEBUG_ENV) == "1":
        _say("".join(traceback.format_exception(exc)))
    _say(f"error: internal error ({type(exc).__name__}); no values are shown. Fix: report "
         f"it with the command line; run with {DEBUG_ENV}=1 for the traceback.")
    return EXIT_INTERNAL


def _error_message(exc: BaseException) -> str | None:
    """The one message for an input or environment error (checked in the order of
    specificity); None for anything else, a bug."""
    if isinstance(exc, OutputClosed):
        return (f"error: cannot write the output: {exc} is closed. Fix: run the command with "
                "its output open (a terminal, a pipe or a file: `> out.json`).")
    if isinstance(exc, InputClosed):
        return ("error: cannot read the input: standard input is closed. Fix: pipe the input "
                "in, or give a file instead of `-`.")
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
    return None


@contextmanager
def running(run: RunContext) -> Iterator[RunContext]:
    """Run code as a verb runs, outside click's parsing (another tool, a test): `run` is the
    current run, inside its own boundary."""
    with click.Context(click.Command("configplane"), obj=run), boundary(run.redactor):
        yield run


def _refuse_colour(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[NO_COLOR_META] = True


class Verb(click.Command):
    """A `configplane` verb: each invocation creates its run (configplane.inputs.RunContext:
    the project of `--project-dir`, the `--service` selection, that project's detector and a
    fresh redactor) and runs inside its own boundary, however it is invoked (through the
    group, or directly as tests and other tools call it). A verb that writes no project file
    (`read_only=True`) reads each stack's catalog once (configplane.inputs.reading_once)."""

    def __init__(self, *args: Any, read_only: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_only = read_only
        self.params.append(click.Option(
            ["--no-color"], is_flag=True, expose_value=False, callback=_refuse_colour,
            help="No colour, even on a terminal (as NO_COLOR=1 or TERM=dumb).",
        ))

    def invoke(self, ctx: click.Context) -> Any:
        from configplane.inputs import RunContext, keeping_parses, keeping_verdicts, reading_once

        run = RunContext.create(ctx.params.get("project_dir") or Path("."),
                                ctx.params.get("services") or None)
        ctx.obj = run
        # parses of catalog files and the detector's "not secret" verdicts are kept when the
        # command ends, without anything its redactor knows as secret by then
        # (configplane.inputs.parsecache, configplane.inputs.verdictcache)
        with (boundary(run.redactor), keeping_parses(run.redactor),
              keeping_verdicts(run.redactor),
              reading_once() if self.read_only else nullcontext()):
            return super().invoke(ctx)
