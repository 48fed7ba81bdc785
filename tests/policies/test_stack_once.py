"""policies/stack_once.py: the stack's resources deserialised once per AnalyzeStack call. The
pack with it and the same pack without it give the same verdicts on the same stacks (with
resources removed at random, so that the stack policies fire), and the pulumi_policy names it
rebinds are still where it expects them."""

from __future__ import annotations

import random
import re
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from google.protobuf import struct_pb2

from configplane.offline import PolicyPackSession, analyzed_resources, run_plan
from tests.policies.conftest import CONFIG, PACK, PROJECT, REPO, found

sys.path.insert(0, str(PACK))
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
