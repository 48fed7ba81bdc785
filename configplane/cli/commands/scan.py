"""`configplane scan`: the policy pack's plaintext-secret detector over key/value pairs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

import click

from configplane.cli.boundary import UserError, Verb, current_run
from configplane.cli.commands.options import PROJECT_DIR_OPTION

FIELDS = ("id", "key", "value")


def read_pairs(stream: IO[bytes], name: str) -> list[tuple[str, str, str]]:
    """(id, key, value) for each non-blank line; a bad line is a UserError naming it."""
    fix = 'each line must be a JSON object like {"id": "1", "key": "DB_PASSWORD", "value": "..."}'
    pairs = []
    for number, raw in enumerate(stream, start=1):
        where = f"{name}, line {number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{where}: not UTF-8 text; save the file as UTF-8") from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except RecursionError:
            raise UserError(f"{where}: nested too deeply to read; {fix}") from None
        except json.JSONDecodeError as exc:  # the message names a position, never the content
            raise UserError(f"{where}: not valid JSON ({exc.msg}); {fix}") from None
        if not isinstance(record, dict):
            raise UserError(f"{where}: a JSON object is expected; {fix}")
        bad = [f for f in FIELDS if not isinstance(record.get(f), str)]
        if bad:
            raise UserError(f"{where}: missing or non-string field(s) {', '.join(bad)}; {fix}")
        pairs.append((record["id"], record["key"], record["value"]))
    return pairs


@click.command("scan", cls=Verb)
@click.option(
    "--jsonl",
    "source",
    required=True,
    type=click.File("rb"),
    help='JSON Lines of {"id", "key", "value"} (other fields ignored); "-" reads stdin.',
)
@click.option(
    "--explain",
    is_flag=True,
    help="Add, per line, the key's kind, the value's kind and why each rule fired or none did "
    "(in words that never quote the value).",
)
@PROJECT_DIR_OPTION
def command(source: IO[bytes], explain: bool, project_dir: Path) -> None:
    """Tell which configuration values are plaintext secrets.

    Uses the policy pack's own detector (the project's policies/, see --project-dir).
    Writes one JSON line per input line, in order: {"id": ..., "secret": true|false,
    "rules": [...]}, the rules being the ids of the detection rules that fired. With
    --explain each line also has "key_kind" (password, secret, token, ambiguous, identifier,
    public, setting, text or neutral), "value_kind" (literal, reference, placeholder, path,
    url, hash, ...) and "why": one sentence per rule that fired, or one saying why none did.
    Values are never printed.

    Example: configplane scan --jsonl pairs.jsonl > findings.jsonl

    Example: configplane scan --explain --jsonl pairs.jsonl
    """
    name = getattr(source, "name", "-")
    name = "<stdin>" if name in ("-", "<stdin>", 0) else str(name)
    pairs = read_pairs(source, name)
    run = current_run()
    run.redactor.foreign([id_ for id_, _, _ in pairs])  # ids are echoed: foreign text
    detector = run.detector
    if not explain:
        findings = detector.scan_many((key, value) for _, key, value in pairs)
        for (id_, _, _), found in zip(pairs, findings, strict=True):
            click.echo(json.dumps({"id": id_, "secret": found.secret, "rules": found.rules}))
        return
    for id_, key, value in pairs:
        why = detector.explain(key, value)
        click.echo(json.dumps({
            "id": id_, "secret": why.finding.secret, "rules": why.finding.rules,
            "key_kind": why.key_kind.kind, "value_kind": why.value_kind, "why": why.reasons,
        }))
