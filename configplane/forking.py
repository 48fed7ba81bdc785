"""Work in a forked copy of this process (Linux), with its value or exception handed back:
the platform stack planned beside a shard (configplane.offline.fleet), half of a fresh
catalog's files parsed beside the other half (configplane.inputs.parsecache)."""

from __future__ import annotations

import multiprocessing
import sys
import threading
from collections.abc import Callable
from typing import Any, cast

_REFUSED: list[str] = []  # why this process may fork no more


def refuse_forks(reason: str) -> None:
    """From now on this process forks no copy of itself (`may_fork`), for `reason`: what it
    holds that a copy would share (configplane.offline.plan: a Pulumi program ran here)."""
    if reason not in _REFUSED:
        _REFUSED.append(reason)


def may_fork() -> bool:
    """Whether this process may fork a copy of itself: on Linux (macOS's system frameworks do
    not survive a fork), with no other thread running (a progress bar's, a pack session's:
    a lock one of them holds would stay held in the copy), nor anything `refuse_forks` names."""
    return sys.platform == "linux" and threading.active_count() == 1 and not _REFUSED


class ForkedCall:
    """`fn(*args)` in a forked copy of this process, started at once; `result()` waits for
    its value or raises its exception (from any thread). A fork starts with everything this
    process has imported, read and validated: the platform stack's plan begins at once,
    where a spawned interpreter would import and validate again (~2 s of CPU) first.
    `doing`: what it does and the fix when it dies, for the messages (`may_fork` says when a
    fork is safe).

    `announcing`: fn is called as `fn(announce, *args)`, and what it hands to `announce`
    (once, before it returns) reaches `announced()` while fn goes on: a stack's outputs,
    long before its plan (megabytes through a pipe, read a chunk at a time by a thread that
    waits for the GIL between chunks) and its pack's verdict."""

    def __init__(self, fn: Callable[..., Any], *args: Any, announcing: bool = False,
                 doing: tuple[str, str] = ("working", "run the command again")):
        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        self.doing, self.fix = doing
        self._process = context.Process(target=_send_outcome,
                                        args=(send, fn, args, announcing, self.doing),
                                        name=f"configplane {self.doing}", daemon=True)
        self._process.start()
        send.close()
        self._lock = threading.Lock()
        self._announced: tuple[bool, Any] | None = None
        self._outcome: tuple[bool, Any] | None = None

    def _next(self) -> None:
        """The child's next message (the caller holds the lock)."""
        try:
            kind, ok, value = self._receive.recv()
        except EOFError:  # it died without a word (killed, out of memory)
            self._process.join()
            kind, ok, value = "outcome", False, RuntimeError(
                f"the process {self.doing} ended without a result (exit code "
                f"{self._process.exitcode}). Fix: {self.fix}.")
        if kind == "announced":
            self._announced = (ok, value)
            return
        self._outcome = (ok, value)
        self._receive.close()
        self._process.join()

    def announced(self) -> Any:
        """What fn announced; fn's exception if it failed before announcing."""
        with self._lock:
            while self._announced is None and self._outcome is None:
                self._next()
            ok, value = self._announced or cast(tuple[bool, Any], self._outcome)
        if not ok:
            raise value
        if self._announced is None:
            raise RuntimeError(f"the process {self.doing} ended without its outputs")
        return value

    def result(self) -> Any:
        with self._lock:
            while self._outcome is None:
                self._next()
            ok, value = self._outcome
        if not ok:
            raise value
        return value

    def cancel(self) -> None:
        """Stop it, if it still runs (this command is failing or interrupted)."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


def _send_outcome(send: Any, fn: Callable[..., Any], args: tuple[Any, ...],
                  announcing: bool, doing: str) -> None:
    def announce(value: Any) -> None:
        send.send(("announced", True, value))

    try:
        outcome: tuple[bool, Any] = (True, fn(announce, *args) if announcing else fn(*args))
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, raised there
        outcome = (False, exc)
    try:
        send.send(("outcome", *outcome))
    except Exception as exc:  # noqa: BLE001 - an exception that does not pickle
        send.send(("outcome", False, RuntimeError(f"{doing} failed: "
                                                  f"{type(outcome[1]).__name__}: {exc}")))
    send.close()
