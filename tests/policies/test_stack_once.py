"""policies/stack_once.py: the stack's resources deserialised once per AnalyzeStack call, a
resource once per Analyze call. The pack with it and the same pack without it give the same
verdicts on the same stacks (with resources removed at random, so that the stack policies
fire; with properties replaced at random by unknowns and values of the wrong shape, so that
resource policies fire and proxies raise), and the pulumi_policy names it rebinds are still
where it expects them."""

from __future__ import annotations

import copy
import dataclasses
import gc
import random
import re
import shutil
import sys
import threading
import types
from importlib.metadata import version
from pathlib import Path

import pytest
from google.protobuf import struct_pb2
from pulumi_policy import ResourceValidationPolicy, StackValidationPolicy

from configplane.offline import (
    UNKNOWN,
    PolicyPackError,
    PolicyPackSession,
    analyzed_resources,
    run_plan,
)
from tests.documents import parent, paths
from tests.policies.conftest import CONFIG, PACK, PROJECT, REPO, found
from tests.projects import sample_plan

sys.path.insert(0, str(PACK))
import packlib
import stack_once

sys.path.remove(str(PACK))


def test_the_names_it_rebinds_are_where_the_pinned_pulumi_policy_has_them():
    from pulumi_policy import policy

    pinned = re.search(r"^pulumi-policy==(\S+)$", (PACK / "requirements.txt").read_text(), re.M)
    assert pinned and version("pulumi-policy") == pinned[1]
    assert callable(policy._PolicyAnalyzerServicer.AnalyzeStack)
    assert callable(policy.json_format.MessageToDict) and callable(policy.deserialize_properties)
    source = Path(policy.__file__).read_text()
    assert "deserialize_properties(json_format.MessageToDict(r.properties))" in source


def test_one_conversion_per_content_and_the_rest_untouched():
    from pulumi_policy import policy

    memo = stack_once._Memo(policy.json_format, policy.deserialize_properties)
    a, b, c = (struct_pb2.Struct() for _ in range(3))
    a.update({"x": 1, "y": {"z": "s"}})
    b.update({"y": {"z": "s"}, "x": 1})  # the same content, another object
    c.update({"x": 2})
    assert memo.MessageToDict(a) is memo.MessageToDict(b)
    assert memo.MessageToDict(c) == {"x": 2} and memo.MessageToDict(c) is not memo.MessageToDict(a)
    assert memo.deserialize_properties(memo.MessageToDict(a)) is memo.deserialize_properties(
        memo.MessageToDict(b))
    assert memo.deserialize_properties(memo.MessageToDict(a)) == {"x": 1, "y": {"z": "s"}}
    assert memo.MessageToDict(a, preserving_proto_field_name=True) is not memo.MessageToDict(a)
    assert memo.Parse is policy.json_format.Parse  # everything else passes through


def test_the_analyze_names_it_rebinds_are_where_the_pinned_pulumi_policy_has_them():
    from pulumi_policy import policy

    assert callable(policy._PolicyAnalyzerServicer.Analyze)
    assert callable(policy.unknown_checking_proxy)
    source = Path(policy.__file__).read_text()
    assert "deserialize_properties(json_format.MessageToDict(request.properties))" in source
    assert source.count("props = unknown_checking_proxy(deserialized)") >= 2  # both calls
    # the policies each call iterates, and a resource policy's validators
    assert "self.__policies = policies" in source and "for policy in self.__policies:" in source
    assert "__validate: Optional[Union[ResourceValidation, List[ResourceValidation]]]" in source
    probe = ResourceValidationPolicy("p", "d", print)
    assert probe._ResourceValidationPolicy__validate is print


def test_one_proxy_per_converted_value():
    from pulumi_policy import policy

    memo = stack_once._Memo(policy.json_format, policy.deserialize_properties,
                            policy.unknown_checking_proxy)
    value, same = {"x": [1, {"y": "s"}]}, {"x": [1, {"y": "s"}]}
    proxy = memo.unknown_checking_proxy(value)
    assert memo.unknown_checking_proxy(value) is proxy
    assert memo.unknown_checking_proxy(same) is not proxy  # by object: another conversion
    assert proxy["x"][1]["y"] == "s" and dict(proxy).keys() == {"x"}


def test_install_wraps_both_calls_once_and_restores_the_names():
    from pulumi_policy import policy

    seen = []
    request = types.SimpleNamespace(type="t")

    class Servicer:
        def __init__(self):
            self._PolicyAnalyzerServicer__policies = []

        def Analyze(self, request, context):  # noqa: N802
            seen.append(policy.unknown_checking_proxy)
            return ("analyze", request)

        def AnalyzeStack(self, request, context):  # noqa: N802
            seen.append(policy.unknown_checking_proxy)
            return ("stack", request)

    before = policy.unknown_checking_proxy
    stack_once.install(Servicer)
    wrapped = Servicer.Analyze, Servicer.AnalyzeStack
    stack_once.install(Servicer)  # idempotent
    assert (Servicer.Analyze, Servicer.AnalyzeStack) == wrapped
    assert Servicer().Analyze(request, None) == ("analyze", request)
    assert Servicer().AnalyzeStack(2, None) == ("stack", 2)
    assert all(proxy is not before for proxy in seen)  # remembered during each call
    assert policy.unknown_checking_proxy is before  # and restored after it


@pytest.mark.parametrize("collecting", [True, False])
def test_no_garbage_collection_during_a_call_and_as_it_was_after(collecting):
    """A call allocates a converted stack (the pack's own objects alive besides): collections
    during it would walk them all for little garbage. Whatever the state before, it is restored."""
    during = []

    class Servicer:
        def __init__(self):
            self._PolicyAnalyzerServicer__policies = []

        def Analyze(self, request, context):  # noqa: N802
            during.append(gc.isenabled())

        def AnalyzeStack(self, request, context):  # noqa: N802
            during.append(gc.isenabled())
            raise RuntimeError("a failing call restores it too")

    stack_once.install(Servicer)
    was = gc.isenabled()
    try:
        (gc.enable if collecting else gc.disable)()
        Servicer().Analyze(types.SimpleNamespace(type="t"), None)
        assert gc.isenabled() == collecting
        with pytest.raises(RuntimeError):
            Servicer().AnalyzeStack(None, None)
        assert gc.isenabled() == collecting
    finally:
        (gc.enable if was else gc.disable)()
    assert during == [False, False]


ALL = frozenset("abcd")


def _policies(chooser: random.Random) -> list[tuple[object, frozenset]]:
    """(policy, the types it may speak on): resource policies whose validators are
    for_types-filtered, unfiltered, or both, one validator or a list, and a stack policy."""
    out = []
    for i in range(8):
        validators, types_ = [], frozenset()
        for _ in range(chooser.randint(1, 3)):
            def validate(args, report):
                pass
            if chooser.random() < 0.8:
                kinds = chooser.sample(sorted(ALL), chooser.randint(0, 2))
                validate, types_ = packlib.for_types(*kinds)(validate), types_ | set(kinds)
            else:
                types_ = ALL
            validators.append(validate)
        one = len(validators) == 1 and chooser.random() < 0.5
        out.append((ResourceValidationPolicy(f"r{i}", "d", validators[0] if one else validators),
                    types_))
    out.append((StackValidationPolicy("s", "d", lambda args, report: None), ALL))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_analyze_iterates_the_policies_for_its_type_on_its_thread_only(seed):
    """During an Analyze call the servicer iterates exactly the policies that are not resource
    policies filtered to other types; another thread meanwhile, and every call after, all."""
    chooser = random.Random(seed)
    made = _policies(chooser)
    policies = [p for p, _ in made]
    seen: dict[str, list] = {}

    class Servicer:
        def __init__(self):
            self._PolicyAnalyzerServicer__policies = policies

        def Analyze(self, request, context):  # noqa: N802
            mine = list(self._PolicyAnalyzerServicer__policies)
            elsewhere: list = []
            other = threading.Thread(target=lambda: elsewhere.extend(
                self._PolicyAnalyzerServicer__policies))
            other.start()
            other.join()
            seen[request.type] = mine
            assert elsewhere == policies

        def AnalyzeStack(self, request, context):  # noqa: N802
            seen["stack"] = list(self._PolicyAnalyzerServicer__policies)

    stack_once.install(Servicer)
    servicer = Servicer()
    for kind in "abcdab":
        servicer.Analyze(types.SimpleNamespace(type=kind), None)
        assert seen[kind] == [p for p, types_ in made if kind in types_]
        assert list(servicer._PolicyAnalyzerServicer__policies) == policies
    servicer.AnalyzeStack(None, None)
    assert seen["stack"] == policies


@pytest.fixture(scope="module")
def without(tmp_path_factory) -> Path:
    """The pack as it was before: the same files (links followed), stack_once not installed."""
    copy = tmp_path_factory.mktemp("pack") / "policies"
    shutil.copytree(PACK, copy, symlinks=False, ignore=shutil.ignore_patterns("__pycache__"))
    main = copy / "__main__.py"
    text = main.read_text()
    assert "stack_once.install()" in text
    main.write_text("\n".join(line for line in text.splitlines() if "stack_once" not in line))
    return copy


def test_the_verdicts_are_those_of_the_pack_without_it(without):
    resources = analyzed_resources(run_plan(REPO, "prod"))
    chooser = random.Random(19)
    stacks = [resources] + [[r for r in resources if chooser.random() > share]
                            for share in (0.1, 0.3, 0.5, 0.7)]
    # and one that surely makes a stack policy speak, whatever the random draws keep
    stacks.append([r for r in resources if r.type != "vault:index/audit:Audit"])
    verdicts = []
    for pack in (PACK, without):
        with PolicyPackSession(pack, project=PROJECT, stack="prod",
                               policy_config_file=CONFIG / "prod.json") as session:
            verdicts.append([found(session.run(stack)) for stack in stacks])
    assert verdicts[0] == verdicts[1]
    stack_policies = {"vault-audit-enabled", "secrets-manager-rotation", "secret-stores-per-service",
                      "no-identity-spans-services", "no-secret-in-stack-outputs",
                      "dynamic-credential-refresh"}
    fired = {v[0] for found_ in verdicts[0] for v in found_}
    assert fired & stack_policies  # the removals made stack policies speak


JUNK = [UNKNOWN, None, 1, [], {}, "x", ["*"], {"a": UNKNOWN}, [UNKNOWN], "*"]


def _garbled(resources, chooser: random.Random, share: float):
    """The stack with one property of about `share` of its resources replaced by junk."""
    out = []
    for r in resources:
        if r.outputs and chooser.random() < share:
            props = copy.deepcopy(dict(r.outputs))
            path = chooser.choice(list(paths(props))[1:])
            parent(props, path)[path[-1]] = chooser.choice(JUNK)
            r = dataclasses.replace(r, inputs=props, outputs=copy.deepcopy(props))
        out.append(r)
    return out


def _outcome(session: PolicyPackSession, stack: list, pack: Path) -> object:
    """The verdicts, or how the pack failed (a policy that cannot read a junk property), the
    same whichever copy of the pack it was."""
    try:
        return found(session.run(stack))
    except PolicyPackError as exc:
        return str(exc).replace(str(pack), "<pack>")


def test_the_resource_verdicts_are_those_of_the_pack_without_it(without):
    """Analyze: every service's resources (the environment as one stack), junk in some."""
    resources = analyzed_resources(sample_plan("prod"))
    chooser = random.Random(19)
    stacks = [_garbled(resources, chooser, share) for share in (0.01, 0.02, 0.05) * 3]
    # and one that surely makes a resource policy speak, whatever the random draws change
    # (an immutable one made mutable: a live flags ConfigMap is mutable by design, and the
    # plan's order, which decides the first ConfigMap, varies from run to run)
    mutable = next(r for r in resources if r.type == "kubernetes:core/v1:ConfigMap"
                   and r.inputs.get("immutable") is True)
    stacks.append([dataclasses.replace(r, inputs={**r.inputs, "immutable": False},
                                       outputs={**r.outputs, "immutable": False})
                   if r is mutable else r for r in resources])
    outcomes = []
    for pack in (PACK, without):
        with PolicyPackSession(pack, project=PROJECT, stack="prod",
                               policy_config_file=CONFIG / "prod.json") as session:
            outcomes.append([_outcome(session, stack, pack) for stack in stacks])
    assert outcomes[0] == outcomes[1]
    fired = {v[0] for verdicts in outcomes[0] if isinstance(verdicts, list) for v in verdicts}
    assert "configmap-hygiene" in fired
