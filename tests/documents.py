"""Walking JSON-like documents in tests that mutate them: every key path, and the container
one path ends in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def paths(document: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every key path of `document`, the empty path (the document itself) first."""
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from paths(value, (*prefix, index))


def parent(document: Any, path: tuple) -> Any:
    """The dict or list that holds the value at `path` (a non-empty path)."""
    node = document
    for key in path[:-1]:
        node = node[key]
    return node
