"""policies/packlib.py's plain(): the conversion shared within one pack call (from the value
a proxy wraps, read-only) equals the proxy-walking one on any nested value with unknowns at any
depth; outside a call plain() is what it was; no policy of the pack changes a shared value."""

from __future__ import annotations

import copy
import pickle
import random
import sys

import pulumi
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pulumi_policy import proxy
from pulumi_policy.policy import _PolicyAnalyzerServicer

from configplane.offline import PolicyPackSession, analyzed_resources
from tests.policies.conftest import CONFIG, PACK, PROJECT, found
from tests.policies.inprocess import InProcessAnalyzer
from tests.projects import sample_plan

sys.path.insert(0, str(PACK))
import packlib
import stack_once

sys.path.remove(str(PACK))

SENTINELS = [proxy.UNKNOWN_BOOLEAN_VALUE, proxy.UNKNOWN_NUMBER_VALUE, proxy.UNKNOWN_STRING_VALUE,
             proxy.UNKNOWN_ARRAY_VALUE, proxy.UNKNOWN_ASSET_VALUE, proxy.UNKNOWN_ARCHIVE_VALUE,
             proxy.UNKNOWN_OBJECT_VALUE]
LEAVES = (st.sampled_from(SENTINELS) | st.text(max_size=4) | st.integers() | st.booleans()
          | st.none() | st.floats(allow_nan=False)
          | st.sampled_from([pulumi.StringAsset("a"), pulumi.FileArchive("x.zip")]))
# What deserialize_properties makes of a resource's properties (and tuples and read-only
# mappings, which the proxy leaves alone), unknowns anywhere, the root included.
VALUES = st.recursive(LEAVES, lambda inner: (
    st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    | st.lists(inner, max_size=3).map(tuple)), max_leaves=25)


def shape(value):
    """The value with its containers' kinds (any dict -> dict, any list -> list) and UNKNOWN's
    identity made comparable, keys in their order."""
    if value is packlib.UNKNOWN:
        return ("UNKNOWN",)
    if isinstance(value, dict):
        return ("dict", [(k, shape(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [shape(v) for v in value])
    return (type(value).__name__, value)


@given(VALUES)
def test_the_shared_conversion_is_the_proxy_walking_one(value):
    wrapped = proxy.unknown_checking_proxy(value)
    walked = packlib.plain(wrapped)  # outside a call: through the proxy
    assert shape(packlib.converted(value)) == shape(walked)
    conversions = packlib.SharedConversions()
    conversions.register(value, wrapped)
    with packlib.sharing(conversions):
        shared = packlib.plain(wrapped)
        assert packlib.plain(wrapped) is shared  # converted once per call
        assert shape(shared) == shape(walked)
        other = proxy.unknown_checking_proxy(value)  # another proxy (for a dict or a list):
        assert shape(packlib.plain(other)) == shape(walked)  # not registered: walked, as outside
        assert (packlib.plain(other) is not shared) == (other is not wrapped)
    assert [v for _, v in conversions.handed_out()] == [shared]


@given(VALUES)
def test_outside_a_call_plain_is_plain_python(value):
    def kinds(v):
        if isinstance(v, dict):
            assert type(v) is dict
            return all(kinds(x) for x in v.values())
        if isinstance(v, list):
            assert type(v) is list
            return all(kinds(x) for x in v)
        return True

    assert kinds(packlib.plain(proxy.unknown_checking_proxy(value)))


def test_a_shared_value_refuses_changes_and_copies_as_plain_python():
    shared = packlib.converted({"a": [1, {"b": proxy.UNKNOWN_STRING_VALUE}], "c": {"d": 1}})
    assert shared == {"a": [1, {"b": packlib.UNKNOWN}], "c": {"d": 1}}
    changes = [lambda d: d.__setitem__("x", 1), lambda d: d.__delitem__("c"), lambda d: d.pop("c"),
               lambda d: d.popitem(), lambda d: d.setdefault("x", 1), lambda d: d.update(x=1),
               lambda d: d.clear(), lambda d: d.__ior__({"x": 1}),
               lambda d: d["a"].append(1), lambda d: d["a"].extend([1]), lambda d: d["a"].pop(),
               lambda d: d["a"].insert(0, 1), lambda d: d["a"].remove(1), lambda d: d["a"].sort(),
               lambda d: d["a"].reverse(), lambda d: d["a"].clear(),
               lambda d: d["a"].__setitem__(0, 2), lambda d: d["a"].__delitem__(0),
               lambda d: d["a"].__iadd__([1]), lambda d: d["a"].__imul__(2)]
    for change in changes:
        with pytest.raises(TypeError, match="shared by every policy"):
            change(shared)
    assert shared == {"a": [1, {"b": packlib.UNKNOWN}], "c": {"d": 1}}
    for copied in (copy.copy(shared), copy.deepcopy(shared)):
        assert type(copied) is dict and copied == shared
        copied["x"] = 1  # a copy is the policy's own
    deep = copy.deepcopy(shared)
    assert type(deep["a"]) is list and type(deep["c"]) is dict
    assert deep["a"][1]["b"] is packlib.UNKNOWN  # one object, compared by identity
    assert pickle.loads(pickle.dumps(shared)) == shared
    assert {**shared} == shared and dict(shared) == shared and list(shared["a"]) == shared["a"]


def test_no_policy_changes_a_shared_value():
    """The whole pack in this process with stack_once, on the sample stack and on stacks with
    resources removed: every shared conversion a call handed out still equals a fresh one of
    its value, and the verdicts are those of the same pack without sharing."""
    calls: list[packlib.SharedConversions] = []

    def kept() -> packlib.SharedConversions:
        calls.append(packlib.SharedConversions())
        return calls[-1]

    class Shared(_PolicyAnalyzerServicer):
        pass

    stack_once.install(Shared, conversions=kept)
    resources = analyzed_resources(sample_plan("prod"))
    chooser = random.Random(6)
    stacks = [resources, [r for r in resources if chooser.random() > 0.4]]
    verdicts = []
    for servicer in (Shared, _PolicyAnalyzerServicer):
        analyzer = InProcessAnalyzer(PACK, project=PROJECT, stack="prod", servicer=servicer)
        with PolicyPackSession(PACK, project=PROJECT, stack="prod", analyzer=analyzer,
                               policy_config_file=CONFIG / "prod.json") as session:
            verdicts.append([found(session.run(stack)) for stack in stacks])
    assert verdicts[0] == verdicts[1]
    handed_out = [pair for call in calls for pair in call.handed_out()]
    assert len(handed_out) > len(resources)  # the policies did get shared conversions
    for value, shared in handed_out:
        assert shape(shared) == shape(packlib.converted(value))


class _Args:
    resource_type, name, urn = "kubernetes:core/v1:ConfigMap", "api-config", "urn:api-config"


def _raising(args, report_violation):
    raise AttributeError("'list' object has no attribute 'get' (sk-live-canary)")


def test_a_policy_that_raises_fails_its_resource_by_name_and_shows_no_value():
    """A property of an unexpected shape makes the resource fail that policy (naming it and
    the exception's type only), instead of aborting the whole preview."""
    reported = []
    packlib.for_types("kubernetes:core/v1:ConfigMap")(_raising)(
        _Args(), lambda message, urn=None: reported.append((message, urn)))
    [(message, urn)] = reported
    assert urn == "urn:api-config" and "api-config" in message and "AttributeError" in message
    assert "canary" not in message and "Fix:" in message
    packlib.for_types("aws:s3/bucket:Bucket")(_raising)(_Args(), reported.append)  # not its type
    stack: list[str] = []
    packlib.whole_stack(_raising)(object(), stack.append)
    assert len(stack) == 1 and "AttributeError" in stack[0] and "canary" not in stack[0]
