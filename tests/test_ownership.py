"""configplane/ownership.py: every derived name has one owner and one function; the inverses
the pack judges grants with agree with what a glob really matches (properties against brute
force and against the names the functions derive)."""

from __future__ import annotations

import itertools
import re

from hypothesis import given
from hypothesis import strategies as st

from configplane import contract, ownership

LABELS = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z")
NAMERS = [(ownership.read_policy_name, ownership.READ_POLICY_SUFFIX),
          (ownership.pki_policy_name, ownership.PKI_POLICY_SUFFIX),
          (ownership.database_policy_name, ownership.DATABASE_POLICY_SUFFIX)]


@given(env=LABELS, service=LABELS, namer=st.sampled_from(NAMERS))
def test_policy_service_inverts_the_policy_names(env, service, namer) -> None:
    name_of, suffix = namer
    assert ownership.policy_service(name_of(env, service), env, suffix) == service


def test_policy_service_rejects_other_names() -> None:
    assert ownership.policy_service("prod-api-read", "dev", "-read") is None
    assert ownership.policy_service("prod-api-read", "prod", "-pki") is None
    assert ownership.policy_service("prod-Api-read", "prod", "-read") is None
    assert ownership.policy_service("prod--read", "prod", "-read") is None
    assert ownership.policy_service(None, "prod", "-read") is None
    assert ownership.policy_service("prod-api-read\n", "prod", "-read") is None


def test_required_labels_and_account_pattern() -> None:
    assert contract.REQUIRED_LABELS == (
        "app.kubernetes.io/name", "app.kubernetes.io/part-of",
        "app.kubernetes.io/managed-by", "configplane.io/environment")
    assert re.fullmatch(contract.AWS_ACCOUNT_ID, "333333333333")
    assert not re.fullmatch(contract.AWS_ACCOUNT_ID, "33333333333")


def test_linked_facts_use_the_contract_label() -> None:
    """refs.py and ownership.py are linked into the pack as top-level modules, so they cannot
    import configplane.contract; each composes the label (unanchored) into its grammars. Their
    copies must stay the contract's label."""
    from configplane import refs

    assert "^" + refs.DNS_LABEL.pattern + "$" == contract.DNS_LABEL
    assert "^" + ownership.LABEL + "$" == contract.DNS_LABEL


# --- globs: what a pattern reaches --------------------------------------------------------

def _regex(glob: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                              for c in glob), re.S)


def _brute_intersect(a: str, b: str, alphabet: str = "xy/", longest: int = 6) -> bool:
    ra, rb = _regex(a), _regex(b)
    return any(ra.fullmatch(s) and rb.fullmatch(s)
               for n in range(longest + 1)
               for s in map("".join, itertools.product(alphabet, repeat=n)))


GLOBS = st.text(alphabet="xy/*?", max_size=4)


@given(GLOBS, GLOBS)
def test_globs_intersect_agrees_with_brute_force(a: str, b: str) -> None:
    assert ownership.globs_intersect(a, b) == _brute_intersect(a, b)


def test_globs_intersect_is_linear_in_memory_on_long_patterns() -> None:
    long = "a*" * 2000
    assert ownership.globs_intersect(long, "a" * 2000)  # no recursion limit
    assert not ownership.globs_intersect(long + "b", "a" * 2000 + "c")


SERVICES = ("api", "api-v2", "web", "worker")
ARN = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:"


@given(st.sampled_from(SERVICES), st.from_regex(r"\A[A-Z_]{1,10}\Z"),
       st.sampled_from(["", "-??????", "-Ab12Cd", "*"]))
def test_a_services_own_secret_pattern_reaches_only_it(service, key, tail) -> None:
    pattern = ARN + ownership.aws_secret_name("dev", service, key) + tail
    assert ownership.secret_pattern_owners(pattern, "dev", SERVICES) == {service}


@given(st.sampled_from(SERVICES), st.lists(st.sampled_from(["*", "?", "dev", "/", "a", "w"]),
                                           min_size=1, max_size=6))
def test_a_pattern_reaches_every_service_whose_secret_it_matches(service, parts) -> None:
    """Soundness against the derived names: whenever the pattern matches a real secret name of
    a service, that service is among its owners (whatever the pattern's prefix)."""
    pattern = "configplane/" + "".join(parts)
    owners = ownership.secret_pattern_owners(ARN + pattern, "dev", SERVICES)
    name = ownership.aws_secret_name("dev", service, "KEY")
    if _regex(pattern).fullmatch(name):
        assert service in owners
    if _regex(pattern).fullmatch(ownership.aws_secret_name("prod", service, "KEY")):
        assert ownership.EVERY in owners  # another environment's secret: not one of ours


def test_the_pattern_of_the_issue_reaches_every_environment() -> None:
    owners = ownership.secret_pattern_owners(ARN + "configplane/*/worker/*", "dev", SERVICES)
    assert {"worker", ownership.EVERY} <= owners
    assert ownership.secret_pattern_owners(ARN + "rds!cluster-shop-dev-master-Ab12Cd", "dev",
                                           SERVICES) == set()
    assert ownership.secret_pattern_owners("arn:aws:s3:::bucket/*", "dev", SERVICES) == set()
    assert ownership.EVERY in ownership.secret_pattern_owners("*", "dev", SERVICES)


def _reference_pattern_owners(pattern: str, environment: str, services) -> set[str]:
    """The straightforward judgement SecretPatternOwners must agree with: the pattern's secret
    name intersected with every service's prefix, one by one."""
    parts = pattern.split(":", 5)
    if len(parts) == 6:
        if not ownership.globs_intersect(parts[2], "secretsmanager"):
            return set()
        resource = parts[5]
        if not ownership.globs_intersect(resource, "secret:*"):
            return set()
        name = resource[len("secret:"):] if resource.startswith("secret:") else "*"
    elif "*" in pattern:
        name = "*"
    else:
        return set()
    owners = {s for s in services
              if ownership.globs_intersect(name, ownership.secret_prefix(environment, s) + "*")}
    head = re.split(r"[*?]", name, maxsplit=1)[0]
    inside = any(head.startswith(ownership.secret_prefix(environment, s)) for s in owners)
    if not inside and ownership.globs_intersect(name, "configplane/*"):
        owners.add(ownership.EVERY)
    return owners


# Service names that are prefixes of one another (svc, svc-2, sv), that hold `/`, IAM's
# wildcards or Vault's `+`, and the empty name: what a stack's labels and tags can carry.
SERVICE_NAMES = st.one_of(st.sampled_from(["svc", "svc-2", "sv", "svc-20", "api", "api-v2"]),
                          st.text(alphabet="sv-2/*?+", max_size=5))
ENVIRONMENTS = st.sampled_from(["dev", "prod", "d?v", "*"])


@st.composite
def secret_patterns(draw, services: list[str], environment: str) -> str:
    """IAM resource patterns near the services' prefixes: a prefix cut anywhere and followed by
    wildcards and characters, spans of two services (one's head, another's tail), other
    environments, whole-ARN globs, other services' ARNs."""
    prefixes = [ownership.secret_prefix(environment, s) for s in services] or ["configplane/"]
    pieces = st.sampled_from(["*", "?", "+", "-", "/", "2", "s", "v", "KEY", "-??????",
                              "configplane/", environment + "/", "prod/", "dev/"])
    first, second = draw(st.sampled_from(prefixes)), draw(st.sampled_from(prefixes))
    cut = draw(st.integers(0, len(first)))
    tail = draw(st.integers(0, len(second)))
    name = first[:cut] + "".join(draw(st.lists(pieces, max_size=4))) + second[len(second) - tail:]
    arn = draw(st.sampled_from([
        "arn:aws:secretsmanager:eu-west-1:111111111111:secret:", "arn:aws:secretsmanager:*:*:secret:",
        "arn:aws:secretsmanager:*:*:*", "arn:aws:secrets*:*:*:secr?t:", "arn:aws:s3:::",
        "arn:aws:secretsmanager:eu-west-1:111111111111:", ""]))
    return arn + name


@given(st.data(), st.lists(SERVICE_NAMES, max_size=6), ENVIRONMENTS)
def test_the_indexed_pattern_owners_agree_with_judging_every_service(data, services, environment):
    """SecretPatternOwners (the prefixes indexed, each pattern judged against those its literal
    head agrees with, once) decides exactly as judging the pattern against every service's
    prefix, for every pattern of a stack, asked in any order and more than once."""
    judge = ownership.SecretPatternOwners(environment, services)
    patterns = data.draw(st.lists(secret_patterns(services, environment), min_size=1, max_size=8))
    for pattern in patterns + patterns:
        expected = _reference_pattern_owners(pattern, environment, services)
        got = judge(pattern)
        assert got == expected, pattern
        got.add("caller's own")  # callers may extend what they are given
    assert ownership.secret_pattern_owners(patterns[0], environment, services) == \
        _reference_pattern_owners(patterns[0], environment, services)


def test_the_indexed_pattern_owners_keep_prefixes_of_other_names_apart() -> None:
    judge = ownership.SecretPatternOwners("dev", ["svc", "svc-2", "sv"])
    every = ownership.EVERY
    assert judge(ARN + "configplane/dev/svc/*") == {"svc"}
    assert judge(ARN + "configplane/dev/sv/*") == {"sv"}
    assert judge(ARN + "configplane/dev/svc-2/KEY-??????") == {"svc-2"}
    # past the literal head: svc-2 and an undeclared svc-3 alike
    assert judge(ARN + "configplane/dev/svc*") == {"svc", "svc-2", every}
    # IAM's `?` is any character, `/` included: sv + `/` is inside sv's prefix
    assert judge(ARN + "configplane/dev/sv?/KEY-??????") == {"sv", "svc", every}
    assert judge(ARN + "configplane/dev/*/KEY") == {"svc", "svc-2", "sv", every}


# --- one owner per name ---------------------------------------------------------------------

def claims_of(*services: ownership.ServiceNames) -> list[tuple[tuple[str, ...], str, str]]:
    return [(("services", s.service, *path), kind, name)
            for s in services for kind, name, path in s.owned()]


@given(st.lists(st.tuples(LABELS, st.lists(LABELS, max_size=2),
                          st.lists(st.from_regex(r"\A[A-Z][A-Z_.]{0,6}\Z"), max_size=2)),
                min_size=1, max_size=5, unique_by=lambda t: t[0]))
def test_conflicts_name_every_name_claimed_from_two_places(services) -> None:
    claims = claims_of(*(ownership.ServiceNames(
        s, "dev", ownership.default_namespace(s, "dev"), tenants=tuple(ts),
        dynamic_keys=tuple(dict.fromkeys(ks)), tls=True) for s, ts, ks in services))
    holders: dict[tuple[str, str], list[tuple[str, ...]]] = {}
    for path, kind, name in claims:
        holders.setdefault((kind, name), [])
        if path not in holders[(kind, name)]:
            holders[(kind, name)].append(path)
    found = ownership.conflicts(claims)
    assert {(kind, name) for _, kind, name, _ in found} == {
        entry for entry, paths in holders.items() if len(paths) > 1}
    for path, kind, name, first in found:
        assert first == holders[(kind, name)][0] and path != first


def test_a_tenant_configmap_resource_spelled_by_another_service_is_one_name() -> None:
    a = ownership.ServiceNames("a", "dev", "a-dev", tenants=("b-config-tenant-c",))
    other = ownership.ServiceNames("a-config-tenant-b", "dev", "a-config-tenant-b-dev",
                                   tenants=("c",))
    assert ownership.conflicts(claims_of(a, other)) == [
        (("services", "a-config-tenant-b", "tenants", "c"), "resource name (ConfigMap)",
         "a-config-tenant-b-config-tenant-c", ("services", "a", "tenants", "b-config-tenant-c"))]
    # in their own namespaces, `worker`'s tenant `acme` and `worker-acme` share nothing
    worker = ownership.ServiceNames("worker", "dev", "worker-dev", tenants=("acme",))
    acme = ownership.ServiceNames("worker-acme", "dev", "worker-acme-dev")
    assert ownership.conflicts(claims_of(worker, acme)) == []


def test_two_keys_of_one_service_can_claim_one_role() -> None:
    api = ownership.ServiceNames("api", "dev", "api-dev", dynamic_keys=("A.B", "A_B"))
    assert ownership.conflicts(claims_of(api)) == [
        (("services", "api", "secrets", "A_B"), kind, name, ("services", "api", "secrets", "A.B"))
        for kind, name in (("Vault database role", "api-a-b"),
                           ("resource name (database credentials)", "api-dynamic-a-b"))]


def test_platform_names_are_reserved() -> None:
    for name in ("external-secrets", "cert-manager", "vault", "kube-system", "kube-anything",
                 "default"):
        assert [field for field, _ in ownership.reserved_problems(name, name)] == [
            "name", "namespace"]
    assert ownership.reserved_problems("billing", "ops", configured=("ops",)) == [
        ("namespace", ownership.reserved_problems("x", "ops", ("ops",))[0][1])]
    assert ownership.reserved_problems("api", "api-dev") == []


def test_dns_names_belong_to_their_namespace() -> None:
    own = ownership.dns_name_owner
    assert own("api.api-dev.svc", "api", "api-dev", {}) == "api"
    assert own("api.api-dev.svc", "web", "web-dev", {"api.api-dev.svc": "web"}) == "platform"
    assert ownership.granted({"web": ["a.example.com"], "api": ["a.example.com", "b"]}) == {
        "a.example.com": "web", "b": "api"}
    assert own("*.api-dev.svc.cluster.local", "web", "web-dev", {}) == "platform"
    assert own("*.web-dev.svc", "web", "web-dev", {}) == "web"  # its own namespace
    assert own("*.svc", "web", "web-dev", {"*.svc": "web"}) == "platform"
    assert own("other.web-dev.svc", "web", "web-dev", {}) == "web"
    assert own("shop.example.com", "web", "web-dev", {"shop.example.com": "web"}) == "web"
    assert own("shop.example.com", "api", "api-dev", {"shop.example.com": "web"}) == "web"
    assert own("shop.example.com", "api", "api-dev", {}) == "platform"
