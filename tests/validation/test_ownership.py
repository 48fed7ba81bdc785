"""Ownership (configplane/validation/ownership.py): a reference to what a service does not own,
a platform name taken, a name two owners derive, a name that would reach policy text or an
API path. Each hostile case is refused by `validate`, by `plan` and by the program itself
(its RunError, as `pulumi preview` runs it) alike, naming the file, the key path and the
owner; the allowed variants pass all three."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from configplane.validation import load_or_issues
from tests.projects import copy_project
from tests.security.conftest import cli
from tests.security.test_verdicts import _program_verdict

WORKER = {"app_schema": "worker", "config": {
    "LOG_LEVEL": "info", "CONCURRENCY": 1, "RATE_LIMIT_RPS": 1, "VISIBILITY_TIMEOUT_SECONDS": 1,
    "PAYMENTS_API_BASE_URL": "https://x.example.com",
    "QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/111111111111/q"}}


def _edit(path: Path, change: Callable[[Any], Any]) -> None:
    document = yaml.safe_load(path.read_text()) if path.is_file() else {}
    change(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def service(name: str, change: Callable[[dict], Any], file: str = "service.yaml"):
    return lambda p: _edit(p / "services" / name / file, change)


def new_service(name: str, **extra: Any):
    return lambda p: _edit(p / "services" / name / "service.yaml",
                           lambda d: d.update({**WORKER, **extra}))


def dev_platform(change: Callable[[dict], Any]):
    return lambda p: _edit(p / "Pulumi.dev.yaml",
                           lambda d: change(d["config"]["configplane:platform"]))


def grants(change: Callable[[dict], Any]):
    def edit(document: dict) -> None:
        change(document["config"]["configplane:defaults"]["value"]["platform"]["grants"])
    return lambda p: _edit(p / "Pulumi.yaml", edit)


def secret(name: str, key: str, **spec: Any):
    return service(name, lambda d: d.setdefault("secrets", {}).update({key: spec}))


def tls_names(name: str, *names: str):
    return service(name, lambda d: d.setdefault("tls", {}).update(
        {"extra_dns_names": list(names)}))


def both(*edits):
    def edit(p: Path) -> None:
        for e in edits:
            e(p)
    return edit


def services_is_a_file(p: Path) -> None:
    import shutil

    shutil.rmtree(p / "services")
    (p / "services").write_text("api: {}\n")


NOT_GRANTED = "a service may use only the keys granted to it"
# case -> (edit, file, key path, words the message must hold, the program reports it too)
CASES: dict[str, tuple[Callable[[Path], None], str, str, str]] = {
    "secure-key-of-the-platform": (
        secret("worker", "STOLEN", source="secure", store="vault",
               config_key="shopVaultDbPassword"),
        "services/worker/service.yaml", "services.worker.secrets.STOLEN.config_key",
        f"`configplane:shopVaultDbPassword` is the platform's secure key, not service worker's: "
        f"{NOT_GRANTED}"),
    "secure-key-of-another-service": (
        secret("web", "STOLEN", source="secure", store="vault", config_key="apiDbPassword"),
        "services/web/service.yaml", "services.web.secrets.STOLEN.config_key",
        f"`configplane:apiDbPassword` is service api's secure key, not service web's: "
        f"{NOT_GRANTED}"),
    "platform-key-granted-to-a-service": (
        grants(lambda g: g["secure_keys"]["api"].append("shopVaultDbPassword")),
        "Pulumi.dev.yaml", "platform.database.connections.shop.password_config_key",
        "`configplane:shopVaultDbPassword` is granted to service api: the database engine's "
        "root password would be that service's secret too"),
    "key-granted-twice": (
        grants(lambda g: g["secure_keys"].update({"web": ["apiDbPassword"]})),
        "Pulumi.yaml", "platform.grants.secure_keys.web.0",
        "this secure key is granted to service api already: a grant has one owner"),
    "tls-another-services-name": (
        tls_names("api", "web.web-dev.svc"), "services/api/service.yaml",
        "services.api.tls.extra_dns_names.0",
        "the name is the platform's, not service api's: its PKI role would let it obtain "
        "certificates for it. Fix: list only names in the service's own namespace"),
    "tls-wildcard-in-another-namespace": (
        both(tls_names("api", "*.worker-dev.svc.cluster.local"),
             dev_platform(lambda pl: pl["pki"].update({"allow_wildcard_names": True}))),
        "services/api/service.yaml", "services.api.tls.extra_dns_names.0",
        "the name is the platform's, not service api's"),
    "tls-external-name-not-granted": (
        tls_names("api", "shop.example.com"), "services/api/service.yaml",
        "services.api.tls.extra_dns_names.0",
        "ask the platform team to grant it to this service (platform.grants.dns_names)"),
    "tls-external-name-granted-to-another": (
        both(tls_names("api", "shop.example.com"),
             grants(lambda g: g.update({"dns_names": {"web": ["shop.example.com"]}}))),
        "services/api/service.yaml", "services.api.tls.extra_dns_names.0",
        "the name is service web's, not service api's"),
    "cluster-name-granted": (
        grants(lambda g: g.update({"dns_names": {"web": ["api.api-dev.svc"]}})),
        "Pulumi.yaml", "platform.grants.dns_names.web.0",
        "belongs to its namespace's service and cannot be granted"),
    "named-like-a-platform-component": (
        new_service("cert-manager", namespace="cert-manager"),
        "services/cert-manager/service.yaml", "services.cert-manager",
        "`cert-manager` is a platform name"),
    "in-a-platform-namespace": (
        service("web", lambda d: d.update({"namespace": "vault"})),
        "services/web/service.yaml", "services.web.namespace",
        "`vault` is a platform namespace"),
    "a-stacks-workspace-account": (  # trusted by the shard's deploy role and Vault login
        new_service("pulumi-dev-web-team", namespace="pulumi-operator"),
        "services/pulumi-dev-web-team/service.yaml", "services.pulumi-dev-web-team.namespace",
        "is the Pulumi Kubernetes Operator's namespace"),
    "in-the-operators-namespace": (  # any service there, whatever its name
        service("web", lambda d: d.update({"namespace": "pulumi-operator"})),
        "services/web/service.yaml", "services.web.namespace",
        "`pulumi-operator` is the Pulumi Kubernetes Operator's namespace"),
    "in-the-operators-configured-namespace": (
        both(dev_platform(lambda pl: pl.setdefault("shards", {}).update(
            operator_namespace="deployers")),
             service("web", lambda d: d.update({"namespace": "deployers"}))),
        "services/web/service.yaml", "services.web.namespace",
        "`deployers` is the Pulumi Kubernetes Operator's namespace"),
    "named-like-the-operators-namespace": (
        new_service("pulumi-operator", namespace="pulumi-operator-jobs"),
        "services/pulumi-operator/service.yaml", "services.pulumi-operator",
        "`pulumi-operator` is the Pulumi Kubernetes Operator's namespace"),
    "a-tenant-configmap-spelled-by-another-service": (
        both(new_service("a", tenants={"b-config-tenant-c": {"config": {"CONCURRENCY": 2}}}),
             new_service("a-config-tenant-b", tenants={"c": {"config": {"CONCURRENCY": 2}}})),
        "services/a-config-tenant-b/service.yaml", "services.a-config-tenant-b.tenants.c",
        "its resource name (ConfigMap) would be `a-config-tenant-b-config-tenant-c`, the same "
        "as for services.a.tenants.b-config-tenant-c"),
    "a-secret-resource-spelled-by-another-service": (
        both(secret("web", "X_SECRET_VALUES_Y", source="generated", store="vault"),
             new_service("web-secret-values-x", secrets={
                 "Y": {"source": "generated", "store": "vault"}})),
        "services/web-secret-values-x/service.yaml", "services.web-secret-values-x.secrets.Y",
        "its resource name (generated secret) would be `web-secret-values-x-secret-values-y`"),
    "kv-mount-with-a-slash": (
        dev_platform(lambda pl: pl["vault"].update({"mount": "shop/dev-kv"})),
        "Pulumi.dev.yaml", "platform.vault.mount", "is one path segment"),
    "kv-mount-of-another-environment": (
        dev_platform(lambda pl: pl["vault"].update({"mount": "prod-kv"})),
        "Pulumi.dev.yaml", "platform.vault.mount", "does not start with `dev-`"),
    "database-mount-with-quotes": (
        dev_platform(lambda pl: pl["database"].update({"mount": 'dev-db"}x'})),
        "Pulumi.dev.yaml", "platform.database.mount", "is one path segment"),
    "pki-mount-with-braces": (
        dev_platform(lambda pl: pl["pki"].update({"mount": "dev-pki{x}"})),
        "Pulumi.dev.yaml", "platform.pki.mount", "is one path segment"),
    "auth-path-with-a-newline": (
        dev_platform(lambda pl: pl["vault"].update({"kubernetes_auth_path": "kubernetes\n"})),
        "Pulumi.dev.yaml", "platform.vault.kubernetes_auth_path", "is not an RFC 1123 label"),
    "connection-name-that-walks-the-api": (
        dev_platform(lambda pl: pl["database"]["connections"].update(
            {"shop/../../sys/policy/x": pl["database"]["connections"]["shop"]})),
        "Pulumi.dev.yaml", "platform.database.connections.shop/../../sys/policy/x",
        "becomes one segment of a Vault API path"),
    "version-beyond-64-bits": (
        secret("web", "COOKIE_ENCRYPTION_KEY", source="generated", store="vault", length=48,
               version=1e20),
        "services/web/service.yaml", "services.web.secrets.COOKIE_ENCRYPTION_KEY.version",
        "9223372036854775807"),
}
NOT_IN_THE_PROGRAMS_LINES = {"services-is-a-file"}


def hostile(tmp_path: Path, case: str) -> Path:
    project = copy_project(tmp_path / "project")
    CASES[case][0](project)
    return project


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_plan_and_the_program_refuse_alike(tmp_path, case):
    project = hostile(tmp_path, case)
    _, file, path, words = CASES[case]
    validate = cli("validate", "--stack", "dev", "--project-dir", str(project), "--format", "json")
    plan = cli("plan", "--stack", "dev", "--project-dir", str(project), "--format", "json",
               "--no-policy")
    assert validate.code == 1 and plan.code == 1, validate.text[-1500:] + plan.text[-1500:]
    errors = json.loads(validate.stdout)["errors"]
    mine = [e for e in errors if (e["file"], e["path"]) == (file, path)]
    assert any(words in e["message"] and "Fix:" in e["message"] for e in mine), errors
    assert json.loads(plan.stdout)["errors"] == errors
    assert (file, path) in _program_verdict(project)


def test_a_services_file_is_refused_everywhere(tmp_path):
    """A regular file for the catalog read as no services: `pulumi up` would delete them all."""
    project = copy_project(tmp_path / "project")
    services_is_a_file(project)
    for verb in ("validate", "plan"):
        run = cli(verb, "--stack", "dev", "--project-dir", str(project), "--format", "json",
                  *(["--no-policy"] if verb == "plan" else []))
        assert run.code == 1
        [error] = json.loads(run.stdout)["errors"]
        assert error["file"] == "services" and "is not a directory" in error["message"]


ALLOWED = {
    "an-external-name-granted-to-it": both(
        tls_names("api", "shop.example.com"),
        grants(lambda g: g.update({"dns_names": {"api": ["shop.example.com"]}}))),
    "a-name-in-its-own-namespace": tls_names("api", "admin.api-dev.svc"),
    "its-own-secure-key": secret("api", "EXTRA", source="secure", store="vault",
                                 config_key="apiDbPassword"),
    "a-service-named-like-another-plus-a-suffix": new_service("api-gateway"),
    "a-service-named-like-a-tenant-of-another": new_service("worker-acme"),
}


@pytest.mark.parametrize("case", sorted(ALLOWED))
def test_what_a_service_owns_is_allowed(tmp_path, case):
    project = copy_project(tmp_path / "project")
    ALLOWED[case](project)
    run = cli("validate", "--stack", "dev", "--project-dir", str(project), "--format", "json")
    assert run.code == 0, run.text[-2000:]


@settings(max_examples=12, deadline=None)
@given(namespace=st.sampled_from(["pulumi-operator", "deployers", "jobs"]),
       operator=st.sampled_from([None, "pulumi-operator", "deployers"]),
       split=st.booleans())
def test_validate_refuses_a_service_in_the_operators_namespace_exactly_once(
        namespace, operator, split):
    """Whether or not the environment is split (the default namespace then), a service whose
    namespace is the operator's is refused with one message naming its file and key path;
    any other namespace is not."""
    with tempfile.TemporaryDirectory() as tmp:
        project = copy_project(Path(tmp) / "project")
        if not split:
            _edit(project / "Pulumi.yaml", lambda d: d["config"]["configplane:defaults"]
                  ["value"]["platform"].pop("shards"))
        elif operator is not None:
            dev_platform(lambda pl: pl.setdefault("shards", {}).update(
                operator_namespace=operator))(project)
        service("web", lambda d: d.update({"namespace": namespace}))(project)
        _, issues = load_or_issues(project, "dev")
    effective = operator if split and operator is not None else "pulumi-operator"
    mine = [i for i in issues if "Operator's namespace" in i.message]
    assert len(mine) == (namespace == effective), issues
    for issue in mine:
        assert issue.where.startswith("services/web/service.yaml:")  # the line that sets it
        assert issue.path == "services.web.namespace"
        assert f"`{effective}`" in issue.message and "Fix:" in issue.message
