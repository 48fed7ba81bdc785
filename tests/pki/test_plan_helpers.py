"""Invariants of the plain helpers behind certificates and dynamic logins (hypothesis)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from configplane.contract import FORBIDDEN_ROLE_ATTRIBUTES, forbidden_attributes
from configplane.durations import go_duration, seconds
from configplane.model import DatabaseEngineSettings, Grant, Platform, Tls, tls_model
from configplane.model import dynamic_credentials as dyn
from configplane.ownership import database_policy_name
from tests.policies.builders import pack_module

PLATFORM = Platform.model_validate({
    "environment": "prod", "vault": {"address": "https://vault.example:8200"},
    "aws": {"region": "eu-west-1", "account_id": "333333333333"},
    "pki": {"parent": "external"}})
NAMES = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)
SQL = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)
GRANTS = st.lists(st.builds(
    lambda schema, tables, privileges: Grant.model_validate(
        {"schema": schema, "tables": tables, "privileges": privileges}),
    SQL, st.lists(SQL, min_size=1, max_size=3, unique=True),
    st.lists(st.sampled_from(["SELECT", "INSERT", "UPDATE", "DELETE"]), min_size=1,
             unique=True)), min_size=1, max_size=3)


@given(st.integers(min_value=0, max_value=10**7))
def test_durations_round_trip(total):
    assert seconds(go_duration(total)) == total
    assert re.fullmatch(r"(\d+h)?(\d+m)?(\d+s)?", go_duration(total))


@given(st.integers(min_value=3600, max_value=2160 * 3600), st.lists(
    st.builds(lambda a, b: f"{a}.{b}.example", NAMES, NAMES), max_size=3))
def test_tls_plan_names_and_default_renewal(duration, extra):
    plan = tls_model("api", "api-prod", PLATFORM, Tls(duration=go_duration(duration),
                                                     extra_dns_names=extra))
    assert plan.dns_names[:2] == ("api.api-prod.svc", "api.api-prod.svc.cluster.local")
    assert len(set(plan.dns_names)) == len(plan.dns_names)
    assert set(plan.dns_names) == {"api.api-prod.svc", "api.api-prod.svc.cluster.local", *extra}
    role = plan.role_args(2160 * 3600)
    assert role["allowed_domains"] == list(plan.dns_names)
    assert (role["allow_subdomains"], role["allow_any_name"], role["allow_glob_domains"]) == (
        False, False, False)
    # the default renewal point always satisfies the pack's 1/3 rule (certificate-lifetime)
    assert plan.renew_before * 3 >= plan.duration > plan.renew_before
    spec = plan.certificate_spec({})
    assert seconds(spec["duration"]) == duration and seconds(spec["renewBefore"]) == (
        plan.renew_before)


@given(GRANTS)
def test_statements_grant_and_take_back_exactly_the_grants(grants):
    create = dyn.creation_statements("shop", grants)
    revoke = dyn.revocation_statements("shop", grants)
    assert all(forbidden_attributes(s) == [] for s in create)
    assert "VALID UNTIL '{{expiration}}'" in create[0]
    for grant in grants:
        tables = ", ".join(f'"{grant.schema_}"."{t}"' for t in grant.tables)
        privileges = ", ".join(dict.fromkeys(grant.privileges))
        assert f'GRANT {privileges} ON TABLE {tables} TO "{{{{name}}}}";' in create
        assert f'REVOKE ALL PRIVILEGES ON TABLE {tables} FROM "{{{{name}}}}";' in revoke
    assert revoke[-1] == 'DROP ROLE IF EXISTS "{{name}}";'
    granted = [s for s in create if s.startswith("GRANT")]
    assert len(granted) == 1 + len({g.schema_ for g in grants}) + len(grants)


@given(st.sampled_from(FORBIDDEN_ROLE_ATTRIBUTES), st.sampled_from(["", " ", "\n"]))
def test_forbidden_attributes_are_found_and_no_forms_are_not(attribute, space):
    assert forbidden_attributes(f'ALTER ROLE "x" WITH{space} {attribute.lower()};') == [
        attribute]
    assert forbidden_attributes(f'ALTER ROLE "x" WITH NO{attribute};') == []


@given(st.integers(min_value=300, max_value=768 * 3600))
def test_default_refresh_is_under_half_the_ttl(ttl):
    settings = DatabaseEngineSettings(default_ttl=go_duration(ttl), max_ttl="768h")
    interval = seconds(dyn.refresh_interval(settings))
    assert interval >= 60 and interval * 2 < ttl


@given(NAMES, st.sampled_from(["dev", "staging", "prod"]))
def test_the_pack_recognises_the_policies_the_program_names(service, env):
    """vault-least-privilege hands `<env>-<svc>-pki` / `-database` policies to the certificate
    and dynamic-credential policies: the names the program writes must be the ones the pack
    recognises, for the right service."""
    lib = pack_module("credentials_lib")
    platform = PLATFORM.model_copy(update={"environment": env})
    plan = tls_model(service, f"{service}-{env}", platform, Tls())
    assert lib.owned_policy(plan.policy_name, env, "-pki") == service
    assert lib.owned_policy(database_policy_name(env, service), env, "-database") == service
    assert not lib.is_owned_policy(f"{env}-{service}-read", env)  # the KV read policy


@given(st.integers(min_value=0, max_value=10**7))
def test_the_pack_reads_durations_as_the_program_writes_them(total):
    lib = pack_module("credentials_lib")
    assert lib.go_seconds(go_duration(total)) == total
    assert lib.ttl_seconds(str(total)) == lib.ttl_seconds(total) == total
