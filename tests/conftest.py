from __future__ import annotations

from pathlib import Path

import pytest

from tests.projects import REPO, copy_project

SHARED = REPO.parent / "shared"
STACKS = ("dev", "staging", "prod")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project that a test may break."""
    return copy_project(tmp_path / "project")
