"""The real __main__.py under the Pulumi SDK's mocks, for every stack file in the repo."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from configplane.commands.plan import command as plan_command
from configplane.plan import PlanMocks, is_secret_wrapper, run_plan
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
    from configplane.stack import load_stack
    from configplane.stackfiles import read_stack_files

    model = load_stack(read_stack_files(REPO, stack))
    return run_plan(REPO, stack, mocks=CanaryMocks(model), secure_values=CANARIES)


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
    }
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
    assert {d["secretKey"] for d in external["spec"]["data"]} == {
        "DATABASE_PASSWORD", "SESSION_SIGNING_KEY"}

    rbac = resources["api-access-role"].inputs["rules"]
    assert rbac[1]["resourceNames"] == ["api-secrets"]
    assert rbac[0]["resourceNames"] == [cm.inputs["metadata"]["name"]]


def test_prod_has_customer_managed_key_with_rotation(planned):
    stack, plan = planned
    keys = [r for r in plan.resources if r.type == "aws:kms/key:Key"]
    if stack == "prod":
        assert len(keys) == 1 and keys[0].inputs["enableKeyRotation"] is True
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
    for resource in plan.resources:
        if resource.type == "random:index/randomPassword:RandomPassword":
            assert is_secret_wrapper(resource.outputs["result"])


def test_outputs_follow_the_contract_and_hold_no_secret(planned):
    _, plan = planned
    document = plan.to_json()
    schema = json.loads((REPO / "schemas" / "outputs.schema.json").read_text())
    jsonschema.validate(document["outputs"], schema)
    text = json.dumps(document)
    for canary in [*CANARIES.values(), GENERATED_CANARY]:
        assert canary not in text
    assert "[secret]" in text  # the stores' inputs are shown, redacted


def test_cli_plan_json_and_out_files(tmp_path: Path):
    out = tmp_path / "out"
    result = CliRunner().invoke(plan_command, ["--stack", "dev", "--project-dir", str(REPO),
                                               "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert set(document) == {"stack", "resources", "outputs", "violations", "summary"}
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

    value = pulumi.Output.unsecret(pulumi.Config("configplane").require_secret("apiDbPassword"))
    k8s.core.v1.ConfigMap("leaky", metadata={"name": "leaky"}, data={"PASSWORD": value})


main()
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
