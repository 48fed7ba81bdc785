from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture(scope="session", autouse=True)
def _own_cache_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session's caches (compiled schemas, parses, verdicts: $XDG_CACHE_HOME/configplane)
    in a directory of its own, never the user's: the tests' packs and projects make identities
    of their own, which would take the places of the user's bundles (the parse cache keeps the
    last four written), and CI restores main's caches into the user's directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project that a test may break."""
    return copy_project(tmp_path / "project")
