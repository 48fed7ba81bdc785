"""`validate` refuses what would let one service read another's secrets, or inject text into
policy HCL: each class gives exit 1 with the exact message, key path and file."""

from __future__ import annotations

import json

import pytest

from tests.catalog_compat import catalog_file, edit_stack
from tests.validation.test_pipeline import run_validate

DEV_ACCOUNT = "111111111111"
OWN_ARN = f"arn:aws:secretsmanager:eu-west-1:{DEV_ACCOUNT}:secret:configplane/dev/web/CDN-Ab12Cd"


WORKER_CONFIG = {"LOG_LEVEL": "info", "CONCURRENCY": 1, "RATE_LIMIT_RPS": 1,
                 "QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/111111111111/q",
                 "PAYMENTS_API_BASE_URL": "https://example.com", "VISIBILITY_TIMEOUT_SECONDS": 1}


def services(config: dict) -> dict:
    return config["configplane:services"]


def platform(config: dict) -> dict:
    return config["configplane:platform"]


def add_ref(service: str, store: str, ref: str):
    def change(config: dict) -> None:
        services(config)[service].setdefault("secrets", {})["STOLEN"] = {
            "source": "reference", "store": store, "ref": ref}
    return change


def master(arn: str):
    def change(config: dict) -> None:
        services(config)["api"]["secrets"]["DATABASE_PASSWORD"]["rotation"] = {
            "strategy": "postgres-alternating-users", "master_secret_arn": arn}
    return change


NOT_OWN_VAULT = ("the path is not the service's own: its Vault policy reads only `web` and "
                 "`web/...` in its environment's mount. Fix: keep the value under `web/` in Vault.")
DOTS = ("the reference's path has an empty, `.` or `..` segment. Fix: write each segment out "
        "(no `//`, no trailing `/`, no `.` or `..`).")
NOT_OWN_ARN = ("the secret is not the service's own: a service reads only secrets named "
               "`configplane/dev/web/...`. Fix: keep the secret under `configplane/dev/web/` (or "
               "declare it in the service that owns it).")
HCL = ("may hold only letters, digits, `_`, `.` and `-` between `/` (no quotes, spaces, "
       "newlines, braces, `*` or `+`: the path is written into Vault policy text). Fix: rename it.")
SECRET_REF = "services.web.secrets.STOLEN.ref"
ONE_SEGMENT = ("is one path segment of lowercase letters, digits and '-' (no `/`, quotes, "
               "braces, spaces or newlines: it is written into Vault policy text and API "
               "paths). Fix: use a name such as `dev-kv`.")
PLATFORM_NAMESPACE = ("is a platform namespace (Kubernetes' own or a platform component's): "
                      "the service's objects would sit beside the component's credentials. "
                      "Fix: give the service its own namespace.")

CASES = {
    "vault-dotdot": (add_ref("web", "vault", "web/../api#password"), SECRET_REF, DOTS),
    "vault-dot": (add_ref("web", "vault", "web/./x#password"), SECRET_REF, DOTS),
    "vault-empty-segment": (add_ref("web", "vault", "web//x#password"), SECRET_REF, DOTS),
    "vault-trailing-slash": (add_ref("web", "vault", "web/#password"), SECRET_REF, DOTS),
    "vault-absolute": (add_ref("web", "vault", "/web/x#password"), SECRET_REF,
                       "the reference's path is an absolute path. Fix: drop the leading `/`."),
    "vault-prefix-lookalike": (add_ref("web", "vault", "webhooks/x#password"), SECRET_REF,
                               NOT_OWN_VAULT),
    "vault-glob": (add_ref("web", "vault", "web/*#password"), SECRET_REF,
                   f"the reference's path {HCL}"),
    "vault-the-managed-secret-itself": (
        add_ref("web", "vault", "web#token"), SECRET_REF,
        "`web` itself is the secret configplane writes for the service (each write replaces it "
        "whole). Fix: keep referenced values in a secret below it, `web/<name>#<property>`."),
    "vault-two-hashes": (add_ref("web", "vault", "web/x#a#b"), SECRET_REF,
                         "a Vault reference is `<path>#<property>` with one `#`. Fix: use the "
                         "form `web/<name>#<property>`."),
    "arn-other-service": (
        add_ref("web", "aws", f"arn:aws:secretsmanager:eu-west-1:{DEV_ACCOUNT}:secret:"
                              "configplane/dev/api/DATABASE_PASSWORD-Ab12Cd"),
        SECRET_REF, NOT_OWN_ARN),
    "arn-prefix-lookalike": (
        add_ref("web", "aws", f"arn:aws:secretsmanager:eu-west-1:{DEV_ACCOUNT}:secret:"
                              "configplane/dev/webhooks/TOKEN"),
        SECRET_REF, NOT_OWN_ARN),
    "arn-other-account": (
        add_ref("web", "aws", OWN_ARN.replace(DEV_ACCOUNT, "222222222222")), SECRET_REF,
        "the ARN belongs to another AWS account than this environment's (111111111111). Fix: "
        "reference a secret of this environment's account."),
    "arn-other-region": (
        add_ref("web", "aws", OWN_ARN.replace("eu-west-1", "us-east-1")), SECRET_REF,
        "the ARN is in another region than this environment's (eu-west-1). Fix: reference a "
        "secret in the environment's region (or replicate it there)."),
    "arn-other-service-type": (
        add_ref("web", "aws", f"arn:aws:ssm:eu-west-1:{DEV_ACCOUNT}:parameter/configplane/x"),
        SECRET_REF, "the ARN is not a Secrets Manager ARN (service `secretsmanager`). Fix: use "
                    "the form `arn:aws:secretsmanager:<region>:<account>:secret:<name>`."),
    "not-an-arn": (
        add_ref("web", "aws", "configplane/dev/web/CDN"), SECRET_REF,
        "not an ARN (`arn:<partition>:<service>:<region>:<account>:<resource>`). Fix: copy the "
        "secret's ARN from `aws secretsmanager describe-secret`."),
    "master-secret-of-another-service": (
        master(f"arn:aws:secretsmanager:eu-west-1:{DEV_ACCOUNT}:secret:configplane/dev/web/DB"),
        "services.api.secrets.DATABASE_PASSWORD.rotation.master_secret_arn",
        "the master secret is service web's secret: the rotation of api would read it. Fix: "
        "name the database's own master secret (for RDS, the `rds!...` secret it manages)."),
    "master-secret-other-account": (
        master("arn:aws:secretsmanager:eu-west-1:999999999999:secret:rds!cluster-x-Ab12Cd"),
        "services.api.secrets.DATABASE_PASSWORD.rotation.master_secret_arn",
        "the ARN belongs to another AWS account than this environment's (111111111111). Fix: "
        "reference a secret of this environment's account."),
    "service-named-like-eso": (
        lambda c: services(c).update({"external-secrets": {"app_schema": "worker",
                                                            "config": WORKER_CONFIG}}),
        "services.external-secrets",
        "`external-secrets` is a platform name (a namespace or service account of Kubernetes or "
        "of a platform component: the External Secrets Operator, cert-manager, Vault): the "
        "service's account and Vault roles would be mistaken for the component's. Fix: rename "
        "the service."),
    "namespace-of-eso": (
        lambda c: services(c)["web"].update(namespace="external-secrets"),
        "services.web.namespace", f"`external-secrets` {PLATFORM_NAMESPACE}"),
    "kube-system-namespace": (
        lambda c: services(c)["web"].update(namespace="kube-system"),
        "services.web.namespace", f"`kube-system` {PLATFORM_NAMESPACE}"),
    "mount-with-quote": (
        lambda c: platform(c)["vault"].update(mount='dev-kv" {}\npath "*'),
        "platform.vault.mount", f"platform.vault.mount {ONE_SEGMENT}"),
    "mount-with-glob": (
        lambda c: platform(c)["vault"].update(mount="dev-*"),
        "platform.vault.mount", f"platform.vault.mount {ONE_SEGMENT}"),
    "mount-traversal": (
        lambda c: platform(c)["vault"].update(mount="dev-kv/.."),
        "platform.vault.mount", f"platform.vault.mount {ONE_SEGMENT}"),
    "auth-path-with-newline": (
        lambda c: platform(c)["vault"].update(kubernetes_auth_path="kubernetes-dev\n"),
        "platform.vault.kubernetes_auth_path",
        "platform.vault.kubernetes_auth_path is not an RFC 1123 label (lowercase letters, digits "
        "and '-'; it becomes one segment of a Vault API path). Fix: rename it."),
    "service-name-trailing-newline": (
        lambda c: services(c).update({"web\n": {"app_schema": "worker",
                                                 "config": WORKER_CONFIG}}),
        # control characters are shown escaped in paths and messages
        "services.web\\n", "service name `web\\n` is not an RFC 1123 label"),
    "issuer-missing": (
        lambda c: platform(c)["aws"].pop("eks_oidc_issuer"),
        "platform.aws.eks_oidc_issuer",
        "service api keeps secrets in Secrets Manager, which its SecretStore reads through its "
        "own IAM role (IRSA); that needs the cluster's OIDC issuer. Fix: set "
        "platform.aws.eks_oidc_issuer (`aws eks describe-cluster --query "
        "cluster.identity.oidc.issuer`)."),
    "issuer-missing-without-rotation": (
        lambda c: (platform(c)["aws"].pop("eks_oidc_issuer"),
                   services(c)["api"]["secrets"]["DATABASE_PASSWORD"].pop("rotation"),
                   services(c)["api"]["secrets"]["DATABASE_PASSWORD"].pop("database")),
        "platform.aws.eks_oidc_issuer",
        "service api keeps secrets in Secrets Manager, which its SecretStore reads through its "
        "own IAM role (IRSA)"),
    "issuer-trailing-newline": (
        lambda c: platform(c)["aws"].update(
            eks_oidc_issuer=platform(c)["aws"]["eks_oidc_issuer"] + "\n"),
        "platform.aws.eks_oidc_issuer", "not an OIDC issuer URL"),
    "iam-role-name-too-long": (
        lambda c: services(c).update({"a" * 41: {"app_schema": "worker", "secrets": {"K": {
            "source": "generated", "store": "aws"}}, "config": WORKER_CONFIG}}),
        "services." + "a" * 41,
        f"the service's IAM role name `configplane-dev-{'a' * 41}-secrets` would be 65 "
        "characters; AWS allows 64. Fix: shorten the service name."),
    "rotation-function-name-too-long": (
        lambda c: services(c).update({"b" * 40: {"app_schema": "worker", "secrets": {"K": {
            "source": "generated", "store": "aws", "rotation": {"strategy": "random"}}},
            "config": WORKER_CONFIG}}),
        "services." + "b" * 40,
        f"the service's rotation function name `configplane-rotation-dev-{'b' * 40}` would be "
        "65 characters; AWS allows 64. Fix: shorten the service name."),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_isolation_error_is_reported_with_path_file_and_fix(project, case):
    change, path, text = CASES[case]
    edit_stack(project, "dev", change)
    code, report = run_validate(project)
    assert code == 1, report
    matching = [e for e in report["errors"] if e["path"] == path]
    assert matching, report["errors"]
    # services.<name>... now lives in services/<name>/dev.yaml; platform.* in Pulumi.dev.yaml
    assert matching[0]["file"] == catalog_file("Pulumi.dev.yaml", path, "dev")
    assert text in matching[0]["message"]
    assert "Fix:" in matching[0]["message"]


@pytest.mark.parametrize("ref", [
    "web/partner#token", "web/a/b.c_d-e#x.y",
])
def test_own_vault_refs_are_accepted(project, ref):
    edit_stack(project, "dev", add_ref("web", "vault", ref))
    assert run_validate(project) == (0, {"stack": "dev", "valid": True, "errors": []})


def test_own_secrets_manager_ref_is_accepted(project):
    edit_stack(project, "dev", add_ref("web", "aws", OWN_ARN))
    assert run_validate(project) == (0, {"stack": "dev", "valid": True, "errors": []})


def test_refused_values_are_not_echoed(project):
    canary = "Zq8vX3pL9wR2tY6uCanary"
    edit_stack(project, "dev", add_ref("web", "vault", f"web/../{canary}#x"))
    code, report = run_validate(project)
    assert code == 1 and canary not in json.dumps(report)
