"""The plan's own secret-marking check: a value that is secret anywhere but reaches a resource
input unmarked is found wherever it stands in the text, whatever the number of secrets, their
characters or their sizes."""

from __future__ import annotations

import re
import secrets as random_secrets

from hypothesis import example, given, settings
from hypothesis import strategies as st

from configplane.offline.plan_checks import SECRET_MARKING_CHECK, unmarked_secret_violations
from configplane.offline.results import PlannedResource
from configplane.redaction import MIN_SECRET_LEN, SECRET_SIG_KEY, SECRET_SIG_VALUE, marked_strings

# regex metacharacters, RE2's own syntax, a NUL, non-ASCII and astral characters
ALPHABET = st.sampled_from(list("ab.*+?|()[]{}^$\\\x00\n é€😀-_/:"))
SECRET = st.text(ALPHABET, min_size=1, max_size=12)


def resource(name: str, **inputs: str) -> PlannedResource:
    return PlannedResource(urn=f"urn:pulumi:dev::p::t::{name}", type="t", name=name,
                           inputs=dict(inputs), outputs={}, parent=None, dependencies=[],
                           property_dependencies={}, custom=True)


def flagged(texts: list[str], secrets: list[str]) -> set[str]:
    resources = [resource(f"r{i}", value=text) for i, text in enumerate(texts)]
    found = unmarked_secret_violations(resources, secrets)
    assert {v["policy"] for v in found} <= {SECRET_MARKING_CHECK}
    return {v["urn"].rsplit("::", 1)[-1] for v in found}


def expected(texts: list[str], secrets: list[str]) -> set[str]:
    searched = [s for s in secrets if len(s) >= MIN_SECRET_LEN]
    return {f"r{i}" for i, text in enumerate(texts) if any(s in text for s in searched)}


@settings(max_examples=300, deadline=None)
@given(secrets=st.lists(SECRET, max_size=8), texts=st.lists(st.text(ALPHABET, max_size=40),
                                                            max_size=6))
def test_a_text_is_flagged_exactly_when_it_contains_a_secret(secrets, texts):
    # half the texts carry a secret inside other text
    texts = [f"{t}{secrets[i % len(secrets)]}{t}" if secrets and i % 2 else t
             for i, t in enumerate(texts)]
    assert flagged(texts, secrets) == expected(texts, secrets)


def test_thousands_of_secrets_and_secrets_of_every_size():
    many = [random_secrets.token_urlsafe(30) for _ in range(6000)]  # several RE2 patterns
    huge = "h" * 300_000  # a secret larger than one pattern's share
    secrets = [*many, huge]
    texts = ["nothing here", f"pre {many[0]} post", f"x{many[-1]}", f"{many[3000]}",
             "h" * 299_999, f"<{huge}>", many[10][:-1]]
    assert flagged(texts, secrets) == {"r1", "r2", "r3", "r5"} == expected(texts, secrets)


def secret(value):
    return {SECRET_SIG_KEY: SECRET_SIG_VALUE, "value": value}


WORDS = st.sampled_from(["v-secret-one", "xx", "v-secret-one!", ""])
VALUES = st.recursive(
    st.one_of(WORDS, st.integers(), st.none(), st.booleans()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner),
                            st.dictionaries(WORDS, inner, max_size=3), inner.map(secret)),
    max_leaves=12)


def reference(resources, config_secrets):
    """The check as its docstring says it, through the one walker of secret wrappers."""
    secrets = {s for s in config_secrets if len(s) >= MIN_SECRET_LEN}
    for r in resources:
        for value in (r.inputs, r.outputs):
            secrets |= {t for _, t, m in marked_strings(value) if m and len(t) >= MIN_SECRET_LEN}
    return [(r.urn, path) for r in resources for path, text, marked in marked_strings(r.inputs)
            if not marked and any(s in text for s in secrets)]


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.tuples(VALUES, VALUES), max_size=4),
       config=st.lists(WORDS, max_size=2))
@example(values=[("v-secret-one", []), ([], secret("v-secret-one"))], config=[])  # marked elsewhere
@example(values=[({"a": ["xx", secret({"b": "v-secret-one"})], "c": ("v-secret-one!",)}, None)],
         config=[])  # marked and unmarked in one value
def test_nested_values_are_judged_as_the_walker_of_secret_wrappers_finds_them(values, config):
    """Secrets marked at any depth of any resource's inputs or outputs, and unmarked copies
    anywhere in inputs: each unmarked copy is reported once, at its path."""
    resources = [PlannedResource(urn=f"urn:pulumi:dev::p::t::r{i}", type="t", name=f"r{i}",
                                 inputs={"p": inputs}, outputs={"p": outputs}, parent=None,
                                 dependencies=[], property_dependencies={}, custom=True)
                 for i, (inputs, outputs) in enumerate(values)]
    found = [(v["urn"], re.match(r"input `(.*)` of r\d+ ", v["message"]).group(1))
             for v in unmarked_secret_violations(resources, config)]
    assert found == reference(resources, config)
