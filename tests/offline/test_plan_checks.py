"""The plan's own secret-marking check: a value that is secret anywhere but reaches a resource
input unmarked is found wherever it stands in the text, whatever the number of secrets, their
characters or their sizes."""

from __future__ import annotations

import secrets as random_secrets

from hypothesis import given, settings
from hypothesis import strategies as st

from configplane.offline.plan_checks import SECRET_MARKING_CHECK, unmarked_secret_violations
from configplane.offline.results import PlannedResource
from configplane.redaction import MIN_SECRET_LEN

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
