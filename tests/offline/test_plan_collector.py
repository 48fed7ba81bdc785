"""collector_paused: the cyclic collector stays off for the block, the outermost block decides,
and the state before is restored however the block ends."""

from __future__ import annotations

import gc

import pytest

from configplane.offline import collector_paused


@pytest.fixture(autouse=True)
def restore_gc():
    before = gc.isenabled()
    yield
    (gc.enable if before else gc.disable)()


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_inside_and_restored_after(enabled):
    (gc.enable if enabled else gc.disable)()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # a nested block (the program inside the command)
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block does not switch it back on
    assert gc.isenabled() is enabled
    assert gc.get_freeze_count() == 0  # nothing left frozen out of the collector's reach


def test_an_exception_restores_the_collector():
    gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
