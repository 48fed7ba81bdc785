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
And `Analyze` iterates only the policies that may speak on its resource's type: sixteen of the
seventeen resource policies are `packlib.for_types`-filtered, and pulumi_policy built the
arguments of each for every resource only for it to return. The garbage collector is off for
the call (as it was after): its full collections walked every object of the pack's process
(detector, schemas, the converted stack) for garbage that reference counting frees anyway.

This reaches into pulumi_policy's module namespace and two private attributes (the servicer's
policy list, a resource policy's validators); policies/requirements.txt pins its version and
tests/policies/test_stack_once.py fails if the names it relies on move.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import threading
from collections.abc import Callable, Iterator
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


class _ApplicablePolicies(list):
    """A servicer's policies, as it iterates them: while an `Analyze` call runs on this thread,
    only those that can speak on its resource's type. A resource policy whose validators all
    come from `packlib.for_types` returns at once on other types, but pulumi_policy still builds
    its arguments (conversions, options, provider, config) and reports, per resource policy and
    resource; the other threads (other calls of the servicer) see every policy."""

    def __init__(self, policies: list[Any]):
        super().__init__(policies)
        self._by_type: dict[str, list[Any]] = {}
        self._current = threading.local()

    def __iter__(self) -> Any:
        only = getattr(self._current, "only", None)
        return list.__iter__(self) if only is None else iter(only)

    @contextlib.contextmanager
    def only_for(self, resource_type: str) -> Iterator[None]:
        if resource_type not in self._by_type:
            self._by_type[resource_type] = [p for p in list.__iter__(self)
                                            if _may_apply(p, resource_type)]
        self._current.only = self._by_type[resource_type]
        try:
            yield
        finally:
            self._current.only = None


def _may_apply(policy_: Any, resource_type: str) -> bool:
    """False only for a resource policy whose every validator is for other types."""
    if not isinstance(policy_, _policy.ResourceValidationPolicy):
        return True
    validate = getattr(policy_, _VALIDATORS)
    validators = validate if isinstance(validate, list) else [validate]
    return not validators or any(
        resource_type in getattr(v, "resource_types", (resource_type,)) for v in validators)


_VALIDATORS = "_ResourceValidationPolicy__validate"  # what ResourceValidationPolicy(validate=)
_POLICIES = "_PolicyAnalyzerServicer__policies"  # what the servicer iterates in each call


def _for_its_type(servicer: Any, request: Any) -> contextlib.AbstractContextManager[None]:
    """The servicer iterating only the policies that may apply to an `Analyze` request."""
    policies = getattr(servicer, _POLICIES)
    if not isinstance(policies, _ApplicablePolicies):
        policies = _ApplicablePolicies(policies)
        setattr(servicer, _POLICIES, policies)
    return policies.only_for(request.type)


def _once_per_call(original: Callable[..., Any],
                   conversions: Callable[[], packlib.SharedConversions]) -> Callable[..., Any]:
    """`original` (a servicer method) with the policy module's conversions remembered for the
    duration of one call (and, for `Analyze`, only the policies for its resource's type)."""
    per_resource = original.__name__ == "Analyze"

    @functools.wraps(original)
    def call(self: Any, request: Any, context: Any) -> Any:
        with _LOCK:  # one call at a time rebinds the module's names
            saved = [getattr(_policy, name) for name in _REBOUND]
            json_format, deserialize, proxy = saved
            memo = _Memo(json_format, deserialize, proxy, conversions())
            _policy.json_format = memo
            _policy.deserialize_properties = memo.deserialize_properties
            _policy.unknown_checking_proxy = memo.unknown_checking_proxy
            collecting = gc.isenabled()
            gc.disable()
            try:
                with packlib.sharing(memo.conversions), (
                        _for_its_type(self, request) if per_resource else contextlib.nullcontext()):
                    return original(self, request, context)
            finally:
                for name, value in zip(_REBOUND, saved, strict=True):
                    setattr(_policy, name, value)
                if collecting:
                    gc.enable()

    call.stack_once = True  # type: ignore[attr-defined]
    return call


def install(servicer: Any = _policy._PolicyAnalyzerServicer,
            conversions: Callable[[], packlib.SharedConversions] = packlib.SharedConversions
            ) -> None:
    """Make `servicer.AnalyzeStack` convert each resource once per call, and `servicer.Analyze`
    its resource once and run only the policies for its type (idempotent). `conversions` makes
    each call's shared plain() results (tests pass one that keeps them)."""
    for method in ("AnalyzeStack", "Analyze"):
        original = getattr(servicer, method)
        if not getattr(original, "stack_once", False):
            setattr(servicer, method, _once_per_call(original, conversions))
