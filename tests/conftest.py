from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

from tests.projects import REPO, copy_project

# Speed is measured in benchmarks/, never by a test: Hypothesis' per-example deadline fails a
# property on a loaded machine (a first example that compiles its regexes took 370 ms on the
# shared CI cores), so no property has one.
settings.register_profile("configplane", deadline=None)
settings.load_profile("configplane")

SHARED = REPO.parent / "shared"
STACKS = ("dev", "staging", "prod")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project that a test may break."""
    return copy_project(tmp_path / "project")
