"""configplane/refs.py: refs parsed, never prefix-matched (properties over generated refs)."""

from __future__ import annotations

import posixpath
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from configplane import ownership, refs

ACCOUNT, REGION = "333333333333", "eu-west-1"
segment = st.one_of(st.sampled_from(["", ".", "..", "api", "web", "*", "a+b", 'x"y', "a b",
                                     "p\n", "{x}"]),
                    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,8}", fullmatch=True))
path = st.lists(segment, min_size=1, max_size=5).map("/".join)


@given(st.one_of(path, path.map(lambda p: "/" + p)), st.text(max_size=6))
def test_an_accepted_vault_ref_stays_in_the_services_own_path(candidate, prop):
    try:
        ref = refs.parse_vault_ref(f"{candidate}#{prop}", "api")
    except refs.RefError as e:
        assert str(e).rstrip().endswith(".") and "Fix:" in str(e)
        return
    # what Vault resolves is what was written, and it is below the service's own path
    assert posixpath.normpath(ref.path) == ref.path == candidate
    assert ref.segments[0] == "api" and len(ref.segments) >= 2  # below the managed secret
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", s) for s in ref.segments)
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", ref.property)


@given(path)
def test_a_path_with_a_dot_segment_is_refused_whatever_follows(tail):
    for head in ("api/..", "api/.", "api/"):
        with pytest.raises(refs.RefError):
            refs.parse_vault_ref(f"{head}/{tail}#x", "api")


@pytest.mark.parametrize("ref, problem", [
    ("api/../worker/partner#token", "empty, `.` or `..` segment"),
    ("api-old/x#token", "not the service's own"),
    ("api#", "the property after `#`"),
    ("api", "with one `#`"),
    ("api#token", "itself is the secret configplane writes"),
])
def test_vault_ref_examples(ref, problem):
    with pytest.raises(refs.RefError, match=re.escape(problem)):
        refs.parse_vault_ref(ref, "api")


name = st.from_regex(r"[A-Za-z0-9/_+=.@!-]{1,40}", fullmatch=True)


@given(st.sampled_from(refs.PARTITIONS), name)
def test_secret_arn_round_trips_and_keeps_its_parts(partition, secret_name):
    text = f"arn:{partition}:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret_name}"
    parsed = refs.parse_secret_arn(text, account=ACCOUNT, region=REGION)
    assert str(parsed.arn) == text
    assert (parsed.arn.partition, parsed.arn.region, parsed.arn.account, parsed.name) == (
        partition, REGION, ACCOUNT, secret_name)
    # IAM needs the suffix wildcard exactly when the ARN lacks Secrets Manager's suffix
    assert parsed.policy_resource == (text if re.search(r"-[A-Za-z0-9]{6}$", secret_name)
                                      else text + "-??????")


@given(name, st.sampled_from(["api", "web", "api-v2", "ap"]))
def test_only_names_under_the_services_prefix_are_its_own(rest, owner):
    text = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:configplane/prod/{owner}/{rest}"
    ok = owner == "api"
    try:
        refs.check_service_secret_arn(text, account=ACCOUNT, region=REGION,
                                      prefix=ownership.secret_prefix("prod", "api"))
    except refs.RefError as e:
        assert not ok and "not the service's own" in str(e)
    else:
        assert ok


def test_iam_role_name_and_oidc_facts():
    issuer = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC"
    assert ownership.iam_role_name("prod", "api") == "configplane-prod-api-secrets"
    assert refs.oidc_provider_arn(issuer, ACCOUNT) == (
        "arn:aws:iam::333333333333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC")
    assert ownership.service_account_subject("api-prod", "api") == (
        "system:serviceaccount:api-prod:api")
    assert refs.EKS_ISSUER.fullmatch(issuer) and not refs.EKS_ISSUER.fullmatch(issuer + "\n")
