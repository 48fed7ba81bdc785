"""load_or_issues runs without the cyclic collector's passes and gives the collector back as
it found it: on, after a valid stack, an invalid one and a failure; off, when it was off."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from configplane.inputs import collector_paused
from configplane.validation import load_or_issues
from tests.projects import REPO


@pytest.fixture
def collector_on():
    assert gc.isenabled()
    yield
    gc.enable()  # whatever a failing test left


def test_the_collector_is_off_within_and_on_after(collector_on):
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("a failure inside")
    assert gc.isenabled()


def test_a_collector_the_caller_turned_off_stays_off(collector_on):
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_validation_gives_the_collector_back(collector_on, tmp_path: Path):
    model, issues = load_or_issues(REPO, "dev")
    assert model is not None and not issues and gc.isenabled()
    model, issues = load_or_issues(tmp_path, "dev")  # no project there: issues, not a crash
    assert model is None and issues and gc.isenabled()
