"""Backups and replicas through the real pack process: the known-good prod plan passes; each
case changes one thing of it."""

from __future__ import annotations

import pytest

from configplane.offline import UNKNOWN
from tests.policies.builders import add, mutate, only, pack_module

BACKUPS = pack_module("backups")
BUCKET_POLICY = "backup-bucket-protected"
REPLICAS = "secrets-manager-replicas"
BUCKET = "backup-prod-bucket"
LABEL = f'Bucket "{BUCKET}"'
OBJECT_LOCK_30 = BACKUPS.WHY_FIX_OBJECT_LOCK.format(days="30")
SECRET = "api-aws-database-password"


def without(resources, name):
    assert any(r.name == name for r in resources), name
    return [r for r in resources if r.name != name]


def bucket_findings(pack, resources):
    return [(v[1], v[2], v[3]) for v in only(BUCKET_POLICY, pack.violations(resources))]


def test_the_sample_plan_passes(prod, good):
    names = {r.name for r in good}
    assert {BUCKET, "backup-prod-versioning", "backup-prod-encryption", "backup-prod-object-lock",
            "backup-prod-public-access-block", "backup-prod-kms-key"} <= names
    violations = prod.violations(good)
    assert only(BUCKET_POLICY, violations) == [] and only(REPLICAS, violations) == []


@pytest.mark.parametrize(("case", "change", "message"), [
    ("versioning suspended",
     lambda p: mutate(p, "backup-prod-versioning",
                      lambda i: i["versioningConfiguration"].update(status="Suspended")),
     f"{LABEL} is not versioned. {BACKUPS.WHY_FIX_VERSIONING}"),
    ("no versioning resource", lambda p: without(p, "backup-prod-versioning"),
     f"{LABEL} is not versioned. {BACKUPS.WHY_FIX_VERSIONING}"),
    ("AES256 instead of KMS",
     lambda p: mutate(p, "backup-prod-encryption", lambda i: i["rules"][0][
         "applyServerSideEncryptionByDefault"].update(sseAlgorithm="AES256")),
     f"{LABEL} is not encrypted with a customer-managed KMS key of this stack (aws:kms with a "
     f"key declared here). {BACKUPS.WHY_FIX_ENCRYPTION}"),
    ("the AWS-managed key",
     lambda p: mutate(p, "backup-prod-encryption", lambda i: i["rules"][0][
         "applyServerSideEncryptionByDefault"].update(kmsMasterKeyId="alias/aws/s3")),
     f"{LABEL} is not encrypted with a customer-managed KMS key of this stack (aws:kms with a "
     f"key declared here). {BACKUPS.WHY_FIX_ENCRYPTION}"),
    ("no encryption resource", lambda p: without(p, "backup-prod-encryption"),
     f"{LABEL} is not encrypted with a customer-managed KMS key of this stack (aws:kms with a "
     f"key declared here). {BACKUPS.WHY_FIX_ENCRYPTION}"),
    ("retention shorter than the environment's",
     lambda p: mutate(p, "backup-prod-object-lock",
                      lambda i: i["rule"]["defaultRetention"].update(days=7)),
     f"{LABEL} has object lock with a default retention of 7 days; this environment requires "
     f"at least 30 days. {OBJECT_LOCK_30}"),
    ("no object lock configuration", lambda p: without(p, "backup-prod-object-lock"),
     f"{LABEL} has no object lock; this environment requires at least 30 days. {OBJECT_LOCK_30}"),
    ("a bucket created without object lock",
     lambda p: mutate(p, BUCKET, lambda i: i.update(objectLockEnabled=False)),
     f"{LABEL} has object lock with a default retention of 35 days; this environment requires "
     f"at least 30 days. {OBJECT_LOCK_30}"),
    ("one public setting off",
     lambda p: mutate(p, "backup-prod-public-access-block",
                      lambda i: i.update(restrictPublicBuckets=False)),
     f"{LABEL} does not block all public access. {BACKUPS.WHY_FIX_PUBLIC}"),
    ("no public access block", lambda p: without(p, "backup-prod-public-access-block"),
     f"{LABEL} does not block all public access. {BACKUPS.WHY_FIX_PUBLIC}"),
])
def test_each_weakened_setting_fails_naming_the_bucket(prod, good, case, change, message):
    assert bucket_findings(prod, change(good)) == [(BUCKET, "mandatory", message)], case


def test_a_second_bucket_without_settings_fails_on_every_count(prod, good):
    plan = add(good, BUCKET, "scratch-bucket", lambda p: p.update(
        bucket="shop-prod-scratch", id="shop-prod-scratch", arn="arn:aws:s3:::shop-prod-scratch",
        objectLockEnabled=False))
    found = bucket_findings(prod, plan)
    assert [f[0] for f in found] == ["scratch-bucket"] * 4
    assert [f[2].split(". Why:")[0] for f in found] == [
        'Bucket "scratch-bucket" is not versioned',
        'Bucket "scratch-bucket" is not encrypted with a customer-managed KMS key of this '
        "stack (aws:kms with a key declared here)",
        'Bucket "scratch-bucket" has no object lock; this environment requires at least 30 days',
        'Bucket "scratch-bucket" does not block all public access']


def test_a_preview_follows_the_dependencies(prod, good):
    """In a preview the bucket's name and the key's ARN are unknown: settings are matched to
    the bucket, and the key to its encryption, by their dependencies."""
    plan = mutate(good, BUCKET, lambda p: p.update(bucket=UNKNOWN, id=UNKNOWN, arn=UNKNOWN))
    for name in ("backup-prod-versioning", "backup-prod-encryption", "backup-prod-object-lock",
                 "backup-prod-public-access-block"):
        plan = mutate(plan, name, lambda p: p.update(bucket=UNKNOWN))
    plan = mutate(plan, "backup-prod-encryption", lambda p: p["rules"][0][
        "applyServerSideEncryptionByDefault"].update(kmsMasterKeyId=UNKNOWN))
    assert bucket_findings(prod, plan) == []
    assert bucket_findings(prod, without(plan, "backup-prod-versioning")) == [
        (BUCKET, "mandatory", f"{LABEL} is not versioned. {BACKUPS.WHY_FIX_VERSIONING}")]


def test_a_reviewed_exception_waives_a_bucket(pack_for, good):
    config = {BUCKET_POLICY: {"minRetentionDays": 30, "exceptions": [
        {"resource": BUCKET, "ticket": "OPS-42", "expires": "2999-12-31",
         "reason": "migrating to a new bucket this quarter"}]}}
    plan = without(good, "backup-prod-versioning")
    assert only(BUCKET_POLICY, pack_for("prod", config).violations(plan)) == []


def test_every_secret_has_a_replica_where_prod_requires_one(prod, good):
    secrets = [r for r in good if r.type == "aws:secretsmanager/secret:Secret"]
    assert secrets
    for secret in secrets:
        assert [(r["region"], bool(r["kmsKeyId"])) for r in secret.inputs["replicas"]] == [
            ("eu-central-1", True)]


@pytest.mark.parametrize(("change", "message"), [
    (lambda i: i.pop("replicas"),
     f'Secret "{SECRET}" has no replica in eu-central-1. {BACKUPS.WHY_FIX_REPLICAS}'),
    (lambda i: i.update(replicas=[{"region": "us-east-1", "kmsKeyId": "k"}]),
     f'Secret "{SECRET}" has no replica in eu-central-1. {BACKUPS.WHY_FIX_REPLICAS}'),
    (lambda i: i["replicas"][0].pop("kmsKeyId"),
     f"Secret \"{SECRET}\"'s replica in eu-central-1 has no KMS key of its own. "
     f"{BACKUPS.WHY_FIX_REPLICA_KEY}"),
])
def test_a_secret_without_its_replica_fails(prod, good, change, message):
    found = only(REPLICAS, prod.violations(mutate(good, SECRET, change)))
    assert [(v[1], v[2], v[3]) for v in found] == [(SECRET, "mandatory", message)]


def test_environments_that_require_no_replicas_do_not_check(pack_for, good):
    plan = mutate(good, SECRET, lambda i: i.pop("replicas"))
    assert only(REPLICAS, pack_for("prod", "staging").violations(plan)) == []
