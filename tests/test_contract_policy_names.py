"""The Vault policy names the program gives and the pack recognises (configplane/contract.py)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from configplane import contract

LABELS = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z")
NAMERS = [(contract.read_policy_name, contract.READ_POLICY_SUFFIX),
          (contract.pki_policy_name, contract.PKI_POLICY_SUFFIX),
          (contract.database_policy_name, contract.DATABASE_POLICY_SUFFIX)]


@given(env=LABELS, service=LABELS, namer=st.sampled_from(NAMERS))
def test_policy_service_inverts_the_policy_names(env, service, namer) -> None:
    name_of, suffix = namer
    assert contract.policy_service(name_of(env, service), env, suffix) == service


def test_policy_service_rejects_other_names() -> None:
    assert contract.policy_service("prod-api-read", "dev", "-read") is None
    assert contract.policy_service("prod-api-read", "prod", "-pki") is None
    assert contract.policy_service("prod-Api-read", "prod", "-read") is None
    assert contract.policy_service("prod--read", "prod", "-read") is None
    assert contract.policy_service(None, "prod", "-read") is None


def test_required_labels_and_account_pattern() -> None:
    assert contract.REQUIRED_LABELS == (
        "app.kubernetes.io/name", "app.kubernetes.io/part-of",
        "app.kubernetes.io/managed-by", "configplane.io/environment")
    assert re.fullmatch(contract.AWS_ACCOUNT_ID, "333333333333")
    assert not re.fullmatch(contract.AWS_ACCOUNT_ID, "33333333333")


def test_policy_service_rejects_a_trailing_newline() -> None:
    assert contract.policy_service("prod-api-read\n", "prod", "-read") is None


def test_refs_grammar_uses_the_contract_label() -> None:
    """configplane/refs.py is linked into the pack as a top-level module, so it cannot import
    configplane.contract; it composes the label (unanchored) into its path and ARN grammars.
    Its copy must stay the contract's label."""
    from configplane import refs

    assert "^" + refs.DNS_LABEL.pattern + "$" == contract.DNS_LABEL
