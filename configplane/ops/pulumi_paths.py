"""Pulumi's addresses: resource URNs and property paths (as `detailedDiff` keys write them)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any


def urn_parts(urn: str) -> tuple[str, str, str, str]:
    """(stack, project, type, name) of `urn:pulumi:<stack>::<project>::<qual. type>::<name>`."""
    parts = urn.split("::", 3)
    if len(parts) != 4:
        return "", "", "", urn
    stack = parts[0].removeprefix("urn:pulumi:")
    return stack, parts[1], parts[2].rsplit("$", 1)[-1], parts[3]


_SEGMENT = re.compile(r'\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]|\.?([^.\[\]]+)')


def parse_path(path: str) -> tuple[str | int, ...]:
    """Split a Pulumi property path (`a.b[0]["c.d"]`) into keys and indexes."""
    segments: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _SEGMENT.match(path, pos)
        if not m or m.end() == pos:
            return (path,)  # not a path we understand: treat it as one key
        index, quoted, name = m.groups()
        if index is not None:
            segments.append(int(index))
        elif quoted is not None:
            segments.append(re.sub(r"\\(.)", r"\1", quoted))
        else:
            segments.append(name)
        pos = m.end()
    return tuple(segments)


def lookup(value: Any, segments: Sequence[str | int]) -> tuple[bool, Any]:
    """(found, value) at `segments` of a JSON value."""
    for seg in segments:
        if isinstance(seg, int) and isinstance(value, list) and 0 <= seg < len(value):
            value = value[seg]
        elif isinstance(seg, str) and isinstance(value, dict) and seg in value:
            value = value[seg]
        else:
            return False, None
    return True, value


def related(a: Sequence[str | int], b: Sequence[str | int]) -> bool:
    """True when one path contains the other (`tokenPolicies` and `tokenPolicies[1]`)."""
    n = min(len(a), len(b))
    return n > 0 and tuple(a[:n]) == tuple(b[:n])
