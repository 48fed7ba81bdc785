"""Over the WHOLE offline plan: no service reaches what it does not own.

Each resource's owner comes from where the program declared it (the service component it
sits under, or the platform), never from the name the ownership model would give it. Each
reference a resource makes (Vault policy paths, auth-role bindings and token policies, PKI
allowed domains, IAM statements and trust subjects, Kubernetes namespaces and subjects, ESO
store, role and remote refs, generator paths, rotation targets) is resolved against the
plan's own objects, and the owner of what it reaches must be the resource's owner. External
names a certificate lists must be granted to its owner in a platform file.

Run on the sample stacks and on generated catalogs that pass validation (services whose
names are prefixes of each other, tenants, certificates with names of their own and granted
ones, dynamic logins, Secrets Manager secrets).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from configplane import ownership
from configplane.inputs import read_stack_files
from configplane.model import InvalidStack
from configplane.offline import run_plan
from configplane.validation import load_stack
from tests.conftest import REPO, STACKS
from tests.projects import copy_project

PLATFORM = ownership.PLATFORM


def iam_matches(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value) is not None


def hcl_paths(text: str) -> list[str]:
    return re.findall(r'path "([^"]*)"', text)


# The service components __main__.py declares for service `s` in environment `e`.
def service_components(s: str, e: str) -> dict[tuple[str, str], str]:
    return {(t, n): s for t, n in (
        ("configplane:config:ServiceConfig", f"{s}-config"),
        ("configplane:vault:VaultService", f"{s}-vault"),
        ("configplane:aws:AwsServiceSecrets", f"{s}-aws"),
        ("configplane:identity:SecretReaderRole", f"{s}-identity"),
        ("configplane:access:ServiceAccess", f"{s}-access"),
        ("configplane:externalsecrets:ServiceSecretStores", f"{s}-secret-stores"),
        ("configplane:secrets:SecretValues", f"{s}-secret-values"),
        ("configplane:externalsecrets:ServiceExternalSecret", f"{s}-external-secret"),
        ("configplane:pki:ServiceCertificate", f"{s}-tls"),
        ("configplane:database:ServiceDatabaseCredentials", f"{s}-dynamic"),
        ("configplane:rotation:SecretRotator", f"rotation-{e}-{s}"))}


class Reach:
    """The plan, indexed: who owns each object, and whose objects each reference reaches."""

    def __init__(self, plan: Any, services: list[str], environment: str,
                 dns_grants: dict[str, str]):
        self.env = environment
        self.dns_grants = dns_grants
        self.by_urn = {r.urn: r for r in plan.resources}
        top: dict[tuple[str, str], str] = {}
        for s in services:
            top.update(service_components(s, environment))
        self.owner: dict[str, str] = {}
        for r in plan.resources:
            root = r
            while root.parent in self.by_urn:
                root = self.by_urn[root.parent]
            self.owner[r.urn] = top.get((root.type, root.name), PLATFORM)
        # a service's KV secrets live under its own name in the mount, declared or referenced
        self.index: dict[tuple[str, Any], str] = {("kv", s): s for s in services}
        for r in plan.resources:
            for key in self._keys(r):
                self.index[key] = self.owner[r.urn]

    def _keys(self, r: Any) -> list[tuple[str, Any]]:
        i, meta = r.inputs, r.inputs.get("metadata") or {}
        t = r.type
        if t == "kubernetes:core/v1:Namespace":
            return [("namespace", meta["name"])]
        if t == "kubernetes:core/v1:ServiceAccount":
            return [("account", (meta["namespace"], meta["name"]))]
        if t.endswith((":SecretStore", ":Issuer", ":VaultDynamicSecret")):
            return [(t.rsplit(":", 1)[1], (meta["namespace"], meta["name"]))]
        if t == "vault:index/policy:Policy":
            return [("policy", i["name"])]
        if t == "vault:kubernetes/authBackendRole:AuthBackendRole":
            return [("auth role", i["roleName"])]
        if t == "vault:pkiSecret/secretBackendRole:SecretBackendRole":
            return [("pki role", (i["backend"], i["name"]))]
        if t == "vault:database/secretBackendRole:SecretBackendRole":
            return [("db role", (i["backend"], i["name"]))]
        if t == "vault:kv/secretV2:SecretV2":
            return [("kv", i["name"])]
        if t == "aws:secretsmanager/secret:Secret":
            return [("secret", i["name"]), ("secret arn", r.outputs.get("arn"))]
        if t == "aws:iam/role:Role":
            return [("iam role", i.get("name") or r.name)]
        return []

    def of(self, kind: str, key: Any) -> str | None:
        return self.index.get((kind, key))

    # --- what each reference reaches --------------------------------------------------------

    def violations(self) -> list[str]:
        found = []
        for urn, r in self.by_urn.items():
            owner = self.owner[urn]
            if owner == PLATFORM:
                continue
            for what, reached in self.references(r):
                if reached != owner:
                    found.append(f"{r.type} {r.name} (of {owner}) reaches {what}, "
                                 f"which is {reached}'s")
        return found

    def references(self, r: Any) -> list[tuple[str, str | None]]:
        i, meta = r.inputs, r.inputs.get("metadata") or {}
        t, out = r.type, []
        if t.startswith("kubernetes:") and "namespace" in meta:
            out.append((f"namespace {meta['namespace']}", self.of("namespace", meta["namespace"])))
        if t.endswith(":RoleBinding"):
            for subject in i.get("subjects") or []:
                account = (subject["namespace"], subject["name"])
                # cert-manager's account may request tokens for the service's (a platform
                # component acting for the service, bound in the service's namespace)
                if subject["namespace"] != "cert-manager":
                    out.append((f"account {account}", self.of("account", account)))
        if t.endswith(":Certificate"):
            ns = meta["namespace"]
            out += [(f"DNS name {d}", self.dns(d, r)) for d in i["spec"]["dnsNames"]]
            out.append(("its issuer", self.of("Issuer", (ns, i["spec"]["issuerRef"]["name"]))))
        if t.endswith(":Issuer"):
            vault = i["spec"]["vault"]
            out.append((f"sign path {vault['path']}", self.vault_path(vault["path"])))
            out.append(("its auth role", self.of("auth role", vault["auth"]["kubernetes"]["role"])))
            out.append(("its account", self.of("account", (
                meta["namespace"], vault["auth"]["kubernetes"]["serviceAccountRef"]["name"]))))
        if t.endswith(":SecretStore"):
            provider = i["spec"]["provider"]
            auth = (provider.get("vault") or {}).get("auth", {}).get("kubernetes") or \
                (provider.get("aws") or {}).get("auth", {}).get("jwt")
            out.append(("its account", self.of("account", (
                meta["namespace"], auth["serviceAccountRef"]["name"]))))
            if "role" in auth:
                out.append(("its auth role", self.of("auth role", auth["role"])))
        if t.endswith(":VaultDynamicSecret"):
            spec = i["spec"]
            auth = spec["provider"]["auth"]["kubernetes"]
            out.append((f"path {spec['path']}", self.vault_path(spec["path"])))
            out.append(("its auth role", self.of("auth role", auth["role"])))
            out.append(("its account", self.of("account", (
                meta["namespace"], auth["serviceAccountRef"]["name"]))))
        if t.endswith(":ExternalSecret"):
            out += self.external_secret_references(i["spec"], meta["namespace"])
        out += self.cloud_references(r)
        return out

    def cloud_references(self, r: Any) -> list[tuple[str, str | None]]:
        """What a Vault or AWS resource reaches: paths, accounts, policies, names, secrets."""
        t, i = r.type, r.inputs
        out: list[tuple[str, str | None]] = []
        if t == "vault:index/policy:Policy":
            out += [(f"Vault path {p}", self.vault_path(p)) for p in hcl_paths(i["policy"])]
        if t == "vault:kubernetes/authBackendRole:AuthBackendRole":
            for ns in i["boundServiceAccountNamespaces"]:
                for name in i["boundServiceAccountNames"]:
                    out.append((f"account {ns}/{name}", self.of("account", (ns, name))))
            out += [(f"policy {p}", self.of("policy", p)) for p in i["tokenPolicies"]]
        if t == "vault:pkiSecret/secretBackendRole:SecretBackendRole":
            out += [(f"DNS name {d}", self.dns(d, r)) for d in i["allowedDomains"]]
        if t == "aws:iam/role:Role":
            out += [(f"subject {s}", self.subject(s))
                    for s in re.findall(r'"(system:serviceaccount:[^"]*)"', i["assumeRolePolicy"])]
        if t == "aws:iam/rolePolicy:RolePolicy":
            out += self.iam(json.loads(i["policy"]))
        if t == "aws:secretsmanager/secretRotation:SecretRotation":
            out.append(("the rotated secret", self.of("secret arn", i["secretId"])))
        return out

    def external_secret_references(self, spec: Any, ns: str) -> list[tuple[str, str | None]]:
        """An ExternalSecret's stores and generators, and the secrets its entries read."""
        out: list[tuple[str, str | None]] = []
        default = spec.get("secretStoreRef")
        if default:
            out.append(("its store", self.of("SecretStore", (ns, default["name"]))))
        for entry in spec.get("dataFrom") or []:
            generator = (entry.get("sourceRef") or {}).get("generatorRef")
            if generator:
                out.append(("its generator", self.of("VaultDynamicSecret",
                                                     (ns, generator["name"]))))
        reads = [(e, e["remoteRef"]) for e in spec.get("data") or []] + [
            (e, e["extract"]) for e in spec.get("dataFrom") or [] if "extract" in e]
        for entry, remote in reads:
            store = (entry.get("sourceRef") or {}).get("storeRef") or default
            key = remote["key"]
            out.append(("a store", self.of("SecretStore", (ns, store["name"]))))
            aws = store["name"].endswith("aws-secretsmanager")
            out.append((f"secret {key}", self.of("secret", key) if aws
                        else self.of("kv", key.split("/")[0])))
        return out

    def vault_path(self, path: str) -> str | None:
        mount, kind, *rest = path.split("/")
        if kind in ("data", "metadata") and rest:
            return self.of("kv", rest[0])
        if kind == "sign" and len(rest) == 1:
            return self.of("pki role", (mount, rest[0]))
        if kind == "creds" and len(rest) == 1:
            return self.of("db role", (mount, rest[0]))
        return None  # nothing a service may reach

    def subject(self, sub: str) -> str | None:
        _, _, ns, name = sub.split(":")
        return self.of("account", (ns, name))

    def dns(self, name: str, r: Any) -> str | None:
        namespace = ownership.cluster_name_namespace(name)
        if namespace is None:
            return self.dns_grants.get(name, PLATFORM)
        return self.of("namespace", namespace)

    def iam(self, document: dict) -> list[tuple[str, str | None]]:
        out = []
        secrets = {k[1]: v for k, v in self.index.items() if k[0] == "secret arn" and k[1]}
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) \
                else [statement["Action"]]
            if not any(a.startswith("secretsmanager:") and a != "secretsmanager:GetRandomPassword"
                       for a in actions):
                continue
            resources = statement["Resource"] if isinstance(statement["Resource"], list) \
                else [statement["Resource"]]
            for pattern in resources:
                matched = {owner for arn, owner in secrets.items() if iam_matches(pattern, arn)}
                # a configplane secret name this stack does not declare (another service's
                # future secret, another environment's) is reached too
                reaches_layout = iam_matches(pattern.split(":secret:", 1)[-1],
                                             f"configplane/{self.env}/other-service/X-Ab12Cd")
                if reaches_layout:
                    matched.add("another owner")
                if ":secret:configplane/" not in pattern and not matched:
                    continue  # a database's master secret (the platform's, named in its file)
                out += [(f"secrets {pattern}", owner) for owner in matched or {None}]
        return out


def reach(project: Path, stack: str) -> Reach:
    model = load_stack(read_stack_files(project, stack), project / "schemas")
    plan = run_plan(project, stack, one_stack=True, policy=False)
    grants = ownership.granted(model.platform.grants.dns_names)
    return Reach(plan, sorted(model.services), model.environment, grants)


@pytest.mark.parametrize("stack", STACKS)
def test_no_service_reaches_what_it_does_not_own_in_the_sample_stacks(stack):
    found = reach(REPO, stack)
    assert found.violations() == []
    # the oracle sees the services: each owns objects of every kind a service declares
    owned = {found.owner[u] for u in found.owner} - {PLATFORM}
    # (the platform has namespaces too: prod's Vault snapshot CronJob has its own)
    assert owned == set(found.of("namespace", ns) for ns in
                        [k[1] for k in found.index if k[0] == "namespace"]) - {PLATFORM}


def test_the_oracle_sees_a_reference_to_another_services_object(tmp_path):
    """The property can fail: a policy of one service naming another's path is found."""
    found = reach(REPO, "dev")
    policy = next(r for r in found.by_urn.values() if r.type == "vault:index/policy:Policy"
                  and found.owner[r.urn] == "web")
    policy.inputs["policy"] = policy.inputs["policy"].replace("dev-kv/data/web", "dev-kv/data/api")
    assert any("dev-kv/data/api" in v and "api's" in v for v in found.violations())


WORKER = {"app_schema": "worker", "config": {
    "LOG_LEVEL": "info", "CONCURRENCY": 1, "RATE_LIMIT_RPS": 1, "VISIBILITY_TIMEOUT_SECONDS": 1,
    "PAYMENTS_API_BASE_URL": "https://x.example.com",
    "QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/111111111111/q"}}
DYNAMIC = {"source": "dynamic", "store": "vault", "dynamic": {
    "connection": "shop", "username_key": "REPORT_DB_USERNAME",
    "grants": [{"schema": "app", "tables": ["orders"], "privileges": ["SELECT"]}]}}
NAMES = st.sampled_from(["api", "api-v2", "api-pki", "web", "web-tls", "worker", "worker-acme"])


@st.composite
def catalogs(draw) -> dict[str, dict]:
    names = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    catalog = {}
    for name in names:
        spec: dict[str, Any] = dict(WORKER)
        if draw(st.booleans()):
            spec["tenants"] = {t: {"config": {"CONCURRENCY": 2}}
                               for t in draw(st.lists(st.sampled_from(["acme", "v2", "pki"]),
                                                      max_size=2, unique=True))}
        secrets = {}
        if draw(st.booleans()):
            secrets["TOKEN"] = {"source": "generated", "store": draw(st.sampled_from(
                ["vault", "aws"]))}
        if draw(st.booleans()):
            secrets["REPORT_DB_PASSWORD"] = DYNAMIC
        if secrets:
            spec["secrets"] = secrets
        if draw(st.booleans()):
            spec["tls"] = {"extra_dns_names": draw(st.lists(st.sampled_from(
                [f"admin.{name}-dev.svc", "shop.example.com", f"{names[0]}.{names[0]}-dev.svc"]),
                max_size=2, unique=True))}
        catalog[name] = spec
    return catalog


@example(catalog={  # names that are prefixes of each other, each with what it may own
    "api": {**WORKER, "tenants": {"v2": {"config": {"CONCURRENCY": 2}}},
            "tls": {"extra_dns_names": ["admin.api-dev.svc", "shop.example.com"]},
            "secrets": {"TOKEN": {"source": "generated", "store": "aws"}}},
    "api-v2": {**WORKER, "secrets": {"REPORT_DB_PASSWORD": DYNAMIC}}}, granted="api")
@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(catalog=catalogs(), granted=st.sampled_from([None, "api", "web"]))
def test_no_service_reaches_what_it_does_not_own_in_generated_catalogs(
        tmp_path_factory, catalog, granted):
    project = copy_project(tmp_path_factory.mktemp("fleet") / "project")
    for path in (project / "services").iterdir():
        if path.is_dir():
            for f in path.iterdir():
                f.unlink()
            path.rmdir()
    for name, spec in catalog.items():
        (project / "services" / name).mkdir()
        (project / "services" / name / "service.yaml").write_text(yaml.safe_dump(spec))
    if granted:
        pulumi_yaml = project / "Pulumi.yaml"
        document = yaml.safe_load(pulumi_yaml.read_text())
        document["config"]["configplane:defaults"]["value"]["platform"]["grants"][
            "dns_names"] = {granted: ["shop.example.com"]}
        pulumi_yaml.write_text(yaml.safe_dump(document, sort_keys=False))
    try:
        found = reach(project, "dev")
    except InvalidStack:
        return  # refused before anything is declared (tests/validation/test_ownership.py)
    assert found.violations() == []
    assert {found.owner[u] for u in found.owner} - {PLATFORM} == set(catalog)
