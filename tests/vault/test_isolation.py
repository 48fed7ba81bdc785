"""Per-service isolation, decided by the OpenBao server itself: every Kubernetes auth role of
every sample stack, logged in as that role would be, against every service's KV, PKI and
database paths and the control paths (sys/, auth/)."""

from __future__ import annotations

import json

import pytest

from configplane import ownership
from configplane.model import environment_topology
from tests.conftest import REPO, STACKS
from tests.vault import github_oidc
from tests.vault.probes import (
    AUTH_ROLE,
    CONTROL_PATHS,
    DB_ROLE,
    KV_SECRET,
    LoginRefused,
    csr_pem,
    login,
    status,
)


def service_paths(applied) -> dict[str, dict[str, list[tuple[str, str, dict | None]]]]:
    """service -> kind (kv, pki, database) -> the (method, path, body) that use it."""
    plan, paths = applied.plan, {}
    services = {r.inputs["boundServiceAccountNames"][0] for r in plan.resources
                if r.type == AUTH_ROLE}
    mount = f"{applied.stack}-kv"
    for svc in services:
        paths[svc] = {"kv": [("GET", f"{mount}/data/{svc}", None),
                             ("GET", f"{mount}/metadata/{svc}", None)],
                      "pki": [("POST", f"{applied.stack}-pki/sign/{svc}",
                               {"csr": csr_pem([f"{svc}.{svc}-{applied.stack}.svc"])})],
                      "database": []}
    for r in plan.resources:
        if r.type == DB_ROLE:
            svc = r.parent.split("::")[-1].removesuffix("-dynamic")  # <svc>-dynamic
            paths[svc]["database"].append(("GET", f"{r.inputs['backend']}/creds/{r.inputs['name']}",
                                           None))
    return paths


# <env>-<svc>-<suffix> -> the kind of path it owns; the platform's backup role (`<env>-vault-
# snapshot`, docs/dr.md) owns none of any service: every service path must be refused to it
KIND_OF_POLICY = {"read": "kv", "pki": "pki", "database": "database", "snapshot": "snapshot"}
# the one control path a kind owns (the backup role reads the raft snapshot: 404 on this dev
# server without raft storage, so allowed; tests/program/test_backup.py takes it on raft)
OWN_CONTROL_PATH = {"snapshot": ("GET", "sys/storage/raft/snapshot")}


def isolation_findings(applied, token: str, service: str, kind: str) -> list[str]:
    """Everything the token may do is its own service's paths of its own kind; anything
    else allowed is a finding, and so is its own path refused."""
    findings = []
    for svc, kinds in service_paths(applied).items():
        for k, requests in kinds.items():
            for method, path, body in requests:
                code = status(applied.server, method, path, token, body)
                mine = svc == service and k == kind
                if mine and code == 403:
                    findings.append(f"own {path} refused")
                if not mine and code != 403:
                    findings.append(f"{method} {path} answered {code}, not 403")
    for method, path in CONTROL_PATHS:
        code = status(applied.server, method, path, token)
        if (method, path) == OWN_CONTROL_PATH.get(kind):
            if code == 403:
                findings.append(f"own {path} refused")
        elif code != 403:
            findings.append(f"{method} {path} answered {code}, not 403")
    listing = status(applied.server, "LIST", f"{applied.stack}-kv/metadata", token)
    if listing != 403:
        findings.append(f"listing every service's KV metadata answered {listing}")
    return findings


def roles(applied):
    """The services' Kubernetes auth roles (a shard deployer's login is judged below)."""
    return sorted((r.inputs["backend"], r.inputs["roleName"], r.inputs["boundServiceAccountNames"][0],
                   list(r.inputs["tokenPolicies"]))
                  for r in applied.plan.resources if r.type == AUTH_ROLE
                  and ownership.deploy_login_shard(r.inputs["roleName"], applied.stack) is None)


@pytest.mark.parametrize("stack", STACKS)
def test_each_role_reaches_only_its_own_paths(applied, stack):
    a = applied[stack]
    checked = 0
    for backend, role, service, policies in roles(a):
        token, granted = login(a, backend, role)
        assert granted == sorted(["default", *policies]), role  # what a login carries
        (policy,) = policies
        kind = KIND_OF_POLICY[policy.rsplit("-", 1)[1]]
        assert isolation_findings(a, token, service, kind) == [], role
        checked += 1
    # every service has its read role; dev's api also a pki and a database role
    assert checked >= 3


@pytest.mark.parametrize("stack", STACKS)
def test_each_service_reads_its_own_secret_and_its_versions(applied, stack):
    a = applied[stack]
    secrets = [r for r in a.plan.resources if r.type == KV_SECRET]
    assert secrets
    for r in secrets:
        svc = r.inputs["name"]
        token, _ = login(a, f"kubernetes-{stack}", svc)
        data = a.server.call("GET", f"{stack}-kv/data/{svc}", token=token)["data"]
        planned = a.applier.inputs(r)  # the placeholders as the applier filled them
        assert data["data"] == json.loads(planned["dataJsonWo"])
        meta = a.server.call("GET", f"{stack}-kv/metadata/{svc}", token=token)["data"]
        assert meta["current_version"] >= 1


def test_a_glob_policy_is_caught(applied):
    """Mutation: the api read policy widened to every service's path (`data/*`)."""
    a = applied["dev"]
    a.server.call("PUT", "sys/policies/acl/dev-api-read-glob", {"policy": (
        'path "dev-kv/data/*" { capabilities = ["read"] }\n'
        'path "dev-kv/metadata/*" { capabilities = ["read", "list"] }\n')})
    a.server.call("POST", "auth/kubernetes-dev/role/api-glob", {
        "bound_service_account_names": ["api"], "bound_service_account_namespaces": ["api-dev"],
        "token_policies": ["dev-api-read-glob"], "audience": "vault"})
    token, _ = login(a, "kubernetes-dev", "api-glob")
    findings = isolation_findings(a, token, "api", "kv")
    assert any("dev-kv/data/web" in f for f in findings)
    assert any("listing" in f for f in findings)


@pytest.mark.parametrize("stack", STACKS)
def test_a_role_logs_in_only_its_own_account_in_its_own_namespace_for_vault(applied, stack):
    """The server decides the Kubernetes bindings: through the planned out-of-cluster config
    (the API server's CA, the reviewer token), each role accepts its own service account's
    token for audience `vault` and refuses another service's account, its own account in
    another namespace, an IRSA token (audience sts.amazonaws.com) and a token the API server
    never issued."""
    a = applied[stack]
    accounts = sorted({r.inputs["boundServiceAccountNames"][0] for r in a.plan.resources
                       if r.type == AUTH_ROLE})
    for backend, role, service, _ in roles(a):
        login(a, backend, role)  # its own account: accepted
        settings = a.server.call("GET", f"auth/{backend}/role/{role}")["data"]
        other = next(x for x in accounts if x != service)
        refused = {"another service's account": {"account": other},
                   "its account in another namespace": {"namespace": f"{other}-{stack}"},
                   "an IRSA token": {"audience": "sts.amazonaws.com"}}
        if settings["audience"] != "vault":  # cert-manager's own audience for its Issuer
            refused["an ESO token"] = {"audience": "vault"}
        for what, identity in refused.items():
            with pytest.raises(LoginRefused):
                login(a, backend, role, **identity)
                pytest.fail(f"{role} accepted {what}")
        forged = a.kube.issue(settings["bound_service_account_namespaces"][0], service,
                              (settings["audience"],))
        del a.kube.issued[forged]  # the API server does not know it
        response = a.server.request("POST", f"auth/{backend}/login", token="",
                                    json={"role": role, "jwt": forged})
        assert response.status_code == 403, (role, response.text)
    assert a.kube.reviews, "Vault never asked the API server"


JWT_ROLE = "vault:jwt/authBackendRole:AuthBackendRole"


@pytest.mark.parametrize("stack", STACKS)
def test_a_shard_deployer_logs_in_only_as_its_own_shard_and_writes_only_its_own(applied, stack):
    """The server decides a deployer's logins (components/deploy_rights.py): the GitHub JWT
    role accepts a token of the repository in the shard's own GitHub environment for the
    bound audience, and refuses another shard's environment, the `-preview` one, another
    repository and another audience; the operator's Kubernetes role accepts the shard's
    workspace account only. Either token writes its shard's services' KV and no other
    shard's, and neither any deployer's login role nor any deploy policy."""
    a = applied[stack]
    topology = environment_topology(REPO, stack)
    shards = {ownership.shard_stack_name(stack, s): services
              for s, services in topology.shards().items()}
    planned = {(r.type, r.inputs["roleName"]): r.inputs for r in a.plan.resources
               if r.type in (JWT_ROLE, AUTH_ROLE)}
    for shard, services in shards.items():
        name = ownership.deploy_login_role(shard)
        policies = sorted(["default", ownership.deploy_policy_name(shard)])
        github = planned[(JWT_ROLE, name)]
        repository, audience = github["boundClaims"]["repository"], github["boundAudiences"][0]
        own_env = ownership.github_deploy_environment(shard)

        def jwt_login(repo: str, environment: str, aud: str, role: str = name,
                      backend: str = github["backend"]) -> tuple[int, dict]:
            response = a.server.request("POST", f"auth/{backend}/login", token="",
                                        json={"role": role, "jwt": github_oidc.token(
                                            repo, environment, aud)})
            return response.status_code, response.json().get("auth") or {}

        code, auth = jwt_login(repository, own_env, audience)
        assert code == 200 and sorted(auth["policies"]) == policies, (shard, code)
        other = next(s for s in shards if s != shard)
        for what, (repo, environment, aud) in {
                "another shard's environment": (repository, ownership.github_deploy_environment(
                    other), audience),
                "the preview environment": (repository, f"{stack}-preview", audience),
                "another repository": ("shop/fork", own_env, audience),
                "another audience": (repository, own_env, "sigstore")}.items():
            assert jwt_login(repo, environment, aud)[0] >= 400, (shard, what)
        operator = planned[(AUTH_ROLE, name)]
        token, granted = login(a, operator["backend"], name)
        assert granted == policies
        with pytest.raises(LoginRefused):
            login(a, operator["backend"], name,
                  account=ownership.stack_account(other))
        for deploy_token in (auth["client_token"], token):
            kv = f"{stack}-kv/data"
            for service in services:  # asked, not written: other tests read these secrets
                caps = a.server.call("POST", "sys/capabilities-self", {"paths": [
                    f"{kv}/{service}"]}, token=deploy_token)
                assert {"create", "update"} <= set(caps[f"{kv}/{service}"]), (shard, service)
            for service in shards[other]:
                assert status(a.server, "POST", f"{kv}/{service}", deploy_token,
                              {"data": {"k": "v"}}) == 403, (shard, service)
            for target in shards:
                for path in (f"auth/{github['backend']}/role/{ownership.deploy_login_role(target)}",
                             f"auth/{operator['backend']}/role/{ownership.deploy_login_role(target)}",
                             f"sys/policies/acl/{ownership.deploy_policy_name(target)}"):
                    assert status(a.server, "POST", path, deploy_token,
                                  {"policy": 'path "*" { capabilities = ["sudo"] }',
                                   "token_policies": ["root"]}) == 403, (shard, path)
