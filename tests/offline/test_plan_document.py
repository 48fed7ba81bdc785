"""The printed plan (Plan.as_dict) is the same document for the same plan, whatever order its
resources registered in: the SDK's threads vary that order from run to run, and violations are
found in it."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from configplane.offline import Plan

VIOLATION = st.fixed_dictionaries({
    "policy": st.sampled_from(["vault-least-privilege", "environment-isolation", "plaintext"]),
    "urn": st.sampled_from(["urn:pulumi:prod::p::t::a", "urn:pulumi:prod::p::t::b", ""]),
    "message": st.text(max_size=8),
    "level": st.sampled_from(["mandatory", "advisory"]),
})


@given(st.lists(VIOLATION, max_size=8), st.randoms())
def test_violations_print_in_one_order_whatever_order_they_were_found_in(violations, rnd: random.Random):
    found = Plan(stack="prod", project="p", resources=[], outputs={}, violations=violations)
    shuffled = list(violations)
    rnd.shuffle(shuffled)
    again = Plan(stack="prod", project="p", resources=[], outputs={}, violations=shuffled)
    printed = found.as_dict()["violations"]
    assert printed == again.as_dict()["violations"]
    assert sorted(map(repr, printed)) == sorted(map(repr, violations))  # all of them, once
    assert [v["urn"] for v in printed] == sorted(v["urn"] for v in violations)
