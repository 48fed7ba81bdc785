"""The real __main__.py under the Pulumi SDK's mocks, for every stack file in the repo."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from configplane import ownership
from configplane.cli.commands.plan import command as plan_command
from configplane.contract import HASH_ANNOTATION
from configplane.model import environment_topology
from configplane.offline import PlanMocks, run_plan
from configplane.redaction import is_secret_wrapper
from tests.conftest import REPO, STACKS

CANARIES = {
    "configplane:apiDbPassword": "canary-db-7f3K9qLx2Vw8",
    "configplane:paymentsApiKey": "canary-pay-R4t6Y8u0I2o4",
}
GENERATED_CANARY = "canary-gen-Mn5Bv7Cx9Za1"


class CanaryMocks(PlanMocks):
    def generated_value(self, name: str) -> str:
        return f"{GENERATED_CANARY}-{name}"


def canary_plan(stack: str):
    from configplane.inputs import read_stack_files
    from configplane.validation import load_stack

    model = load_stack(read_stack_files(REPO, stack))
    return run_plan(REPO, stack, one_stack=True, mocks=CanaryMocks(model), secure_values=CANARIES)


@pytest.fixture(scope="module", params=STACKS)
def planned(request):
    return request.param, canary_plan(request.param)


def by_name(plan):
    return {r.name: r for r in plan.resources}


def test_expected_resources_names_labels_and_parents(planned):
    stack, plan = planned
    resources = by_name(plan)
    env = stack

    cm = resources["api-config-config"]
    assert cm.type == "kubernetes:core/v1:ConfigMap"
    assert cm.inputs["immutable"] is True
    assert cm.inputs["metadata"]["name"].startswith("api-config-")
    assert cm.inputs["metadata"]["namespace"] == f"api-{env}"
    assert cm.inputs["metadata"]["labels"] == {
        "app.kubernetes.io/name": "api",
        "app.kubernetes.io/part-of": "shop",
        "app.kubernetes.io/managed-by": "configplane",
        "configplane.io/environment": env,
        "configplane.io/generation-of": "api-config",
        "configplane.io/config-hash": cm.inputs["metadata"]["annotations"]["configplane.io/config-hash"],
    }
    assert cm.inputs["metadata"]["name"] == "api-config-" + cm.inputs["metadata"]["labels"][
        "configplane.io/config-hash"]
    assert cm.inputs["metadata"]["annotations"]["reloader.stakater.com/match"] == "true"
    assert cm.parent == resources["api-config"].urn
    assert resources["api-config"].type == "configplane:config:ServiceConfig"

    for tenant in ("acme", "globex"):
        tenant_cm = resources[f"worker-config-tenant-{tenant}"]
        assert tenant_cm.inputs["metadata"]["name"].startswith(f"worker-{tenant}-config-")
    assert json.loads(resources["web-config-flags"].inputs["data"]["flags.flagd.json"])["flags"]

    mount = resources[f"vault-{env}-kv"]
    assert mount.inputs["path"] == f"{env}-kv"
    assert mount.inputs["options"] == {"version": "2"}
    assert resources[f"vault-{env}-audit"].inputs["type"] == "file"
    assert resources[f"vault-{env}-kubernetes-auth"].inputs["type"] == "kubernetes"

    policy = resources["api-vault-policy"].inputs["policy"]
    paths = sorted(line.split('"')[1] for line in policy.splitlines() if line.startswith("path"))
    assert paths == [f"{env}-kv/data/api", f"{env}-kv/data/api/*",
                     f"{env}-kv/metadata/api", f"{env}-kv/metadata/api/*"]
    assert policy.count('capabilities = ["read"]') == 4

    role = resources["api-vault-role"].inputs
    assert role["boundServiceAccountNames"] == ["api"]
    assert role["boundServiceAccountNamespaces"] == [f"api-{env}"]

    secret = resources["api-aws-database-password"].inputs
    assert secret["name"] == f"configplane/{env}/api/DATABASE_PASSWORD"
    assert ("kmsKeyId" in secret) == (env == "prod")

    external = resources["api-external-secret-external-secret"].inputs
    assert external["apiVersion"] == "external-secrets.io/v1"
    assert external["spec"]["target"]["name"] == "api-secrets"
    spec = external["spec"]
    assert spec["data"] == [{"secretKey": "SESSION_SIGNING_KEY",
                             "remoteRef": {"key": "api", "property": "SESSION_SIGNING_KEY"}}]
    # The database secret arrives whole, from one read of its current version.
    assert spec["dataFrom"] == [{
        "extract": {"key": f"configplane/{env}/api/DATABASE_PASSWORD"},
        "sourceRef": {"storeRef": {"kind": "SecretStore", "name": "api-aws-secretsmanager"}},
        "rewrite": [{"regexp": {"source": "^(.+)$", "target": "DATABASE_PASSWORD_$1"}}],
    }]
    template = spec["target"]["template"]
    assert (template["engineVersion"], template["mergePolicy"]) == ("v2", "Replace")
    assert template["data"] == {
        "DATABASE_HOST": "{{ .DATABASE_PASSWORD_host }}",
        "DATABASE_NAME": "{{ .DATABASE_PASSWORD_dbname }}",
        "DATABASE_PASSWORD": "{{ .DATABASE_PASSWORD_password }}",
        "DATABASE_PORT": "{{ .DATABASE_PASSWORD_port }}",
        "DATABASE_URL": "postgresql://{{ .DATABASE_PASSWORD_username | urlquery }}:"
                        "{{ .DATABASE_PASSWORD_password | urlquery }}@{{ .DATABASE_PASSWORD_host }}:"
                        "{{ .DATABASE_PASSWORD_port }}/{{ .DATABASE_PASSWORD_dbname | urlquery }}",
        "DATABASE_USER": "{{ .DATABASE_PASSWORD_username }}",
        "SESSION_SIGNING_KEY": "{{ .SESSION_SIGNING_KEY }}",
    }

    rbac = resources["api-access-role"].inputs["rules"]
    assert rbac[1]["resourceNames"] == ["api-secrets"]
    assert rbac[0]["resourceNames"] == [cm.inputs["metadata"]["name"]]


ISSUERS = {"dev": "0A1B2C3D4E5F60718293A4B5C6D7E8F9", "staging": "1B2C3D4E5F60718293A4B5C6D7E8F90A",
           "prod": "2C3D4E5F60718293A4B5C6D7E8F90A1B"}
ACCOUNTS = {"dev": "111111111111", "staging": "222222222222", "prod": "333333333333"}


def test_each_service_signs_in_as_itself(planned):
    """Namespaced SecretStores in the service's namespace, its own account and role; no
    ClusterSecretStore and no role for the operator itself."""
    stack, plan = planned
    env, resources = stack, by_name(plan)
    types = {r.type for r in plan.resources}
    assert "kubernetes:external-secrets.io/v1:ClusterSecretStore" not in types
    vault_roles = [r for r in plan.resources
                   if r.type == "vault:kubernetes/authBackendRole:AuthBackendRole"]
    platform = [r for r in vault_roles if "configplane:backup:BackupEnvironment" in r.urn]
    # the platform's own: prod's Vault snapshot CronJob, in its namespace, with its policy only
    assert [(r.inputs["roleName"], r.inputs["boundServiceAccountNamespaces"],
             r.inputs["tokenPolicies"]) for r in platform] == (
        [("vault-snapshot", ["vault-backup"], [f"{env}-vault-snapshot"])] if env == "prod" else [])
    # each shard deployer's login as its operator workspace (tests/program/test_deploy_rights.py)
    deployers = [r for r in vault_roles if "configplane:deploy:ShardDeployRights" in r.urn]
    assert sorted(r.inputs["roleName"] for r in deployers) == sorted(
        ownership.deploy_login_role(ownership.shard_stack_name(env, shard))
        for shard in environment_topology(REPO, env).shards())
    platform += deployers
    roles = sorted(r.inputs["roleName"] for r in vault_roles if r not in platform)
    # each service's Vault role, plus api's for its issuer (pki) and its database logins
    assert roles == ["api", "api-database", "api-pki", "web", "worker"]
    for r in vault_roles:
        if r not in platform:
            svc = r.inputs["roleName"].split("-")[0]
            assert r.inputs["boundServiceAccountNames"] == [svc]
            assert r.inputs["boundServiceAccountNamespaces"] == [f"{svc}-{env}"]
    stores = {r.name: r.inputs for r in plan.resources
              if r.type == "kubernetes:external-secrets.io/v1:SecretStore"}
    # a Vault store for each service with Vault secrets, an AWS store only for api
    assert sorted(stores) == ["api-secret-stores-aws", "api-secret-stores-vault",
                              "web-secret-stores-vault", "worker-secret-stores-vault"]
    for svc in ("api", "web", "worker"):
        store = stores[f"{svc}-secret-stores-vault"]
        assert store["metadata"]["namespace"] == f"{svc}-{env}"
        assert store["metadata"]["name"] == f"{svc}-vault"
        assert store["spec"] == {"provider": {"vault": {
            "server": f"https://vault.{env}.shop.internal:8200", "path": f"{env}-kv",
            "version": "v2", "auth": {"kubernetes": {
                "mountPath": f"kubernetes-{env}", "role": svc,
                "serviceAccountRef": {"name": svc, "audiences": ["vault"]}}}}}}
        role = resources[f"{svc}-vault-role"].inputs
        assert (role["boundServiceAccountNames"], role["boundServiceAccountNamespaces"],
                role["tokenPolicies"], role["audience"]) == (
            [svc], [f"{svc}-{env}"], [f"{env}-{svc}-read"], "vault")
        external = resources[f"{svc}-external-secret-external-secret"].inputs
        assert external["spec"]["secretStoreRef"] == {"kind": "SecretStore",
                                                      "name": f"{svc}-vault"}
    assert stores["api-secret-stores-aws"]["metadata"]["namespace"] == f"api-{env}"
    assert stores["api-secret-stores-aws"]["spec"] == {"provider": {"aws": {
        "service": "SecretsManager", "region": "eu-west-1",
        "auth": {"jwt": {"serviceAccountRef": {"name": "api"}}}}}}
    # the Vault entry reads through the default store; the database secret through the AWS one
    api_spec = resources["api-external-secret-external-secret"].inputs["spec"]
    assert [e.get("sourceRef") for e in api_spec["data"]] == [None]
    assert [e["sourceRef"] for e in api_spec["dataFrom"]] == [
        {"storeRef": {"kind": "SecretStore", "name": "api-aws-secretsmanager"}}]


def test_api_reads_secrets_manager_through_its_own_irsa_role(planned):
    stack, plan = planned
    env, resources = stack, by_name(plan)
    account = ACCOUNTS[env]
    host = f"oidc.eks.eu-west-1.amazonaws.com/id/{ISSUERS[env]}"
    role = resources["api-identity-role"]
    assert role.inputs["name"] == f"configplane-{env}-api-secrets"
    assert json.loads(role.inputs["assumeRolePolicy"]) == {"Version": "2012-10-17", "Statement": [{
        "Sid": "ServiceAccountWebIdentity", "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/{host}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{host}:sub": f"system:serviceaccount:api-{env}:api",
                                       f"{host}:aud": "sts.amazonaws.com"}}}]}
    secret_arn = resources["api-aws-database-password"].outputs["arn"]
    # granted by name with AWS's suffix wildcard: known before the secret exists
    granted = (f"arn:aws:secretsmanager:eu-west-1:{account}:secret:"
               f"configplane/{env}/api/DATABASE_PASSWORD-??????")
    assert re.fullmatch(granted.replace("?", "[A-Za-z0-9]"), secret_arn)
    read = resources["api-identity-policy"]
    assert json.loads(read.inputs["policy"]) == {"Version": "2012-10-17", "Statement": [{
        "Sid": "ReadOwnSecrets", "Effect": "Allow",
        "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
        "Resource": [granted]}]}
    assert read.property_dependencies["role"] == [role.urn]
    if env == "prod":  # the customer-managed key, only through Secrets Manager, only for api's
        key_arn = resources[f"aws-{env}-kms-key"].outputs["arn"]  # not a replica's or backup's
        decrypt = resources["api-identity-kms-policy"]
        assert json.loads(decrypt.inputs["policy"]) == {"Version": "2012-10-17", "Statement": [{
            "Sid": "DecryptOwnSecrets", "Effect": "Allow", "Action": "kms:Decrypt",
            "Resource": key_arn, "Condition": {
                "StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"},
                "StringLike": {"kms:EncryptionContext:SecretARN": [granted]}}}]}
        assert decrypt.property_dependencies["role"] == [role.urn]
    else:
        assert "api-identity-kms-policy" not in resources
    account_annotations = resources["api-access-service-account"].inputs["metadata"]["annotations"]
    assert account_annotations == {"eks.amazonaws.com/role-arn": role.outputs["arn"]}
    assert role.outputs["arn"] == f"arn:aws:iam::{account}:role/configplane-{env}-api-secrets"
    for svc in ("web", "worker"):  # no Secrets Manager secrets: no role, no annotation
        assert f"{svc}-identity-role" not in resources
        assert "annotations" not in resources[f"{svc}-access-service-account"].inputs["metadata"]
    outputs = plan.outputs["services"]
    assert outputs["api"]["iam_role_arn"] == role.outputs["arn"]
    assert outputs["api"]["secret_stores"] == {"vault": "api-vault",
                                               "aws": "api-aws-secretsmanager"}
    assert outputs["web"]["secret_stores"] == {"vault": "web-vault", "aws": None}
    assert outputs["web"]["iam_role_arn"] is None


def test_each_rotating_service_has_its_own_rotation_function(planned):
    stack, plan = planned
    functions = [r for r in plan.resources if r.type == "aws:lambda/function:Function"]
    assert [f.inputs["name"] for f in functions] == [f"configplane-rotation-{stack}-api"]
    assert functions[0].parent == by_name(plan)[f"rotation-{stack}-api"].urn
    policy = json.loads(by_name(plan)[f"rotation-{stack}-api-policy"].inputs["policy"])
    rotated = next(s for s in policy["Statement"] if s["Sid"] == "RotateSecrets")
    assert rotated["Resource"] == [by_name(plan)["api-aws-database-password"].outputs["arn"]]


def test_the_program_rotates_exactly_the_secrets_validate_checks(planned):
    """One rule (rotation_rules.rotated_secrets) decides which secrets rotate: the plan has a
    SecretRotation for each of them, named after its rotation name, and for nothing else."""
    from configplane.inputs import read_stack_files
    from configplane.model import rotated_secrets
    from configplane.validation import load_stack

    stack, plan = planned
    model = load_stack(read_stack_files(REPO, stack))
    expected = sorted(f"rotation-{stack}-{name}-rotation-{rotation_name}"
                      for name, svc in model.services.items()
                      for rotation_name in rotated_secrets(name, svc.spec.secrets).values())
    declared = sorted(r.name for r in plan.resources
                      if r.type == "aws:secretsmanager/secretRotation:SecretRotation")
    assert declared == expected == [f"rotation-{stack}-api-rotation-api-database-password"]


def test_prod_has_customer_managed_key_with_rotation(planned):
    stack, plan = planned
    keys = [r for r in plan.resources if r.type == "aws:kms/key:Key"]
    if stack == "prod":
        # the secrets' key, a key for their replicas in eu-central-1, the backup bucket's key
        assert sorted((r.name, r.inputs.get("region")) for r in keys) == [
            ("aws-prod-kms-key", None), ("aws-prod-kms-key-eu-central-1", "eu-central-1"),
            ("backup-prod-kms-key", "eu-central-1")]
        assert all(r.inputs["enableKeyRotation"] is True for r in keys)
    else:
        assert keys == []


def _walk(value, inside_secret=False):
    """Yield (string, inside_secret) for every string leaf."""
    if is_secret_wrapper(value):
        yield from _walk(value["value"], True)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _walk(v, inside_secret)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, inside_secret)
    elif isinstance(value, str):
        yield value, inside_secret


def test_every_secret_carrying_input_is_marked_secret(planned):
    _, plan = planned
    canaries = [*CANARIES.values(), GENERATED_CANARY]
    carried = 0
    for resource in plan.resources:
        if resource.type == "random:index/randomPassword:RandomPassword":
            continue  # the generator itself; its result output is secret (next test)
        for text, inside_secret in _walk(resource.inputs):
            if any(c in text for c in canaries):
                carried += 1
                assert inside_secret, f"{resource.urn} carries a secret value unmarked"
    assert carried >= 2  # the values really reached the stores, wrapped


def test_generated_values_are_secret_outputs(planned):
    _, plan = planned
    generators = [r for r in plan.resources if r.type == "random:index/randomPassword:RandomPassword"]
    assert generators  # the sample stacks generate values: the check below has something to see
    for resource in generators:
        assert is_secret_wrapper(resource.outputs["result"]), resource.urn


def test_outputs_follow_the_contract_and_hold_no_secret(planned):
    _, plan = planned
    document = plan.as_dict()
    schema = json.loads((REPO / "schemas" / "outputs.schema.json").read_text())
    jsonschema.validate(document["outputs"], schema)
    text = json.dumps(document)
    for canary in [*CANARIES.values(), GENERATED_CANARY]:
        assert canary not in text
    assert "[secret]" in text  # the stores' inputs are shown, redacted


def test_every_exported_name_is_the_name_of_a_planned_resource(planned):
    """The program exports the names it gave its resources as the model has them (plain
    values, not the resources' outputs): each one must name a resource of that kind, in the
    service's namespace, that the plan declares; the config hash is its ConfigMap's."""
    _, plan = planned
    # (Kubernetes kind or, for Vault, the type; namespace) -> the names declared
    declared: dict[tuple[str, str | None], set[str]] = {}
    for r in plan.resources:
        metadata = r.inputs.get("metadata") or {}
        kind = r.inputs.get("kind") or r.type
        if "name" in metadata:
            declared.setdefault((kind, metadata.get("namespace")), set()).add(metadata["name"])
        for key in ("name", "roleName"):  # Vault policies and auth roles
            if isinstance(r.inputs.get(key), str):
                declared.setdefault((r.type, None), set()).add(r.inputs[key])

    def names(kind: str, namespace: str | None = None) -> set[str]:
        return declared.get((kind, namespace), set())

    services = plan.outputs["services"]
    assert services  # the sample stacks export services: the checks below see something
    for service, out in services.items():
        ns = out["namespace"]
        assert ns in names("Namespace"), service
        assert out["service_account"] in names("ServiceAccount", ns)
        assert out["configmap"] in names("ConfigMap", ns)
        configmap = next(r for r in plan.resources if r.type == "kubernetes:core/v1:ConfigMap"
                         and r.inputs["metadata"]["name"] == out["configmap"])
        assert configmap.inputs["metadata"]["annotations"][HASH_ANNOTATION] == out["config_hash"]
        assert out["configmap"].endswith("-" + out["config_hash"])
        if out["flags_configmap"] is not None:
            assert out["flags_configmap"] in names("ConfigMap", ns)
        assert out["vault_policy"] in names("vault:index/policy:Policy")
        assert out["vault_role"] in names("vault:kubernetes/authBackendRole:AuthBackendRole")
        stores = [s for s in out["secret_stores"].values() if s is not None]
        assert stores and set(stores) <= names("SecretStore", ns), service
        external = [r for r in plan.resources if r.inputs.get("kind") == "ExternalSecret"
                    and r.inputs["metadata"]["namespace"] == ns]
        targets = {r.inputs["spec"]["target"]["name"] for r in external}
        assert out["secret_name"] in targets
        assert set(out["dynamic_secret_names"]) <= names("ExternalSecret", ns)
        if out["tls"] is not None:
            assert out["tls"]["issuer"] in names("Issuer", ns)
            certificates = [r for r in plan.resources if r.inputs.get("kind") == "Certificate"
                            and r.inputs["metadata"]["namespace"] == ns]
            assert out["tls"]["secret_name"] in {
                c.inputs["spec"]["secretName"] for c in certificates}


def test_cli_plan_json_and_out_files(tmp_path: Path):
    out = tmp_path / "out"
    result = CliRunner().invoke(plan_command, ["--stack", "dev", "--project-dir", str(REPO),
                                               "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    # "stacks": each stack of the split environment (docs/fleet.md)
    assert set(document) == {"stack", "resources", "outputs", "violations", "summary", "stacks"}
    assert document["summary"]["resources"] == len(document["resources"])
    assert sum(document["summary"]["by_type"].values()) == len(document["resources"])
    assert json.loads((out / "plan.json").read_text()) == document
    files = sorted(p.name for p in out.glob("*.yaml"))
    assert "configmap-api-dev-" + document["outputs"]["services"]["api"]["configmap"] + ".yaml" in files
    assert "externalsecret-api-dev-api.yaml" in files
    for path in out.iterdir():
        assert "[secret:" not in path.read_text()  # placeholders never printed either


def test_cli_plan_invalid_configuration_exits_1_with_validate_messages(project):
    path = project / "services" / "api" / "dev.yaml"
    path.write_text(path.read_text().replace("LOG_LEVEL: debug", "LOG_LEVEL: loud", 1))
    result = CliRunner().invoke(plan_command, ["--stack", "dev", "--project-dir", str(project),
                                               "--format", "json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["valid"] is False
    assert report["errors"][0]["path"] == "services.api.config.LOG_LEVEL"
    assert (report["errors"][0]["file"], report["errors"][0]["line"]) == (
        "services/api/dev.yaml", 2)


def test_plan_fails_when_a_secret_reaches_an_input_unmarked(project):
    main = project / "__main__.py"
    main.write_text(main.read_text().replace("\n\nmain()\n", '''


def leak() -> None:
    import pulumi_kubernetes as k8s

    value = pulumi.Output.unsecret(
        pulumi.Config("configplane").require_secret("shopVaultDbPassword"))
    k8s.core.v1.ConfigMap("leaky", metadata={"name": "leaky"}, data={"PASSWORD": value})


main()
if pulumi.get_stack() == "dev":  # the platform stack: the key is its own
    leak()
'''))
    result = CliRunner().invoke(plan_command, ["--stack", "dev", "--project-dir", str(project),
                                               "--format", "json", "--no-policy"])
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert document["violations"] == [{
        "policy": "configplane-secret-marking",
        "urn": "urn:pulumi:dev::configplane::kubernetes:core/v1:ConfigMap::leaky",
        "level": "mandatory",
        "message": "input `data.PASSWORD` of leaky carries a secret value that is not marked "
                   "secret, so it would be stored and shown in plaintext. Fix: wrap it with "
                   "pulumi.Output.secret() where the component builds it.",
    }]
