"""Output that reads well, checked byte for byte as a person and a pipe get it.

The commands run as processes, once with stdout and stderr on pseudo-terminals (pty) and once
on pipes. On a pipe: no colour, no wrapping (tables are plain aligned lines, whatever COLUMNS
says), so `file:line` stays whole. On a terminal: colour for the change marks and for
`error:`, except with NO_COLOR (any non-empty value, https://no-color.org), TERM=dumb or
--no-color.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from configplane.cli.app import main
from configplane.model import SOURCE_FIELDS
from tests.conftest import STACKS
from tests.projects import copy_project

CONFIGPLANE = str(Path(sys.executable).parent / "configplane")
ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
RED_ERROR = "\x1b[31m\x1b[1merror:\x1b[0m"  # click.style("error:", fg="red", bold=True)
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-7]|9[0-7])(?:;[0-9;]*)?m")
BOX = set("┏┓┗┛━┃│─┡┩╇┳┻╋┼")


@dataclass(frozen=True)
class Output:
    code: int
    stdout: str
    stderr: str


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "CI", "TERM")}
    return {**env, "TERM": "xterm-256color", **extra}


def on_pipes(args: list[str], cwd: Path, **env: str) -> Output:
    done = subprocess.run([CONFIGPLANE, *args], cwd=cwd, capture_output=True, text=True,
                          env=clean_env(**env), timeout=300)
    return Output(done.returncode, done.stdout, done.stderr)


def _terminal(columns: int) -> tuple[int, int]:
    master, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    return master, child


def _drain(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def on_terminals(args: list[str], cwd: Path, columns: int = 100, **env: str) -> Output:
    """stdout and stderr each on its own pseudo-terminal `columns` wide."""
    (out_master, out_child), (err_master, err_child) = _terminal(columns), _terminal(columns)
    process = subprocess.Popen([CONFIGPLANE, *args], cwd=cwd, stdin=subprocess.DEVNULL,
                               stdout=out_child, stderr=err_child, env=clean_env(**env))
    os.close(out_child)
    os.close(err_child)
    stdout, stderr = _drain(out_master), _drain(err_master)  # small outputs: no deadlock
    return Output(process.wait(timeout=300), stdout, stderr)


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> Path:
    """A project with one error whose message is longer than any terminal."""
    project = copy_project(tmp_path_factory.mktemp("output") / "project")
    path = project / "services" / "api" / "service.yaml"
    path.write_text(path.read_text().replace("  PORT: 8080", '  PORT: "eighty"'))
    return project


PIPED_VALIDATE = (
    "stack prod: 1 error\n"
    "file                         path                      problem and fix\n"
    "services/api/service.yaml:5  services.api.config.PORT  app schema HTTP API service: wrong "
    "type. Fix: use a value of type integer.\n"
)


@pytest.mark.parametrize("columns", [None, "20"])
def test_a_table_into_a_pipe_is_plain_whole_lines(broken, columns):
    env = {"COLUMNS": columns} if columns else {}
    out = on_pipes(["validate", "--stack", "prod"], broken, **env)
    assert (out.code, out.stdout, out.stderr) == (1, PIPED_VALIDATE, "")


def test_a_table_on_a_terminal_is_boxed_and_folds_to_its_width(broken):
    out = on_terminals(["validate", "--stack", "prod"], broken, columns=60)
    lines = ESCAPE.sub("", out.stdout).splitlines()  # rich's own title and header styles
    assert out.code == 1 and lines[0] == "stack prod: 1 error"
    assert all(len(line) <= 60 for line in lines) and BOX & set(out.stdout)
    assert "services/api/service.yaml:5" not in out.stdout  # folded to fit: a terminal's way
    assert not COLOUR.search(out.stdout)  # a table of problems: words, no colour needed


def test_no_output_line_into_a_pipe_is_split_whatever_its_length(tmp_path):
    """Every problem of a project broken in many places: each on one line with its file:line."""
    project = copy_project(tmp_path / "project")
    for name in ("api", "worker", "web"):
        path = project / "services" / name / "service.yaml"
        document = yaml.safe_load(path.read_text())
        document["config"]["A_VERY_LONG_KEY_NAME_THAT_NO_TERMINAL_WOULD_FIT_" * 2 + name] = ["x"]
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    out = on_pipes(["validate", "--stack", "prod", "--format", "json"], project)
    errors = json.loads(out.stdout)["errors"]
    table = on_pipes(["validate", "--stack", "prod"], project, COLUMNS="30").stdout.splitlines()
    assert len(table) == 2 + len(errors) >= 3
    for error in errors:  # (the order of problems is not part of this test)
        where = error["file"] + (f":{error['line']}" if error.get("line") else "")
        [line] = [line for line in table[2:] if f"  {error['path']}  " in line]
        assert line.startswith(where + " ") and line.endswith("  " + error["message"])
    assert not BOX & set("".join(table)) and all(line == line.rstrip() for line in table)


def test_an_error_is_red_on_a_terminal_only(broken):
    typo = ["explain", "--stack", "prd", "api", "LOG_LEVEL"]
    message = on_pipes(typo, broken).stderr
    assert message.startswith("error: ") and "did you mean `prod`?" in message
    coloured = on_terminals(typo, broken)
    assert coloured.code == 1
    assert coloured.stderr == RED_ERROR + message.removeprefix("error:")


@pytest.mark.parametrize("switch", [{"NO_COLOR": "1"}, {"NO_COLOR": "yes please"},
                                    {"TERM": "dumb"}, {"flag": "--no-color"}])
def test_colour_can_be_refused(broken, switch):
    args = ["explain", "--stack", "prd", *([switch.pop("flag")] if "flag" in switch else []),
            "api", "LOG_LEVEL"]
    out = on_terminals(args, broken, **switch)
    assert out.code == 1 and out.stderr.startswith("error: ") and not ESCAPE.search(out.stderr)


def test_an_empty_no_color_does_not_refuse_colour(broken):
    # no-color.org: "when present and not an empty string"
    out = on_terminals(["explain", "--stack", "prd", "api", "LOG_LEVEL"], broken, NO_COLOR="")
    assert out.stderr.startswith(RED_ERROR)


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> dict[str, Output]:
    project = copy_project(tmp_path_factory.mktemp("plan") / "project", policies=True)
    args = ["plan", "--stack", "dev", "--service", "web", "--quiet"]
    return {"pipe": on_pipes(args, project), "terminal": on_terminals(args, project),
            "no colour": on_terminals(args, project, NO_COLOR="1")}


def test_the_create_marks_are_green_on_a_terminal_and_plain_elsewhere(planned):
    piped = planned["pipe"].stdout.splitlines()
    creates = [line for line in piped if line.startswith("  + ")]
    assert planned["pipe"].code == 0 and creates and not ESCAPE.search(planned["pipe"].stdout)
    shown = planned["terminal"].stdout.splitlines()
    assert [line for line in shown if "+" in line[:8]] == \
        [line.replace("  + ", "  \x1b[32m+\x1b[0m ", 1) for line in creates]
    assert ESCAPE.sub("", planned["terminal"].stdout) == planned["pipe"].stdout
    assert planned["no colour"].stdout == planned["pipe"].stdout


# --- explain shows what applies to a secret's source --------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("sample") / "project")


def test_explain_of_a_reference_secret_shows_no_generator_defaults(sample):
    out = on_pipes(["explain", "--stack", "prod", "worker", "secrets.PARTNER_WEBHOOK_TOKEN"],
                   sample)
    assert out.code == 0, out.stderr
    lines = out.stdout.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("key ")))
    assert [line.split()[0] for line in lines[header + 1:]] == \
        ["source", "store", "ref", "description"]


def secrets_of(stack: str, project: Path) -> list[tuple[str, str, dict]]:
    found = []
    for service in sorted((project / "services").iterdir()):
        for name in ("service.yaml", f"{stack}.yaml"):
            path = service / name
            document = yaml.safe_load(path.read_text()) if path.is_file() else None
            for key, spec in ((document or {}).get("secrets") or {}).items():
                found.append((service.name, key, spec or {}))
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_explain_shows_a_default_only_where_the_source_uses_it(sample, stack):
    """Every secret of every sample stack: a built-in default shown is one its source uses;
    what the files set is shown whatever the source."""
    runner = CliRunner()
    checked = 0
    for service, key, declared in secrets_of(stack, sample):
        result = runner.invoke(main, ["explain", "--stack", stack, "--project-dir", str(sample),
                                      "--format", "json", service, f"secrets.{key}"])
        assert result.exit_code == 0, result.stderr
        data = json.loads(result.stdout)
        assert not data["notes"]  # a valid stack: built-in defaults are shown
        checked += 1
        source = next(e["value"] for e in data["entries"] if e["path"].endswith(".source"))
        fields = {e["path"].removeprefix(f"secrets.{key}."): e for e in data["entries"]}
        for field, entry in fields.items():  # the spec's own fields (not `rotation.length`)
            if "." not in field and entry["set_by"]["layer"] == "default":
                assert source in SOURCE_FIELDS.get(field, (source,)), (service, key, field)
        shown = {field.split(".")[0] for field in fields}
        assert set(declared) <= shown | {"database", "rotation", "dynamic"}
    assert checked
