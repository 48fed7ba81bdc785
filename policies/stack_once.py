"""The whole stack deserialised once per `AnalyzeStack` call, not once per stack policy.

pulumi_policy 1.21's `AnalyzeStack` turns every resource's properties from protobuf into Python
(`json_format.MessageToDict`, then `deserialize_properties`) inside its loop over the stack
policies, so a pack with six of them pays that six times: at 2,000 services 89 % of the call
(docs/benchmarks.md). While one call runs, `install()` has both functions, as that module sees
them, remember their results: a resource's properties are converted once (keyed by their
serialised bytes, whatever Python object carries them) and every policy reads the same objects.
Policies only read properties (pulumi_policy hands each one a read-only proxy over them).

This reaches into pulumi_policy's module namespace; policies/requirements.txt pins its version
and tests/policies/test_stack_once.py fails if the names it relies on move.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from pulumi_policy import policy

# Any: the names rebound below are the module's own, which its annotations do not describe
_policy: Any = policy
_LOCK = threading.Lock()


class _Memo:
    """`json_format` and `deserialize_properties` as the policy module calls them, remembering."""

    def __init__(self, json_format: Any, deserialize: Callable[..., Any]):
        self._json_format, self._deserialize = json_format, deserialize
        self._dicts: dict[bytes, Any] = {}
        self._values: dict[tuple[int, tuple], tuple[Any, Any]] = {}

    def __getattr__(self, name: str) -> Any:  # the rest of json_format, unchanged
        return getattr(self._json_format, name)

    def MessageToDict(self, message: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        if args or kwargs:
            return self._json_format.MessageToDict(message, *args, **kwargs)
        key = message.SerializeToString(deterministic=True)
        if key not in self._dicts:
            self._dicts[key] = self._json_format.MessageToDict(message)
        return self._dicts[key]

    def deserialize_properties(self, value: Any, *args: Any) -> Any:
        key = (id(value), args)  # `value` is held below, so its id is not reused meanwhile
        if key not in self._values:
            self._values[key] = (value, self._deserialize(value, *args))
        return self._values[key][1]


def install(servicer: Any = _policy._PolicyAnalyzerServicer) -> None:
    """Make `servicer.AnalyzeStack` convert each resource once per call (idempotent)."""
    original = servicer.AnalyzeStack
    if getattr(original, "stack_once", False):
        return

    @functools.wraps(original)
    def analyze_stack(self: Any, request: Any, context: Any) -> Any:
        with _LOCK:  # one stack call at a time rebinds the module's names
            memo = _Memo(_policy.json_format, _policy.deserialize_properties)
            _policy.json_format, _policy.deserialize_properties = memo, memo.deserialize_properties
            try:
                return original(self, request, context)
            finally:
                _policy.json_format = memo._json_format
                _policy.deserialize_properties = memo._deserialize

    analyze_stack.stack_once = True  # type: ignore[attr-defined]
    servicer.AnalyzeStack = analyze_stack
