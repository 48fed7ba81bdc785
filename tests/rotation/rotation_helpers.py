"""Helpers shared by the rotation tests (a unique module name: tests folders have no
__init__.py, so a plain `conftest` import could find another folder's)."""

from __future__ import annotations

import uuid

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


def canary(label: str = "CANARY") -> str:
    """A recognisable secret value for the leak checks."""
    return f"{label}-{uuid.uuid4().hex}"
