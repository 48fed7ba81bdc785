"""configplane's CrossGuard policy pack.

Run it with the Pulumi CLI (`pulumi preview --policy-pack policies --policy-pack-config
policies/config/<env>.json`) or offline (`configplane plan --stack <env>`). Each policy is a
plain validator function; thresholds come from its config schema, per environment from
policies/config/<env>.json. Messages name the resource, say what is wrong and why, and how
to fix it; they never echo a value that could be a secret.

A policy sees secrets as plaintext and cannot tell whether a value was marked secret
(pulumi_policy drops the marker), so plaintext secrets are caught by content (detector
below), by structure (ExternalSecret, rotation, KMS) and by the program's own tests.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from certificates import POLICIES as CERTIFICATE_POLICIES
from credentials_lib import is_owned_policy
from dynamic_credentials import POLICIES as DYNAMIC_CREDENTIAL_POLICIES
from flags_live import POLICIES as FLAGS_POLICIES
from flags_live import is_flags_configmap, vendored_registry
from isolation import POLICIES as ISOLATION_POLICIES
from packlib import (
    UNKNOWN,
    WORKLOADS,
    PolicyParseError,
    Reporter,
    as_list,
    config_schema,
    container_env,
    environment,
    get,
    iam_statements,
    kustomize_hash,
    parse_vault_policy,
    plain,
    resource_label,
    strings,
)
from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from secret_detector import scan

PACK_DIR = Path(__file__).resolve().parent
SCHEMAS_DIR = PACK_DIR / "schemas"  # a symlink to the project's schemas/ (one source of truth)

CONFIGMAP = "kubernetes:core/v1:ConfigMap"
K8S_SECRETS = ("kubernetes:core/v1:Secret", "kubernetes:core/v1:SecretPatch")
LAMBDA_FUNCTION = "aws:lambda/function:Function"
LAMBDA_PERMISSION = "aws:lambda/permission:Permission"
SM_SECRET = "aws:secretsmanager/secret:Secret"
SM_ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"
KMS_KEY = "aws:kms/key:Key"
KMS_ALIAS = "aws:kms/alias:Alias"
IAM_ROLE = "aws:iam/role:Role"
IAM_POLICIES = ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy",
                "aws:iam/userPolicy:UserPolicy", "aws:iam/groupPolicy:GroupPolicy")
IAM_ATTACHMENTS = ("aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                   "aws:iam/policyAttachment:PolicyAttachment")
VAULT_POLICY = "vault:index/policy:Policy"
VAULT_K8S_ROLE = "vault:kubernetes/authBackendRole:AuthBackendRole"
VAULT_MOUNT = "vault:index/mount:Mount"
VAULT_AUDIT = "vault:index/audit:Audit"
STACK = "pulumi:pulumi:Stack"

ROTATION_TAG = "configplane:rotation-strategy"  # the tag the rotation Lambda reads, too
SCHEMA_ANNOTATION = "configplane.io/schema"
SCHEMA_NAME = re.compile(r"^(services/[a-z0-9]([-a-z0-9]*[a-z0-9])?|flags)$")
FLAGS_KEY = "flags.flagd.json"
DNS_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ACCOUNT_ID = "^[0-9]{12}$"

ENVIRONMENT_PROPERTY = {
    "type": "string", "pattern": DNS_LABEL,
    "description": "The stack's environment; default: the stack name.",
}


@lru_cache(maxsize=4096)
def _secret_rules(key: str, value: str) -> tuple[str, ...]:
    found = scan(key, value)
    return tuple(found.rules) if found.secret else ()


def _config_value_findings(where: str, key: str, value: Any) -> list[tuple[str, tuple[str, ...]]]:
    """Secret-looking parts of one configuration value: the value itself, and the leaves of a
    JSON document or the `key=value` / `key: value` lines of a config file held in it."""
    if not isinstance(value, str):
        return []
    found = []
    text = value.strip()
    nested: list[tuple[str, str, str]] = []
    if text[:1] in "{[":
        try:
            nested = [(f"{where}: {path}", k or key, v) for path, k, v in strings(json.loads(text))]
        except json.JSONDecodeError:
            pass
    elif "\n" in text:
        for number, line in enumerate(text.splitlines(), 1):
            m = re.match(r"^\s*(?:export\s+)?([A-Za-z0-9_.-]+)\s*[=:]\s*(.+?)\s*$", line)
            if m:
                nested.append((f"{where} line {number}", m.group(1), m.group(2).strip("\"'")))
    for nested_where, k, v in nested:
        rules = _secret_rules(k, v)
        if rules:
            found.append((nested_where, rules))
    if not found:  # the parts name the place more precisely; else judge the value whole
        rules = _secret_rules(key, value)
        if rules:
            found.append((where, rules))
    return found


def _decoded(value: Any) -> str | None:
    try:
        return base64.b64decode(str(value), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _num(value: Any) -> str:
    """A number as people write it (protobuf turns config integers into floats)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


# --- no-plaintext-secret-in-config -------------------------------------------------------------


def no_plaintext_secret_in_config(args: ResourceValidationArgs,
                                  report_violation: ReportViolation) -> None:
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    findings: list[tuple[str, tuple[str, ...]]] = []
    if args.resource_type == CONFIGMAP:
        for key, value in sorted((props.get("data") or {}).items()):
            findings += _config_value_findings(f"data.{key}", key, value)
        for key, value in sorted((props.get("binaryData") or {}).items()):
            findings += _config_value_findings(f"binaryData.{key}", key, _decoded(value))
        why = ("ConfigMap data is readable by anyone who may read the namespace's ConfigMaps "
               "and is kept in plain text in Pulumi state")
        fix = ("move the value to the service's `secrets:` in the stack file (source secure, "
               "generated or reference) so it reaches the pod through its ExternalSecret")
    elif args.resource_type in WORKLOADS:
        for container, var, value in container_env(args.resource_type, props):
            findings += _config_value_findings(f"container {container} env {var}", var, value)
        why = "env literals are part of the pod spec: readable by every reader of the workload"
        fix = ("reference a Secret key instead (`valueFrom.secretKeyRef`) filled by the "
               "service's ExternalSecret")
    elif args.resource_type == LAMBDA_FUNCTION:
        variables = get(props, "environment", "variables", default={}) or {}
        for var, value in sorted(variables.items()) if isinstance(variables, dict) else ():
            findings += _config_value_findings(f"environment variable {var}", var, value)
        why = ("Lambda environment variables are shown to anyone with lambda:GetFunction and "
               "kept in plain text in Pulumi state")
        fix = "pass the secret's ARN and read the value from Secrets Manager at run time"
    else:
        return
    for where, rules in findings:
        report_violation(
            f"{label}: {where} holds what looks like a credential ({', '.join(rules)}). "
            f"Why: {why}. Fix: {fix}, then rotate the exposed value. If the value is not a "
            "secret, write it so it is plainly a reference or placeholder (e.g. ${VAR}).")


# --- no-secret-in-stack-outputs -----------------------------------------------------------------


def no_secret_in_stack_outputs(args: StackValidationArgs,
                               report_violation: ReportViolation) -> None:
    for resource in args.resources:
        if resource.resource_type != STACK:
            continue
        for path, key, value in strings(plain(resource.props)):
            rules = _secret_rules(key, value)
            if rules:
                report_violation(
                    f"stack output {path} holds what looks like a credential "
                    f"({', '.join(rules)}). Why: stack outputs are read by other stacks, CI "
                    "logs and anyone with stack access. Fix: export the secret's name, path or "
                    "ARN instead of its value, then rotate the exposed value.", resource.urn)


# --- kubernetes-secret-from-external-store -------------------------------------------------------


def kubernetes_secret_from_external_store(args: ResourceValidationArgs,
                                          report_violation: ReportViolation) -> None:
    if args.resource_type not in K8S_SECRETS or not args.get_config()["requireExternalSecrets"]:
        return
    props = plain(args.props)
    literal = []
    for field in ("data", "stringData"):
        value = props.get(field)
        if value is UNKNOWN:
            literal.append(f"{field} (computed)")
        elif isinstance(value, dict) and value:
            literal.append(f"{field} keys {', '.join(sorted(value))}")
    if literal:
        report_violation(
            f"{resource_label(args.resource_type, args.name)} carries literal "
            f"{' and '.join(literal)}. Why: in this environment secrets must arrive through an "
            "ExternalSecret; literal Secret data is stored in Pulumi state and in the "
            "program's inputs. Fix: keep the value in Vault or Secrets Manager (the service's "
            "`secrets:` in the stack file) and let the service's ExternalSecret create this "
            "Secret.")


# --- secrets-manager-rotation ---------------------------------------------------------------------


_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON = re.compile(r"^cron\((.+)\)$")


def rotation_interval_days(rules: dict) -> float | None:
    """The longest time between two rotations a rotation_rules block allows, in days (None if
    it cannot be told)."""
    days = rules.get("automaticallyAfterDays")
    if isinstance(days, int | float) and days > 0:
        return float(days)
    expression = str(rules.get("scheduleExpression") or "").strip()
    m = _RATE.match(expression)
    if m:
        unit = m.group(2).rstrip("s")
        return int(m.group(1)) / {"minute": 1440, "hour": 24, "day": 1}[unit]
    m = _CRON.match(expression)
    if m:
        fields = m.group(1).split()
        if len(fields) != 6:
            return None
        day_of_month, month, day_of_week = fields[2], fields[3], fields[4]
        if month not in ("*", "?"):
            return 365.0  # only in some months: up to a year apart
        if day_of_month in ("*", "?") and day_of_week in ("*", "?"):
            return 1.0
        if day_of_month in ("*", "?"):
            return 7.0
        return 31.0
    return None


def _ids(resource: Any) -> set[str]:
    props = plain(resource.props)
    return {v for v in (props.get("arn"), props.get("id"), props.get("keyId"), props.get("name"))
            if isinstance(v, str) and v}


def _depends_on(resource: Any, target: Any, prop: str) -> bool:
    deps = list(resource.dependencies) + list(resource.property_dependencies.get(prop, []))
    return any(d.urn == target.urn for d in deps)


def secrets_manager_rotation(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("secrets-manager-rotation", cfg, report_violation)
    max_days = float(cfg["maxRotationDays"])
    by_type: dict[str, list[Any]] = {}
    for r in args.resources:
        by_type.setdefault(r.resource_type, []).append(r)
    keys = by_type.get(KMS_KEY, [])
    aliases = {plain(a.props).get("name"): plain(a.props).get("targetKeyId")
               for a in by_type.get(KMS_ALIAS, [])}

    # Rotations indexed once by the secret they name (by id, or by dependency in preview):
    # matching each secret against every rotation grew with the square of the fleet.
    by_secret_id: dict[Any, list[int]] = {}
    by_dependency: dict[str, list[int]] = {}
    all_rotations = by_type.get(SM_ROTATION, [])
    for n, r in enumerate(all_rotations):
        secret_id = plain(r.props).get("secretId")
        if isinstance(secret_id, str):
            by_secret_id.setdefault(secret_id, []).append(n)
        for d in {*r.dependencies, *r.property_dependencies.get("secretId", [])}:
            by_dependency.setdefault(d.urn, []).append(n)

    for secret in by_type.get(SM_SECRET, []):
        props = plain(secret.props)
        label = resource_label(secret.resource_type, secret.name)
        tags = props.get("tags") if isinstance(props.get("tags"), dict) else {}
        strategy = tags.get(ROTATION_TAG)
        matches = {n for i in _ids(secret) for n in by_secret_id.get(i, ())}
        matches.update(by_dependency.get(secret.urn, ()))
        rotations = [all_rotations[n] for n in sorted(matches)]
        if strategy and not rotations:
            report(secret.name, f"{label} asks for rotation (tag {ROTATION_TAG}={strategy}) but "
                   "no SecretRotation targets it. Why: a credential that never rotates stays "
                   "valid for as long as it is leaked. Fix: declare an "
                   "aws.secretsmanager.SecretRotation for it (the rotation component does this "
                   "for every secret with `rotation:` in the stack file).", secret.urn)
        for rotation in rotations:
            _check_rotation(rotation, label, max_days, by_type, report)
        _check_encryption(secret, props, label, cfg, keys, aliases, report)


def _check_rotation(rotation: Any, secret_label: str, max_days: float,
                    by_type: dict[str, list[Any]], report: Reporter) -> None:
    props = plain(rotation.props)
    label = resource_label(rotation.resource_type, rotation.name)
    rules = props.get("rotationRules") if isinstance(props.get("rotationRules"), dict) else {}
    interval = rotation_interval_days(rules)
    if props.get("rotationRules") is UNKNOWN or UNKNOWN in rules.values():
        pass  # preview: the schedule is computed; checked again during `pulumi up`
    elif interval is None:
        report(rotation.name, f"{label} (for {secret_label}) has no rotation schedule this pack "
               "can read. Why: without automaticallyAfterDays or a rate()/cron() "
               "scheduleExpression the secret does not rotate on a schedule. Fix: set "
               f"platform.rotation.schedule_days to at most {_num(max_days)} in the stack file.",
               rotation.urn)
    elif interval is not None and interval > max_days:
        report(rotation.name, f"{label} rotates {secret_label} every {_num(interval)} days; "
               f"this environment allows at most {_num(max_days)}. Why: the longer a "
               "credential lives, the longer a leaked copy works. Fix: set "
               f"platform.rotation.schedule_days to {_num(max_days)} or less in the stack "
               "file.", rotation.urn)
    if not props.get("rotationLambdaArn"):
        report(rotation.name, f"{label} (for {secret_label}) names no rotation Lambda "
               "(rotationLambdaArn). Why: Secrets Manager cannot rotate without one. Fix: point "
               "it at the environment's rotation function.", rotation.urn)
    permissions = by_type.get(LAMBDA_PERMISSION, [])
    if not any(_depends_on(rotation, p, "") for p in permissions):
        report(rotation.name, f"{label} (for {secret_label}) does not depend on a "
               "lambda.Permission for secretsmanager.amazonaws.com. Why: the first rotation "
               "starts as soon as the rotation is created and fails if Secrets Manager may not "
               "invoke the function yet. Fix: add depends_on=[permission].", rotation.urn)


def _check_encryption(secret: Any, props: dict, label: str, cfg: Any, keys: list[Any],
                      aliases: dict, report: Reporter) -> None:
    window = props.get("recoveryWindowInDays", 30)  # AWS's default when unset
    minimum = cfg["minRecoveryWindowDays"]
    if isinstance(window, int | float) and window < minimum:
        report(secret.name, f"{label} has a recovery window of {_num(window)} days; this "
               f"environment requires at least {_num(minimum)}. Why: a deleted secret can be "
               "restored only within its recovery window. Fix: set "
               f"platform.aws.recovery_window_in_days to {_num(minimum)} or more.", secret.urn)
    if not cfg["requireCustomerManagedKey"]:
        return
    key_ref = props.get("kmsKeyId")
    if key_ref is UNKNOWN:  # preview: the key is created in this run; follow the dependency
        key = next((k for k in keys if _depends_on(secret, k, "kmsKeyId")), None)
    elif not key_ref:
        report(secret.name, f"{label} is encrypted with the AWS-managed key (no kmsKeyId). "
               "Why: this environment requires a customer-managed KMS key with rotation, so "
               "access is governed by a key policy and can be revoked. Fix: set "
               "platform.aws.customer_managed_kms_key: true in the stack file.", secret.urn)
        return
    else:
        ref = aliases.get(key_ref, key_ref)
        key = next((k for k in keys if ref in _ids(k)), None)
        if key is None:
            report(secret.name, f"{label} uses a KMS key that is not declared in this stack, "
                   "so its rotation cannot be verified. Why: this environment requires a "
                   "customer-managed key with automatic rotation. Fix: use the environment's "
                   "key (platform.aws.customer_managed_kms_key: true).", secret.urn)
            return
    if key is not None and plain(key.props).get("enableKeyRotation") is not True:
        report(secret.name, f"{label} uses {resource_label(key.resource_type, key.name)}, "
               "whose automatic rotation is off. Why: this environment requires key rotation. "
               "Fix: set enable_key_rotation=True on the key.", secret.urn)


# --- vault-least-privilege ------------------------------------------------------------------------

READ_CAPABILITIES = {"read", "list", "deny"}
KV_SUBPATHS = {"data", "metadata", "delete", "undelete", "destroy", "subkeys", "config"}


def _has_glob(segment: str) -> bool:
    return "*" in segment or "+" in segment


def _root_wildcard(path: str) -> bool:
    segments = path.split("/")
    if _has_glob(segments[0]) or (len(segments) > 1 and _has_glob(segments[1])):
        return True
    return len(segments) > 2 and segments[1] in KV_SUBPATHS and _has_glob(segments[2])


def _own_path(path: str, mount_prefix: str, service: str) -> bool:
    segments = path.split("/")
    return (len(segments) >= 3 and segments[0].startswith(mount_prefix)
            and not _has_glob(segments[0]) and segments[1] in ("data", "metadata")
            and segments[2] == service and not any(_has_glob(s) for s in segments[3:-1]))


def vault_least_privilege(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("vault-least-privilege", cfg, report_violation)
    env = environment(cfg)
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    if args.resource_type == VAULT_K8S_ROLE:
        _check_vault_role(args.name, label, props, cfg, report)
        return
    if args.resource_type != VAULT_POLICY or props.get("policy") is UNKNOWN:
        return
    name = props.get("name")
    if is_owned_policy(name, env):  # sign/creds policies: pki- and database-creds-least-privilege
        return
    try:
        rules = parse_vault_policy(str(props.get("policy") or ""))
    except PolicyParseError as e:
        report(args.name, f"{label}: the policy text cannot be checked: {e}. Why: an unreadable "
               "policy cannot be shown to grant least privilege. Fix: write it as HCL `path` "
               "blocks with `capabilities` lists.", waivable=False)
        return
    service = None
    if name not in (cfg.get("platformPolicies") or []):
        m = re.match(rf"^{re.escape(env)}-(?P<svc>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-read$",
                     str(name or ""))
        if not m:
            report(args.name, f"{label}: the policy name does not follow "
                   f"`{env}-<service>-read`. Why: every Vault policy of this stack is a service's "
                   "read policy unless listed in the policy config's platformPolicies. Fix: "
                   f"name it `{env}-<service>-read` or add it to platformPolicies after review.")
        else:
            service = m.group("svc")
    mount_prefix = f"{env}-"
    for path, caps in rules:
        where = f'{label}: path "{path}"'
        if "sudo" in caps:
            report(args.name, f"{where} grants sudo. Why: sudo opens root-protected endpoints "
                   "(policies, auth, audit) to the token. Fix: remove sudo; operators use "
                   "their own short-lived tokens.", waivable=False)
        if _root_wildcard(path):
            report(args.name, f"{where} puts a wildcard at the mount's root. Why: it reaches "
                   "every secret of the mount, including other services'. Fix: name the "
                   "service's own path (`<mount>/data/<service>/*`).", waivable=False)
        segments = path.split("/")
        if len(segments) > 1 and segments[1] in KV_SUBPATHS and not path.startswith(mount_prefix):
            report(args.name, f"{where} is a KV path outside this environment's mounts "
                   f"(`{env}-...`). Why: each environment keeps its secrets in its own mount. "
                   f"Fix: use this environment's mount (`{env}-kv`).")
        if service is None:
            continue
        if not _own_path(path, mount_prefix, service):
            report(args.name, f"{where} is not the service's own KV path. Why: a service "
                   f"policy may read only `<mount>/data/{service}` and "
                   f"`<mount>/metadata/{service}` (and below). Fix: remove the rule, or keep "
                   f"the value under `{service}/` in Vault.")
        writes = sorted(set(caps) - READ_CAPABILITIES - {"sudo"})
        if writes:
            report(args.name, f"{where} grants {', '.join(writes)}. Why: service policies "
                   "only read; values are written by configplane (write-only) or runbooks. "
                   'Fix: use capabilities = ["read"].')


def _check_vault_role(name: str, label: str, props: dict, cfg: Any, report: Reporter) -> None:
    for field in ("boundServiceAccountNames", "boundServiceAccountNamespaces"):
        values = props.get(field)
        if values is UNKNOWN:
            continue
        if not values or "*" in values:
            report(name, f"{label}: {field} is empty or `*`. Why: any service account (in any "
                   "namespace) could then log in with this role and read its secrets. Fix: "
                   "bind the role to the service's own account and namespace.", waivable=False)
    policies = props.get("tokenPolicies")
    if isinstance(policies, list) and "root" in policies:
        report(name, f"{label}: tokenPolicies includes root. Why: root can do anything in "
               "Vault. Fix: attach only the service's read policy.", waivable=False)
    ttl = props.get("tokenTtl")
    limit = cfg["maxTokenTtlSeconds"]
    if ttl is UNKNOWN:
        return
    if not ttl or ttl > limit:
        shown = f"{_num(ttl)} s" if ttl else "not set (Vault's default: 32 days)"
        report(name, f"{label}: tokenTtl is {shown}; at most {_num(limit)} s allowed. Why: "
               "a stolen token works until it expires. Fix: set token_ttl to "
               f"{_num(limit)} or less.")


# --- vault-audit-enabled --------------------------------------------------------------------------


def vault_audit_enabled(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    audits = [r for r in args.resources if r.resource_type == VAULT_AUDIT]
    for mount in (r for r in args.resources if r.resource_type == VAULT_MOUNT):
        if not audits:
            report_violation(
                f"{resource_label(mount.resource_type, mount.name)} holds secrets but the "
                "stack declares no vault.Audit device. Why: without an audit log nobody can "
                "tell who read a secret. Fix: declare vault.Audit (the VaultEnvironment "
                "component does) with a file or socket device.", mount.urn)


# --- configmap-hygiene ----------------------------------------------------------------------------


def configmap_hygiene(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != CONFIGMAP:
        return
    cfg = args.get_config()
    report = Reporter("configmap-hygiene", cfg, report_violation)
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    live = is_flags_configmap(props)  # flags-configmap-live: stable name, mutable
    if props.get("immutable") is not True and not live:
        report(args.name, f"{label} is not immutable. Why: a mutable ConfigMap changes under "
               "running pods and cannot be rolled back by name. Fix: set immutable: true and "
               "give each content a new hashed name.")
    if props.get("metadata") is UNKNOWN:
        return  # preview: name and labels are computed; checked again during `pulumi up`
    data = props.get("data") or {}
    binary = props.get("binaryData") or {}
    name = get(props, "metadata", "name")
    if live:
        pass
    elif UNKNOWN in (data, binary, name) or UNKNOWN in data.values() or UNKNOWN in binary.values():
        pass  # the hash needs every value: checked again during `pulumi up`
    elif not isinstance(name, str) or not name:
        report(args.name, f"{label} has no metadata.name. Why: Pulumi would append a random "
               "suffix, not the content hash, so the name would not change with the content. "
               "Fix: name it `<base>-<kustomize hash of the data>`.")
    else:
        expected = kustomize_hash(data, binary)
        if not name.endswith(f"-{expected}"):
            report(args.name, f'{label}: its name "{name}" does not end with the content hash '
                   f'"-{expected}". Why: immutable ConfigMaps roll forward by name; a stale '
                   "suffix means changed data under an old name. Fix: derive the name from the "
                   "data (kustomize's hash, as configplane's renderer does).")
    if data is not UNKNOWN and binary is not UNKNOWN:
        size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in data.items())
        size += sum(len(str(k).encode()) + len(_decoded(v) or str(v)) for k, v in binary.items())
        limit = cfg["maxSizeBytes"]
        if size > limit:
            report(args.name, f"{label} holds {size} bytes of data; at most {_num(limit)} "
                   "allowed. Why: Kubernetes rejects objects over 1 MiB and large ConfigMaps "
                   "slow every watcher. Fix: move large content out of configuration.")
    labels = get(props, "metadata", "labels", default={}) or {}
    if labels is not UNKNOWN:
        missing = [k for k in cfg["requiredLabels"] if not labels.get(k)]
        if missing:
            report(args.name, f"{label} lacks the label(s) {', '.join(missing)}. Why: they say "
                   "which service, system and environment own it and that configplane manages "
                   "it. Fix: add them (ServicePlan.labels).")


# --- configmap-schema -----------------------------------------------------------------------------


SECRET_KEYS = "x-configplane-secret-keys"  # configplane.delivery.SCHEMA_SECRET_KEYS (pinned)


@cache
def _schema_validator(name: str) -> Any:
    schema = json.loads((SCHEMAS_DIR / f"{name}.schema.json").read_text())
    # Keys an app schema takes from secrets reach the pod from its Secret, not the ConfigMap.
    secret_keys = set(schema.get(SECRET_KEYS, []))
    if secret_keys and "required" in schema:
        schema["required"] = [k for k in schema["required"] if k not in secret_keys]
    cls = jsonschema.validators.validator_for(schema)
    # flags.schema.json is a $ref to flagd's own schema, vendored under schemas/vendor
    return cls(schema, format_checker=cls.FORMAT_CHECKER, registry=vendored_registry())


def _schema_error(error: jsonschema.ValidationError, prefix: str) -> str:
    """Where and what, never the offending value (it could be a pasted secret)."""
    path = ".".join(str(p) for p in error.absolute_path)
    where = f"{prefix}.{path}" if path else prefix
    kind = error.validator
    if "propertyNames" in error.absolute_schema_path:  # the instance is a key: safe to name
        return f"{where}: key {json.dumps(error.instance)}: {kind} " \
               f"{json.dumps(error.validator_value)} not satisfied"
    if kind == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"{where}: unknown key(s) {', '.join(extra)}"
    if kind == "required":
        return f"{where}: {error.message}"
    if kind in ("type", "enum", "const", "pattern", "format", "minimum", "maximum",
                "minLength", "maxLength", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{where}: {kind} {json.dumps(error.validator_value)} not satisfied"
    return f"{where}: {kind} not satisfied"


def _typed(data: dict[str, str], validator: Any) -> dict[str, Any]:
    """ConfigMap strings back to the typed values the renderer wrote (8080, true, [..]) where
    the schema wants them typed."""
    instance: dict[str, Any] = dict(data)
    for key, text in data.items():
        try:
            parsed = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            continue
        if isinstance(parsed, str):
            continue

        def errors_at(candidate: dict[str, Any], key: str = key) -> list[str]:
            return [e.validator for e in validator.iter_errors(candidate)
                    if list(e.absolute_path)[:1] == [key]]

        # typed when the schema rejects the string and accepts the type (maybe not the value)
        if errors_at(instance) and "type" not in errors_at({**instance, key: parsed}):
            instance[key] = parsed
    return instance


def configmap_schema(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != CONFIGMAP:
        return
    report = Reporter("configmap-schema", args.get_config(), report_violation)
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    schema = get(props, "metadata", "annotations", SCHEMA_ANNOTATION)
    available = ", ".join(["flags"] + sorted(
        f"services/{p.name.removesuffix('.schema.json')}"
        for p in (SCHEMAS_DIR / "services").glob("*.schema.json")))
    if schema is UNKNOWN:
        return
    if not schema:
        report(args.name, f"{label} names no schema (annotation {SCHEMA_ANNOTATION}). Why: "
               "its data cannot be validated. Fix: annotate it with the service's app schema, "
               f"one of: {available}.")
        return
    if not SCHEMA_NAME.match(str(schema)) or not (SCHEMAS_DIR / f"{schema}.schema.json").is_file():
        report(args.name, f'{label} names the unknown schema "{schema}". Fix: use one of: '
               f"{available} (or add schemas/{schema}.schema.json).")
        return
    data = props.get("data") or {}
    if data is UNKNOWN or UNKNOWN in data.values():
        return
    validator = _schema_validator(str(schema))
    if schema == "flags":
        problems = _flags_problems(data, validator)
    else:
        problems = [_schema_error(e, "data") for e in validator.iter_errors(_typed(data, validator))]
        problems += [f"data.{key}: comes from the service's Secret, never its ConfigMap"
                     for key in sorted(set(data) & set(validator.schema.get(SECRET_KEYS, [])))]
    if problems:
        report(args.name, f"{label} does not satisfy schema {schema}: {'; '.join(sorted(problems))}. "
               "Why: the service would start with configuration it does not understand. Fix: "
               "correct the service's config in the stack file (`configplane validate` shows "
               "the file and key).")


def _deepest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """flagd's schemas nest anyOf deeply: report the branch error that got furthest in."""
    best, stack = error, [error]
    while stack:
        node = stack.pop()
        if len(node.absolute_path) > len(best.absolute_path):
            best = node
        stack.extend(reversed(node.context or []))
    return best


def _flags_problems(data: dict[str, str], validator: Any) -> list[str]:
    extra = sorted(set(data) - {FLAGS_KEY})
    problems = [f"data: unexpected key(s) {', '.join(extra)}"] if extra else []
    if FLAGS_KEY not in data:
        return problems + [f"data: missing key {FLAGS_KEY}"]
    try:
        document = json.loads(data[FLAGS_KEY])
    except json.JSONDecodeError as e:
        return problems + [f"data.{FLAGS_KEY}: not valid JSON (line {e.lineno})"]
    problems += [_schema_error(_deepest(e), f"data.{FLAGS_KEY}") + " (flagd's schema)"
                 for e in validator.iter_errors(document)]
    flags = document.get("flags") if isinstance(document, dict) else None
    for flag, spec in (flags or {}).items() if isinstance(flags, dict) else ():
        if isinstance(spec, dict) and isinstance(spec.get("variants"), dict) \
                and spec.get("defaultVariant") not in spec["variants"]:
            problems.append(f"data.{FLAGS_KEY}.flags.{flag}.defaultVariant: names no variant")
    return problems


# --- environment-isolation ------------------------------------------------------------------------

FREE_TEXT = {"description"}  # prose may mention other environments
_DEVICE_PATH = re.compile(r"(?<![\w.-])/dev/")  # /dev/stdout is not the dev environment
# The last label of a dotted name is a top-level domain or a file extension (flagd.dev,
# audit.log), not an environment; environments appear as names or inner labels.
_LAST_LABEL = re.compile(r"(?<=[a-z0-9])\.[a-z]{2,}(?=$|[/:?#\s\"',;)\]}])")


def environment_isolation(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("environment-isolation", cfg, report_violation)
    env = environment(cfg)
    others = {e for e in cfg["environments"] if e != env}
    accounts = {a: e for e, a in (cfg.get("accountIds") or {}).items() if e != env}
    label = resource_label(args.resource_type, args.name)
    for path, key, value in strings(plain(args.props)):
        if key in FREE_TEXT or key.endswith("Wo"):  # write-only inputs hold secret values
            continue
        lowered = _DEVICE_PATH.sub("/", value.lower())
        words = set(re.findall(r"[a-z0-9]+", _LAST_LABEL.sub(" ", lowered)))
        named = sorted(others & words) + sorted({accounts[w] for w in words if w in accounts})
        for other in dict.fromkeys(named):
            report(args.name, f"{label}: {path} names environment {other} (its namespace, "
                   f"Vault mount, account or ARN); this stack is {env}. Why: one environment's "
                   "resources must not reach another's secrets or workloads. Fix: use this "
                   f"environment's names (the program derives them from platform.environment).")


# --- rotation-lambda-hardening --------------------------------------------------------------------


def rotation_lambda_hardening(args: ResourceValidationArgs,
                              report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("rotation-lambda-hardening", cfg, report_violation)
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    if args.resource_type == LAMBDA_FUNCTION:
        allowed = list(cfg["allowedRuntimes"])
        runtime = props.get("runtime")
        if runtime is not UNKNOWN and runtime not in allowed:
            shown = f'runtime "{runtime}"' if runtime else "no runtime (a container image?)"
            report(args.name, f"{label} has {shown}; allowed: {', '.join(allowed)}. Why: "
                   "other runtimes are deprecated or unreviewed and stop getting security "
                   "patches. Fix: set runtime to one of the allowed.")
        timeout = props.get("timeout")
        limit = cfg["maxTimeoutSeconds"]
        if isinstance(timeout, int | float) and timeout > limit:
            report(args.name, f"{label} has a timeout of {_num(timeout)} s; at most "
                   f"{_num(limit)} s allowed. Why: a hung rotation holds a database "
                   "connection and delays the retry. Fix: lower timeout.")
        variables = get(props, "environment", "variables", default={}) or {}
        secret_vars = sorted(
            var for var, value in (variables.items() if isinstance(variables, dict) else ())
            if _config_value_findings(var, var, value))
        if secret_vars:
            report(args.name, f"{label}: environment variable(s) {', '.join(secret_vars)} look "
                   "like credentials. Why: a rotation function must read secrets from Secrets "
                   "Manager, never carry them. Fix: pass ARNs, not values, and rotate the "
                   "exposed ones.", waivable=False)
    elif args.resource_type == LAMBDA_PERMISSION:
        principal = props.get("principal")
        if principal is UNKNOWN:
            return
        account = cfg.get("accountId")
        if principal == "*":
            report(args.name, f"{label} lets any principal invoke the function. Fix: name the "
                   "service principal (secretsmanager.amazonaws.com) and source_account.",
                   waivable=False)
        elif principal == "secretsmanager.amazonaws.com":
            source = props.get("sourceAccount")
            if source is UNKNOWN:
                pass
            elif not source:
                report(args.name, f"{label} lets Secrets Manager invoke the function without "
                       "source_account. Why: any account's Secrets Manager could then call it "
                       "(the confused-deputy problem). Fix: set source_account to this "
                       "environment's account id.")
            elif account and source != account:
                report(args.name, f"{label}: source_account {source} is not this "
                       f"environment's account {account}. Fix: use {account}.")
        elif str(principal).endswith(".amazonaws.com") and not (
                props.get("sourceAccount") or props.get("sourceArn")):
            report(args.name, f"{label} lets {principal} invoke the function without "
                   "source_account or source_arn (confused deputy). Fix: set one of them.")
        action = props.get("action")
        if action and action not in (UNKNOWN, "lambda:InvokeFunction"):
            report(args.name, f'{label} grants action "{action}". Why: a permission for a '
                   "service should allow invoking the function and nothing else. Fix: use "
                   "lambda:InvokeFunction.")


# --- iam-least-privilege --------------------------------------------------------------------------

RESOURCE_LESS = {"secretsmanager:getrandompassword"}  # AWS supports only "*" for these
BROAD_MANAGED = {"AdministratorAccess", "PowerUserAccess", "IAMFullAccess",
                 "SecretsManagerReadWrite", "AWSKeyManagementServicePowerUser"}


def iam_least_privilege(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    report = Reporter("iam-least-privilege", args.get_config(), report_violation)
    documents: list[tuple[str, Any, bool]] = []  # (where, document, is trust policy)
    if args.resource_type in IAM_POLICIES:
        documents.append(("policy", props.get("policy"), False))
    elif args.resource_type == IAM_ROLE:
        documents.append(("assumeRolePolicy", props.get("assumeRolePolicy"), True))
        for i, inline in enumerate(props.get("inlinePolicies") or []):
            if isinstance(inline, dict):
                documents.append((f"inlinePolicies[{i}]", inline.get("policy"), False))
        for arn in props.get("managedPolicyArns") or []:
            _check_managed(args.name, label, arn, report)
    elif args.resource_type in IAM_ATTACHMENTS:
        _check_managed(args.name, label, props.get("policyArn"), report)
    for where, document, trust in documents:
        try:
            statements = iam_statements(document)
        except PolicyParseError as e:
            report(args.name, f"{label}: {where} cannot be checked: {e}. Fix: give a JSON "
                   "policy document with a Statement list.")
            continue
        for n, statement in enumerate(statements or []):
            for problem in (_trust_problems if trust else _statement_problems)(statement):
                report(args.name, f"{label}: {where} statement {n}: {problem}")


def _check_managed(name: str, label: str, arn: Any, report: Reporter) -> None:
    if isinstance(arn, str) and arn.rsplit("/", 1)[-1] in BROAD_MANAGED \
            and arn.startswith("arn:aws:iam::aws:policy/"):
        report(name, f"{label} attaches the AWS-managed policy {arn.rsplit('/', 1)[-1]}. Why: "
               "it grants far more than any configplane function needs. Fix: attach a policy "
               "that names the secrets and keys used.")


def _statement_problems(statement: dict) -> list[str]:
    if statement.get("Effect") != "Allow":
        return []
    if "NotAction" in statement or "NotResource" in statement:
        return ["Allow with NotAction/NotResource grants everything not listed. Fix: list the "
                "actions and resources granted."]
    problems = []
    actions = [str(a) for a in as_list(statement.get("Action"))]
    resources = [str(r) for r in as_list(statement.get("Resource"))]
    wild = [a for a in actions if a == "*" or a.endswith(":*")]
    if wild:
        problems.append(f"wildcard action(s) {', '.join(wild)}. Why: they grant every current "
                        "and future action of the service. Fix: list the actions needed.")
    if "*" in resources:
        secret_actions = sorted(a for a in actions if a.lower().startswith("secretsmanager:")
                                and a.lower() not in RESOURCE_LESS)
        if secret_actions:
            problems.append(f"{', '.join(secret_actions)} on every secret (Resource \"*\"). Why: "
                            "the function could read or change any secret of the account. Fix: "
                            "name the secrets' ARNs.")
        kms = sorted(a for a in actions if a.lower().startswith("kms:"))
        if kms and not statement.get("Condition"):
            problems.append(f"{', '.join(kms)} on every key without a Condition. Why: the "
                            "function could decrypt anything encrypted with any key it may use. "
                            "Fix: name the key, or add a condition such as "
                            "kms:EncryptionContext:SecretARN.")
        if "iam:passrole" in (a.lower() for a in actions):
            problems.append("iam:PassRole on every role. Why: it lets the holder hand any role "
                            "to a service it controls. Fix: name the role's ARN.")
    return problems


def _trust_problems(statement: dict) -> list[str]:
    if statement.get("Effect") != "Allow":
        return []
    principal = statement.get("Principal")
    aws = principal.get("AWS") if isinstance(principal, dict) else principal
    if principal == "*" or "*" in as_list(aws):
        return ["anyone may assume the role (Principal \"*\"). Fix: name the service principal "
                "(lambda.amazonaws.com)."]
    return []


# --- the pack -------------------------------------------------------------------------------------


_schema = config_schema  # the one builder of policy config schemas (packlib)


MANDATORY = EnforcementLevel.MANDATORY

PolicyPack(
    name="configplane",
    enforcement_level=MANDATORY,
    policies=[
        ResourceValidationPolicy(
            name="no-plaintext-secret-in-config",
            description="No secret-looking value in ConfigMap data, container env literals, "
                        "Lambda environment variables or flag definitions.",
            validate=no_plaintext_secret_in_config,
            config_schema=_schema(),
        ),
        StackValidationPolicy(
            name="no-secret-in-stack-outputs",
            description="Stack outputs carry names, paths and ARNs, never secret values.",
            validate=no_secret_in_stack_outputs,
            config_schema=_schema(),
        ),
        ResourceValidationPolicy(
            name="kubernetes-secret-from-external-store",
            description="Kubernetes Secrets come from an ExternalSecret, not literal data.",
            validate=kubernetes_secret_from_external_store,
            config_schema=_schema({"requireExternalSecrets": {"type": "boolean", "default": True}}),
        ),
        StackValidationPolicy(
            name="secrets-manager-rotation",
            description="Secrets that ask for rotation rotate within the environment's maximum "
                        "interval; encryption and recovery window meet the environment's rules.",
            validate=secrets_manager_rotation,
            config_schema=_schema({
                "maxRotationDays": {"type": "integer", "minimum": 1, "default": 30},
                "requireCustomerManagedKey": {"type": "boolean", "default": True},
                "minRecoveryWindowDays": {"type": "integer", "minimum": 0, "maximum": 30,
                                          "default": 7},
            }, waivable=True),
        ),
        ResourceValidationPolicy(
            name="vault-least-privilege",
            description="Vault policies and roles grant a service read access to its own "
                        "secrets in its own environment, nothing more.",
            validate=vault_least_privilege,
            config_schema=_schema({
                "environment": ENVIRONMENT_PROPERTY,
                "platformPolicies": {"type": "array", "items": {"type": "string"}, "default": []},
                "maxTokenTtlSeconds": {"type": "integer", "minimum": 60, "default": 3600},
            }, waivable=True),
        ),
        StackValidationPolicy(
            name="vault-audit-enabled",
            description="A stack that keeps secrets in Vault declares an audit device.",
            validate=vault_audit_enabled,
            config_schema=_schema(),
        ),
        ResourceValidationPolicy(
            name="configmap-hygiene",
            description="ConfigMaps are immutable, named by their content hash, within size "
                        "and carry the required labels.",
            validate=configmap_hygiene,
            config_schema=_schema({
                "maxSizeBytes": {"type": "integer", "minimum": 1, "maximum": 1048576,
                                 "default": 1048576},
                "requiredLabels": {"type": "array", "items": {"type": "string"}, "default": [
                    "app.kubernetes.io/name", "app.kubernetes.io/part-of",
                    "app.kubernetes.io/managed-by", "configplane.io/environment"]},
            }, waivable=True),
        ),
        ResourceValidationPolicy(
            name="configmap-schema",
            description="ConfigMap data is valid against the schema the ConfigMap names.",
            validate=configmap_schema,
            config_schema=_schema(waivable=True),
        ),
        ResourceValidationPolicy(
            name="environment-isolation",
            description="No resource names another environment's namespace, Vault mount, "
                        "account or ARN.",
            validate=environment_isolation,
            config_schema=_schema({
                "environment": ENVIRONMENT_PROPERTY,
                "environments": {"type": "array", "items": {"type": "string", "pattern": DNS_LABEL},
                                 "default": ["dev", "staging", "prod"]},
                "accountIds": {"type": "object", "default": {},
                               "additionalProperties": {"type": "string", "pattern": ACCOUNT_ID}},
            }, waivable=True),
        ),
        ResourceValidationPolicy(
            name="rotation-lambda-hardening",
            description="Lambda functions use an allowed runtime and a bounded timeout, carry "
                        "no secret, and only Secrets Manager of this account may invoke them.",
            validate=rotation_lambda_hardening,
            config_schema=_schema({
                "allowedRuntimes": {"type": "array", "items": {"type": "string"},
                                    "default": ["python3.12", "python3.13"]},
                "maxTimeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 900,
                                      "default": 300},
                "accountId": {"type": "string", "pattern": ACCOUNT_ID},
            }, waivable=True),
        ),
        ResourceValidationPolicy(
            name="iam-least-privilege",
            description="IAM policies name the secrets and keys they grant; no wildcard "
                        "actions, no public trust.",
            validate=iam_least_privilege,
            config_schema=_schema(waivable=True),
        ),
        *ISOLATION_POLICIES,
        *CERTIFICATE_POLICIES,
        *DYNAMIC_CREDENTIAL_POLICIES,
    ] + FLAGS_POLICIES,
)
