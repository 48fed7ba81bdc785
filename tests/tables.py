"""Reading back tables as `configplane` prints them into a pipe (configplane.cli.boundary's
plain_table): a title, a header line, one whole line per row, each column starting where its
name starts in the header (two spaces before it)."""

from __future__ import annotations

import re


def _starts(header: str) -> list[int]:
    # a name may hold single spaces ("each variant gets"); columns are two spaces apart
    return [found.start() for found in re.finditer(r"\S+(?: \S+)*", header)]


def plain_rows(output: str, header: str) -> list[list[str]]:
    """The rows of every table whose header line starts with `header`, cut at the header's
    columns; a table ends at the first line without the gap before its second column."""
    rows: list[list[str]] = []
    starts: list[int] | None = None
    for line in output.splitlines():
        if line.startswith(header):
            starts = _starts(line)
        elif starts is not None and line[starts[1] - 2:starts[1]] == "  ":
            cuts = [*starts[1:], None]
            rows.append([line[a:b].strip() for a, b in zip(starts, cuts, strict=True)])
        else:
            starts = None
    return rows
