"""Read a `.env` file with python-dotenv's parser (the file format most tools follow).

`dotenv.parser.parse_stream` gives each binding with its line, so every key keeps its origin
(`billing.env line 5`) and a bad line is reported by number. Values are taken as written:
no `${VAR}` interpolation (the file is an inventory, not an environment to expand), double
quotes decode `\\n \\t \\" \\\\` and the like, single quotes only `\\'` and `\\\\`, a quoted value
may span lines, and `# comment` after an unquoted value needs a space before the `#`. A line
python-dotenv cannot parse (or a key with no `=`) is an error naming the line; the line itself
is never quoted, since it may hold a secret.

Differences from the hand-written parser this replaced, kept because they are python-dotenv's
grammar (and so how a service that loaded the file with it saw its values): single quotes
decode `\\'` and `\\\\`; `\\$` in double quotes stays `\\$`; and in a double-quoted value a
final `\\` before the closing quote can read as an escaped quote when another `"` follows later
in the file, so the value runs on to that quote (mostly an error: text after the quoted
value). Such a value is read as written when left unquoted (`KEY=C:\\`).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from dotenv.parser import parse_stream

from configplane.ops.importer.entry import Entry, ImportProblem

_QUOTED = re.compile(r"""\s*(?:export\s+)?([^=\s#'"]+)\s*=\s*(['"])""")


def read_dotenv(source: str, text: str) -> list[Entry]:
    found = []
    for binding in parse_stream(io.StringIO(text)):
        raw = binding.original.string
        # a binding's text starts with the blank lines before it: count them off
        number = binding.original.line + raw[: len(raw) - len(raw.lstrip())].count("\n")
        key, value = binding.key, binding.value
        if key is None and not binding.error:
            continue  # a comment or blank lines
        if binding.error or key is None or value is None:
            raise ImportProblem(_problem(source, number, raw.strip()))
        found.append(Entry(key, value, f"{Path(source).name} line {number}",
                           source, False))
    return found


def _problem(source: str, number: int, line: str) -> str:
    quoted = _QUOTED.match(line)
    if quoted is None:
        return f"{source} line {number}: not a KEY=VALUE line. Fix: correct or comment it out."
    key, quote = quoted.groups()
    rest = line[quoted.end():]
    closed = quote in rest if quote == "'" else re.search(r'(?<!\\)"', rest) is not None
    if closed:
        return (f"{source} line {number}: text after the quoted value of {key}. Fix: quote the "
                "whole value.")
    return f"{source} line {number}: the value of {key} has no closing {quote}. Fix: close the quote."
