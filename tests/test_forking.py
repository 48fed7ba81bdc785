"""A call in a forked copy of the process (configplane.forking.ForkedCall): its value or its
exception handed back, once, to any thread; a child that dies or whose exception does not
pickle reported as such; cancel stops it; what it announces arrives while it still runs."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time

import pytest

from configplane.forking import ForkedCall


def test_forked_call_hands_back_values_and_exceptions():
    assert ForkedCall(sorted, [3, 1, 2]).result() == [1, 2, 3]
    failing = ForkedCall(int, "not a number")
    with pytest.raises(ValueError, match="not a number"):
        failing.result()
    with pytest.raises(ValueError):  # the same outcome, asked again
        failing.result()


def test_forked_call_waited_for_from_many_threads_gives_each_the_one_value():
    call = ForkedCall(os.getpid)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(call.result())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 4 and len(set(results)) == 1 and results[0] != os.getpid()


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("this exception does not pickle")


def raise_unpicklable() -> None:
    raise Unpicklable("kept in the child")


def test_forked_call_reports_a_process_that_dies_or_an_exception_that_does_not_pickle():
    with pytest.raises(RuntimeError, match=r"ended without a result \(exit code 3\)"):
        ForkedCall(os._exit, 3).result()
    with pytest.raises(RuntimeError, match="Unpicklable: this exception does not pickle"):
        ForkedCall(raise_unpicklable).result()
    with pytest.raises(TypeError):
        pickle.dumps(Unpicklable("x"))


def test_cancel_stops_a_forked_call_that_still_runs():
    call = ForkedCall(time.sleep, 300)
    started = time.monotonic()
    call.cancel()
    assert time.monotonic() - started < 60
    with pytest.raises(RuntimeError, match="ended without a result"):
        call.result()


def announce_then_wait(announce, release: str) -> str:
    announce("outputs")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if os.path.exists(release):
            return "released"
        time.sleep(0.01)
    return "never released"


def test_what_a_forked_call_announces_arrives_while_it_still_runs(tmp_path):
    release = tmp_path / "release"
    call = ForkedCall(announce_then_wait, str(release), announcing=True)
    assert call.announced() == "outputs"  # the child waits for `release` meanwhile
    release.touch()
    assert call.result() == "released"
    assert call.announced() == "outputs"


def fail_before_announcing(announce) -> None:
    raise ValueError("failed first")


def return_without_announcing(announce) -> str:
    return "value"


def test_a_forked_call_that_ends_before_announcing_says_why():
    with pytest.raises(ValueError, match="failed first"):
        ForkedCall(fail_before_announcing, announcing=True).announced()
    silent = ForkedCall(return_without_announcing, announcing=True)
    with pytest.raises(RuntimeError, match="ended without its outputs"):
        silent.announced()
    assert silent.result() == "value"


def test_no_fork_once_a_program_ran_or_another_thread_runs(tmp_path):
    """A fresh interpreter may fork; not while another thread runs, nor ever after a program
    ran in it (the offline plan's program, run under the SDK's mocks)."""
    from tests.conftest import REPO
    from tests.projects import copy_project

    project = copy_project(tmp_path / "project")
    script = """
import sys, threading
from configplane.forking import may_fork
print(may_fork())
waiting = threading.Event()
thread = threading.Thread(target=waiting.wait)
thread.start()
print(may_fork())
waiting.set()
thread.join()
print(may_fork())
from configplane.offline import run_plan
run_plan(sys.argv[1], "dev")
print(may_fork())
"""
    done = subprocess.run([sys.executable, "-c", script, str(project)], cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "True", "False"]
