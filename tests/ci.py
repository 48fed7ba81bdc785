"""Are the tests running in CI, and what a missing dependency means there.

One rule for every test that needs something outside Python (kubectl, actionlint, the PostgreSQL
server binaries): in CI a missing one is a failure, elsewhere the test skips with the reason.
CI must not pass by testing nothing. "In CI" is any true-looking `CI` variable (GitHub Actions
and this project's CI set `CI=true`; `.ci/run` sets it when run by hand), so `CI=1` counts too.

The secret corpus is not such a dependency: it lives outside the repository (../shared), which
CI on GitHub does not have, so it is required by its own switch (tests/corpus.py), never by CI.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import pytest

_FALSE = ("", "0", "false", "no", "off")


def in_ci() -> bool:
    """True when the tests run in CI: `CI` is set to anything but an empty or false value."""
    return os.environ.get("CI", "").strip().lower() not in _FALSE


def missing(reason: str) -> NoReturn:
    """A dependency is missing: fail in CI (it must run the test), skip elsewhere."""
    if in_ci():
        pytest.fail(f"CI must run this test: {reason}", pytrace=False)
    pytest.skip(reason)


def tool(name: str, how_to_install: str) -> str:
    """The path of a command-line tool, from the venv running the tests (requirements-dev.txt
    installs some there) or PATH; a missing one goes through missing()."""
    path = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent),
                                                    os.environ.get("PATH", "")]))
    if path is None:
        missing(f"{name} is not installed: {how_to_install}")
    return path
