"""Durations as Go's time.ParseDuration writes them (cert-manager's `duration`, Vault TTLs):
the program's one codec. (The pack reads durations with its own, broader reader,
policies/credentials_lib.go_seconds: docs/service-resources.md.)

Only the units configplane accepts in stack files: hours, minutes, seconds (`720h`, `1h30m`,
`90s`). Stdlib only.
"""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+)([hms])")
# The forms stack files may use (model.py uses it as the JSON Schema pattern)
GO_DURATION = r"^(\d+h(\d+m)?(\d+s)?|\d+m(\d+s)?|\d+s)$"
_UNIT = {"h": 3600, "m": 60, "s": 1}


def seconds(text: str) -> int:
    """`1h30m` -> 5400. Raises ValueError on anything else."""
    if not re.fullmatch(GO_DURATION, text):
        raise ValueError(f"not a duration like 720h, 1h30m or 90s: {text!r}")
    return sum(int(n) * _UNIT[u] for n, u in _PART.findall(text))


def go_duration(total: int) -> str:
    """5400 -> `1h30m`; 0 -> `0s`. The inverse of `seconds` on its canonical forms."""
    if total < 0:
        raise ValueError("negative duration")
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (
        f"{secs}s" if secs else "")
    return text or "0s"


def eso_interval(total: int) -> str:
    """A refresh interval in the single-unit form configplane writes (`20m`, `45s`)."""
    if total % 3600 == 0:
        return f"{total // 3600}h"
    if total % 60 == 0:
        return f"{total // 60}m"
    return f"{total}s"
