"""Where the labelled secret corpus is, for every test and benchmark that reads it.

The corpus (shared/data/secret-corpus, see its README.md) is read in place, never copied into
the repository. It is found through CONFIGPLANE_CORPUS_DIR, else at ../shared/data/secret-corpus
relative to the repository root. When it is absent a test skips with the reason, unless
CONFIGPLANE_REQUIRE_CORPUS=1: then a missing corpus is a failure (CI must not pass by measuring
nothing). `.ci/run` sets the switch together with the path when ../shared is beside the clone
(this project's CI); CI on GitHub has no ../shared, so there the tests skip. The switch is never
`CI=true`: both CIs set that.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV_VAR = "CONFIGPLANE_CORPUS_DIR"
REQUIRE_VAR = "CONFIGPLANE_REQUIRE_CORPUS"
DEFAULT_DIR = REPO.parent / "shared" / "data" / "secret-corpus"
TUNE = "tune.jsonl"


def corpus_dir() -> Path:
    """The corpus directory: $CONFIGPLANE_CORPUS_DIR, else ../shared/data/secret-corpus."""
    configured = os.environ.get(ENV_VAR)
    return Path(configured).expanduser() if configured else DEFAULT_DIR


def tune_file() -> Path:
    return corpus_dir() / TUNE


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def corpus_required() -> bool:
    """Is the corpus required ($CONFIGPLANE_REQUIRE_CORPUS=1)?"""
    return os.environ.get(REQUIRE_VAR, "").strip() == "1"


def require_tune_rows() -> list[dict[str, str]]:
    """The tuning rows, or a skip (a failure when the corpus is required) saying where they
    were looked for."""
    path = tune_file()
    if not path.is_file():
        reason = (f"secret corpus not found at {path}: set {ENV_VAR} to the directory holding "
                  f"{TUNE} (see shared/data/secret-corpus/README.md)")
        if corpus_required():
            pytest.fail(f"{reason}; {REQUIRE_VAR}=1 requires the corpus tests", pytrace=False)
        pytest.skip(reason)
    return read_rows(path)
