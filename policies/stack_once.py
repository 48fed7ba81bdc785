"""The whole stack deserialised once per `AnalyzeStack` call, not once per stack policy, and a
resource once per `Analyze` call, not once per resource policy.

pulumi_policy 1.21's `AnalyzeStack` turns every resource's properties from protobuf into Python
(`json_format.MessageToDict`, then `deserialize_properties`, then `unknown_checking_proxy`)
inside its loop over the stack policies, so a pack with eight of them pays that eight times: at
2,000 services 89 % of the call (docs/benchmarks.md); its `Analyze` does the same per resource
policy (seventeen). While one call runs, `install()` has these functions, as that module sees
them, remember their results: a resource's properties are converted once (keyed by their
serialised bytes, whatever Python object carries them) and every policy reads the same objects.
Policies only read properties (each gets pulumi_policy's unknown-checking proxy over them, and
no policy of this pack writes through it). `packlib.plain` of those proxies, which nearly every
policy asks for (the stack policies of every resource), is likewise converted once per call,
from the deserialised value the proxy wraps, and shared read-only (packlib.SharedConversions).

This reaches into pulumi_policy's module namespace; policies/requirements.txt pins its version
and tests/policies/test_stack_once.py fails if the names it relies on move.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import packlib
from pulumi_policy import policy

# Any: the names rebound below are the module's own, which its annotations do not describe
_policy: Any = policy
_LOCK = threading.Lock()


class _Memo:
    """`json_format`, `deserialize_properties` and `unknown_checking_proxy` as the policy module
    calls them, remembering."""

    def __init__(self, json_format: Any, deserialize: Callable[..., Any],
                 proxy: Callable[[Any], Any] | None = None,
                 conversions: packlib.SharedConversions | None = None):
        self._json_format, self._deserialize, self._proxy = json_format, deserialize, proxy
        self.conversions = packlib.SharedConversions() if conversions is None else conversions
        self._messages: dict[int, tuple[Any, Any]] = {}
        self._dicts: dict[bytes, Any] = {}
        self._values: dict[tuple[int, tuple], tuple[Any, Any]] = {}
        self._proxies: dict[int, tuple[Any, Any]] = {}

    def __getattr__(self, name: str) -> Any:  # the rest of json_format, unchanged
        return getattr(self._json_format, name)

    def MessageToDict(self, message: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        if args or kwargs:
            return self._json_format.MessageToDict(message, *args, **kwargs)
        # The request's messages do not change during the call, and protobuf hands out the same
        # Python object for the same field: by object first (held, so its id is not reused),
        # serialising only the first time an object is seen.
        seen = self._messages.get(id(message))
        if seen is not None:
            return seen[1]
        key = message.SerializeToString(deterministic=True)
        if key not in self._dicts:
            self._dicts[key] = self._json_format.MessageToDict(message)
        self._messages[id(message)] = (message, self._dicts[key])
        return self._dicts[key]

    def deserialize_properties(self, value: Any, *args: Any) -> Any:
        key = (id(value), args)  # `value` is held below, so its id is not reused meanwhile
        if key not in self._values:
            self._values[key] = (value, self._deserialize(value, *args))
        return self._values[key][1]

    def unknown_checking_proxy(self, value: Any) -> Any:
        assert self._proxy is not None
        key = id(value)  # held below, as in deserialize_properties
        if key not in self._proxies:
            self._proxies[key] = (value, self._proxy(value))
            self.conversions.register(value, self._proxies[key][1])
        return self._proxies[key][1]


_REBOUND = ("json_format", "deserialize_properties", "unknown_checking_proxy")


def _once_per_call(original: Callable[..., Any],
                   conversions: Callable[[], packlib.SharedConversions]) -> Callable[..., Any]:
    """`original` (a servicer method) with the policy module's conversions remembered for the
    duration of one call."""
    @functools.wraps(original)
    def call(self: Any, request: Any, context: Any) -> Any:
        with _LOCK:  # one call at a time rebinds the module's names
            saved = [getattr(_policy, name) for name in _REBOUND]
            memo = _Memo(*saved, conversions=conversions())
            _policy.json_format = memo
            _policy.deserialize_properties = memo.deserialize_properties
            _policy.unknown_checking_proxy = memo.unknown_checking_proxy
            try:
                with packlib.sharing(memo.conversions):
                    return original(self, request, context)
            finally:
                for name, value in zip(_REBOUND, saved, strict=True):
                    setattr(_policy, name, value)

    call.stack_once = True  # type: ignore[attr-defined]
    return call


def install(servicer: Any = _policy._PolicyAnalyzerServicer,
            conversions: Callable[[], packlib.SharedConversions] = packlib.SharedConversions
            ) -> None:
    """Make `servicer.AnalyzeStack` convert each resource once per call, and `servicer.Analyze`
    its resource once (idempotent). `conversions` makes each call's shared plain() results
    (tests pass one that keeps them)."""
    for method in ("AnalyzeStack", "Analyze"):
        original = getattr(servicer, method)
        if not getattr(original, "stack_once", False):
            setattr(servicer, method, _once_per_call(original, conversions))
