"""The generated references in docs/ match the code (regenerate: python -m configplane.cli.reference)."""

from __future__ import annotations

import pytest

from configplane.cli.reference import cli_reference, policy_reference
from tests.conftest import REPO


@pytest.mark.parametrize(("file", "render"), [
    ("cli.md", cli_reference),
    ("policy-reference.md", lambda: policy_reference(REPO)),
])
def test_generated_reference_is_current(file, render) -> None:
    committed = (REPO / "docs" / file).read_text()
    assert committed == render(), f"docs/{file} is stale: run `venv/bin/python -m configplane.cli.reference`"
