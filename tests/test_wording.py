"""Counts in messages read as English: one is singular, every other count plural."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from configplane.wording import count

NOUNS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=20).map(str.strip).filter(bool)


@given(st.integers(min_value=0, max_value=10**6), NOUNS)
def test_one_is_singular_and_every_other_count_plural(n, noun):
    assert count(n, noun) == (f"1 {noun}" if n == 1 else f"{n} {noun}s")


@given(st.integers(min_value=0, max_value=10**6))
def test_an_irregular_plural(n):
    assert count(n, "policy", "policies") == ("1 policy" if n == 1 else f"{n} policies")


def test_messages_use_it():
    # the words a user sees for one error, and for two
    assert [count(1, "error"), count(2, "error"), count(0, "error")] == ["1 error", "2 errors",
                                                                        "0 errors"]
