"""Backups and replicas that survive what they are for (docs/dr.md): every S3 bucket of the
stack is versioned, encrypted with a customer-managed KMS key declared in the stack, under
object lock for at least the environment's retention and closed to the public; and, where
the environment's policy config names replica regions, every Secrets Manager secret is
replicated to each of them with a KMS key of its own."""

from __future__ import annotations

from typing import Any

from packlib import UNKNOWN, Reporter, config_schema, for_types, num, plain, resource_label, whole_stack
from pulumi_policy import (
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from resource_types import (
    KMS_KEY,
    S3_BUCKET,
    S3_ENCRYPTION,
    S3_OBJECT_LOCK,
    S3_PUBLIC_ACCESS_BLOCK,
    S3_VERSIONING,
    SM_SECRET,
)

WHY_FIX_VERSIONING = (
    "Why: without versioning an overwrite or a delete loses the previous backup. Fix: declare "
    "an aws.s3.BucketVersioning with status Enabled for it (components/backup.py does).")
WHY_FIX_ENCRYPTION = (
    "Why: backups hold every secret of the environment; a customer-managed key's policy decides "
    "who can read them, and revoking it locks them all. Fix: declare an aws.s3."
    "BucketServerSideEncryptionConfiguration with sse_algorithm aws:kms and a KMS key of this "
    "stack.")
WHY_FIX_OBJECT_LOCK = (
    "Why: object lock keeps a backup from being deleted or overwritten, by an attacker with the "
    "account's credentials too, for its retention. Fix: create the bucket with "
    "object_lock_enabled and declare an aws.s3.BucketObjectLockConfiguration whose default "
    "retention is at least {days} days (platform.backup.retention_days).")
WHY_FIX_PUBLIC = (
    "Why: one public ACL or bucket policy would publish the backups. Fix: declare an aws.s3."
    "BucketPublicAccessBlock with all four settings true.")
WHY_FIX_REPLICAS = (
    "Why: this environment keeps its secrets readable when its region is lost. Fix: list the "
    "region in platform.aws.replica_regions in the stack file.")
WHY_FIX_REPLICA_KEY = (
    "Why: a replica without kmsKeyId is encrypted with the AWS-managed key of its region, "
    "which no key policy of yours governs. Fix: give the replica a customer-managed key of its "
    "region (the program does for platform.aws.replica_regions).")

PUBLIC_BLOCKS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                 "restrictPublicBuckets")


def _ids(resource: Any) -> set[str]:
    props = plain(resource.props)
    return {v for v in (props.get("id"), props.get("bucket"), props.get("arn"),
                        props.get("keyId")) if isinstance(v, str) and v}


def _settings_of(bucket: Any, resources: list[Any]) -> list[Any]:
    """The resources that configure `bucket`: by its name or, in a preview where the name is
    not known yet, by their dependency on it."""
    names = _ids(bucket)
    out = []
    for r in resources:
        target = plain(r.props).get("bucket")
        deps = {*r.dependencies, *r.property_dependencies.get("bucket", [])}
        if (isinstance(target, str) and target in names) or any(d.urn == bucket.urn for d in deps):
            out.append(r)
    return out


def _key_of(config: Any, keys: list[Any]) -> tuple[Any, Any]:
    """(the KMS key reference of an encryption configuration, the stack's key it names)."""
    props = plain(config.props)
    for rule in props.get("rules") or []:
        default = rule.get("applyServerSideEncryptionByDefault") if isinstance(rule, dict) else None
        if not isinstance(default, dict) or default.get("sseAlgorithm") not in ("aws:kms",
                                                                                 "aws:kms:dsse"):
            continue
        ref = default.get("kmsMasterKeyId")
        deps = config.property_dependencies.get("rules", []) + list(config.dependencies)
        if ref is UNKNOWN:
            return ref, next((k for k in keys if any(d.urn == k.urn for d in deps)), None)
        return ref, next((k for k in keys if isinstance(ref, str) and ref in _ids(k)), None)
    return None, None


def backup_buckets(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("backup-bucket-protected", cfg, report_violation)
    minimum = cfg["minRetentionDays"]
    kinds = {t: kind for kind in (S3_BUCKET, S3_VERSIONING, S3_ENCRYPTION, S3_OBJECT_LOCK,
                                  S3_PUBLIC_ACCESS_BLOCK, (KMS_KEY,)) for t in kind}
    by_type: dict[tuple[str, ...], list[Any]] = {}
    for r in args.resources:
        if r.resource_type in kinds:
            by_type.setdefault(kinds[r.resource_type], []).append(r)
    for bucket in by_type.get(S3_BUCKET, []):
        label = resource_label(bucket.resource_type, bucket.name)

        def settings(kind: tuple[str, ...], bucket: Any = bucket) -> list[dict]:
            return [plain(r.props) for r in _settings_of(bucket, by_type.get(kind, []))]

        def fail(message: str, bucket: Any = bucket) -> None:
            report(bucket.name, message, bucket.urn)

        if not any((v.get("versioningConfiguration") or {}).get("status") == "Enabled"
                   for v in settings(S3_VERSIONING)):
            fail(f"{label} is not versioned. {WHY_FIX_VERSIONING}")
        configs = _settings_of(bucket, by_type.get(S3_ENCRYPTION, []))
        keys = [_key_of(c, by_type.get((KMS_KEY,), [])) for c in configs]
        if not any(ref is not None and (key is not None or ref is UNKNOWN) for ref, key in keys):
            fail(f"{label} is not encrypted with a customer-managed KMS key of this stack "
                 f"(aws:kms with a key declared here). {WHY_FIX_ENCRYPTION}")
        locks = settings(S3_OBJECT_LOCK)
        retention = max((_retention_days(lock) for lock in locks), default=0)
        if plain(bucket.props).get("objectLockEnabled") is not True or retention < minimum:
            held = (f"a default retention of {num(retention)} days" if retention
                    else "no default retention")
            fail(f"{label} has {'object lock with ' + held if locks else 'no object lock'}; this "
                 f"environment requires at least {num(minimum)} days. "
                 f"{WHY_FIX_OBJECT_LOCK.format(days=num(minimum))}")
        blocks = settings(S3_PUBLIC_ACCESS_BLOCK)
        if not any(all(b.get(k) is True for k in PUBLIC_BLOCKS) for b in blocks):
            fail(f"{label} does not block all public access. {WHY_FIX_PUBLIC}")


def _retention_days(lock: dict) -> float:
    if lock.get("objectLockEnabled") != "Enabled":
        return 0
    retention = (lock.get("rule") or {}).get("defaultRetention") or {}
    days = retention.get("days") or 0
    years = retention.get("years") or 0
    if not isinstance(days, int | float) or not isinstance(years, int | float):
        return 0
    return days + 365 * years


@for_types(SM_SECRET)
def secret_replicas(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    required = list(cfg["requiredReplicaRegions"])
    if not required:
        return
    report = Reporter("secrets-manager-replicas", cfg, report_violation)
    label = resource_label(args.resource_type, args.name)
    replicas = [r for r in plain(args.props).get("replicas") or [] if isinstance(r, dict)]
    by_region = {r.get("region"): r for r in replicas}
    for region in required:
        replica = by_region.get(region)
        if replica is None:
            report(args.name, f"{label} has no replica in {region}. {WHY_FIX_REPLICAS}")
        elif not replica.get("kmsKeyId"):
            report(args.name, f"{label}'s replica in {region} has no KMS key of its own. "
                   f"{WHY_FIX_REPLICA_KEY}")


POLICIES = [
    StackValidationPolicy(
        name="backup-bucket-protected",
        description="Every S3 bucket (the backups) is versioned, encrypted with a customer-"
                    "managed KMS key of the stack, object-locked for the environment's "
                    "retention and closed to the public.",
        validate=whole_stack(backup_buckets),
        config_schema=config_schema({
            "minRetentionDays": {"type": "integer", "minimum": 1, "default": 7},
        }, waivable=True),
    ),
    ResourceValidationPolicy(
        name="secrets-manager-replicas",
        description="Secrets Manager secrets are replicated, each replica with its own KMS key, "
                    "to every region the environment requires.",
        validate=secret_replicas,
        config_schema=config_schema({
            "requiredReplicaRegions": {"type": "array", "items": {"type": "string"},
                                       "uniqueItems": True, "default": []},
        }, waivable=True),
    ),
]
