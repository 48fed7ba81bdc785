"""What every reader of an import input gives back, and the error they raise."""

from __future__ import annotations

from dataclasses import dataclass, field


class ImportProblem(Exception):
    """Input that cannot be imported; the message names the file and the fix (never a value)."""


@dataclass(frozen=True)
class Entry:
    """One key read from an input. `value` is plaintext: it lives only while classifying."""

    key: str
    value: str = field(repr=False)
    origin: str  # "billing.env line 3", "billing.yaml: Secret billing-secrets"
    source: str  # the input path as the user gave it
    always_secret: bool  # a Secret manifest's key
