"""Load a stack, or list every problem that keeps it from loading (an unreadable file, a
file that is not UTF-8, an unknown service, schema errors), each naming its file and fix."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from configplane.inputs import PROJECT_FILE, StackFileError, read_inputs, stack_file_name
from configplane.model import InvalidStack, Issue, StackModel
from configplane.projectfiles import ProjectFileError, read_bytes
from configplane.validation.pipeline import load_stack


def load_or_issues(project_dir: Path, stack: str, services: Iterable[str] | None = None
                   ) -> tuple[StackModel | None, list[Issue]]:
    """The validated stack, or every problem found (an unreadable file is one problem).
    With `services`, only those services are read and checked."""
    try:
        inputs = read_inputs(project_dir, stack, services=services)
        missing = sorted(set(services or ()) - set(inputs.service_layers))
        if missing:
            return None, [Issue(f"services.{name}", f"services/{name}/", f"service `{name}` is "
                                f"not in stack {stack}. Fix: check the name (services/<name>/ "
                                "with service.yaml or <stack>.yaml).") for name in missing]
        return load_stack(inputs, project_dir / "schemas"), []
    except (StackFileError, InvalidStack) as exc:
        return None, issues_of(exc, stack)
    except UnicodeDecodeError as exc:
        return None, [undecodable(project_dir, stack, exc)]


def undecodable(project_dir: Path, stack: str, exc: UnicodeDecodeError) -> Issue:
    """The file that is not UTF-8 (the loader only says that one is not)."""
    for name in (PROJECT_FILE, stack_file_name(stack)):
        try:
            read_bytes(project_dir, name).decode("utf-8")
        except UnicodeDecodeError as found:
            exc = found
            break
        except (OSError, ProjectFileError):
            continue
    else:
        name = stack_file_name(stack)
    byte = exc.object[exc.start:exc.start + 1].hex()
    return Issue("", name, f"not UTF-8 text (byte 0x{byte} at offset {exc.start}). Fix: save "
                 "the file as UTF-8.")


def issues_of(exc: StackFileError | InvalidStack, stack: str) -> list[Issue]:
    """The problems behind a stack that cannot be loaded (an unreadable file is one)."""
    if isinstance(exc, InvalidStack):
        return exc.issues
    if exc.problem is not None:
        fix = "" if "Fix:" in exc.problem else ". Fix: check --stack and --project-dir."
        return [Issue("", exc.file or stack_file_name(stack), exc.problem + fix, exc.line)]
    file = str(exc).split(":", 1)[0] or stack_file_name(stack)
    return [Issue("", file, stack_file_problem(exc))]


def stack_file_problem(exc: StackFileError) -> str:
    """The message of an unreadable file, with the fix that fits it: a missing file is the
    wrong --stack or --project-dir; anything else is the file's content."""
    text = str(exc).split(": ", 1)[-1].rstrip(".")
    if "Fix:" in text:
        return text
    if "not found" in text or "No such file" in text:
        return f"{text}. Fix: check --stack and --project-dir."
    return f"{text}. Fix: correct the file at the place shown."
