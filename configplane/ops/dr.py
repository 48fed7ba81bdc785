"""The restore drill: restore a Vault raft snapshot into a scratch server and check, by
metadata only, that what the stack declares in Vault came back.

What is expected comes from the stack's offline plan: each planned `vault:*` resource of a
type below is one expectation (the API path that reads it back, and the planned fields to
compare). Types the drill does not read back are listed as unchecked, with why: they are
settings that `pulumi up` writes again from the plan, not data only the backup holds. No KV
secret data is ever read: a secret is checked through its metadata (current version live,
neither deleted nor destroyed), so no value can reach the report.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from configplane.ops.scratch_vault import DrillError, ScratchVault, read_snapshot, scratch_vault

MISSING = "missing"
DIFFERS = "differs"
AUDIT_TYPE = "vault:index/audit:Audit"


class Resource(Protocol):
    """What the drill needs of a planned resource (configplane.offline.PlannedResource)."""

    type: str
    name: str
    inputs: dict[str, Any]


@dataclass(frozen=True)
class Expectation:
    what: str  # "policy prod-api-read"
    resource: str  # the planned resource's name
    path: str  # the API path that reads it back
    want: Mapping[str, Any] = field(default_factory=dict)  # response field -> planned value
    check: str = "fields"  # how the response is judged (CHECKS)
    list_key: str = ""  # for listings (sys/mounts, sys/auth, sys/audit): the entry's key
    method: str = "GET"

    def as_dict(self) -> dict[str, Any]:
        return {"what": self.what, "resource": self.resource, "path": self.path}


@dataclass(frozen=True)
class Finding:
    expectation: Expectation
    problem: str  # MISSING | DIFFERS
    detail: str  # what differs (names of fields, never a secret value)

    def as_dict(self) -> dict[str, Any]:
        return {**self.expectation.as_dict(), "problem": self.problem, "detail": self.detail}


def _known(value: Any) -> bool:
    return value is not None and type(value).__name__ not in ("Unknown", "_Unknown")


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the engine's numbers are doubles
    return value


def _want(inputs: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    """Planned inputs (camelCase) -> the response fields Vault answers with (snake_case);
    values not known in a preview are left out."""
    return {field_name: _plain(inputs[key]) for key, field_name in fields.items()
            if key in inputs and _known(inputs[key])}


def _mount(r: Resource) -> Expectation:
    path = r.inputs["path"]
    want = _want(r.inputs, {"type": "type"})
    options = r.inputs.get("options")
    if isinstance(options, Mapping) and _known(options.get("version")):
        want["options.version"] = str(options["version"])
    return Expectation(f"secrets engine {path}/", r.name, "sys/mounts", want, "listed", f"{path}/")


def _auth(r: Resource) -> Expectation:
    path = r.inputs["path"]
    return Expectation(f"auth method {path}/", r.name, "sys/auth",
                       _want(r.inputs, {"type": "type"}), "listed", f"{path}/")


def _audit(r: Resource) -> Expectation:
    path = r.inputs["path"]
    return Expectation(f"audit device {path}/", r.name, "sys/audit",
                       _want(r.inputs, {"type": "type"}), "listed", f"{path}/")


def _policy(r: Resource) -> Expectation:
    name = r.inputs["name"]
    return Expectation(f"policy {name}", r.name, f"sys/policies/acl/{name}",
                       _want(r.inputs, {"policy": "policy"}), "policy")


def _kv_config(r: Resource) -> Expectation:
    mount = r.inputs["mount"]
    return Expectation(f"KV settings of {mount}/", r.name, f"{mount}/config",
                       _want(r.inputs, {"maxVersions": "max_versions",
                                        "casRequired": "cas_required"}))


def _kv_secret(r: Resource) -> Expectation:
    mount, name = r.inputs["mount"], r.inputs["name"]
    return Expectation(f"KV secret {mount}/{name} (its current version)", r.name,
                       f"{mount}/metadata/{name}", check="kv_live")


def _kubernetes_config(r: Resource) -> Expectation:
    backend = r.inputs["backend"]
    return Expectation(f"Kubernetes auth config of {backend}/", r.name, f"auth/{backend}/config",
                       _want(r.inputs, {"kubernetesHost": "kubernetes_host"}))


def _kubernetes_role(r: Resource) -> Expectation:
    backend, role = r.inputs["backend"], r.inputs["roleName"]
    return Expectation(f"Kubernetes auth role {backend}/{role}", r.name,
                       f"auth/{backend}/role/{role}",
                       _want(r.inputs, {"boundServiceAccountNames": "bound_service_account_names",
                                        "boundServiceAccountNamespaces":
                                            "bound_service_account_namespaces",
                                        "tokenPolicies": "token_policies"}))


def _jwt_role(r: Resource) -> Expectation:
    """A shard deployer's GitHub login (docs/fleet.md): who may log in, and to what."""
    backend, role = r.inputs["backend"], r.inputs["roleName"]
    return Expectation(f"JWT auth role {backend}/{role}", r.name, f"auth/{backend}/role/{role}",
                       _want(r.inputs, {"boundAudiences": "bound_audiences",
                                        "boundClaims": "bound_claims",
                                        "boundSubject": "bound_subject",
                                        "tokenPolicies": "token_policies"}))


def _pki_role(r: Resource) -> Expectation:
    backend, name = r.inputs["backend"], r.inputs["name"]
    return Expectation(f"PKI role {backend}/{name}", r.name, f"{backend}/roles/{name}",
                       _want(r.inputs, {"allowedDomains": "allowed_domains"}))


def _pki_issuer(r: Resource) -> Expectation:
    backend, name = r.inputs["backend"], r.inputs["issuerName"]
    return Expectation(f"PKI issuer {backend}/{name} (with its key)", r.name,
                       f"{backend}/issuer/{name}", check="has_key")


def _pki_key(r: Resource) -> Expectation:
    backend = r.inputs["backend"]
    return Expectation(f"PKI keys of {backend}/ (the intermediate CA's private key)", r.name,
                       f"{backend}/keys", check="listing", method="LIST")


def _database_connection(r: Resource) -> Expectation:
    backend, name = r.inputs["backend"], r.inputs["name"]
    return Expectation(f"database connection {backend}/{name} (its rotated root login)",
                       r.name, f"{backend}/config/{name}",
                       _want(r.inputs, {"allowedRoles": "allowed_roles",
                                        "pluginName": "plugin_name"}))


def _database_role(r: Resource) -> Expectation:
    backend, name = r.inputs["backend"], r.inputs["name"]
    return Expectation(f"database role {backend}/{name}", r.name, f"{backend}/roles/{name}",
                       _want(r.inputs, {"dbName": "db_name"}))


# planned type -> its expectation; types not here are reported as unchecked
EXPECTATIONS: dict[str, Callable[[Resource], Expectation]] = {
    "vault:index/mount:Mount": _mount,
    "vault:index/authBackend:AuthBackend": _auth,
    AUDIT_TYPE: _audit,
    "vault:index/policy:Policy": _policy,
    "vault:kv/secretBackendV2:SecretBackendV2": _kv_config,
    "vault:kv/secretV2:SecretV2": _kv_secret,
    "vault:kubernetes/authBackendConfig:AuthBackendConfig": _kubernetes_config,
    "vault:kubernetes/authBackendRole:AuthBackendRole": _kubernetes_role,
    "vault:jwt/authBackendRole:AuthBackendRole": _jwt_role,
    "vault:pkiSecret/secretBackendRole:SecretBackendRole": _pki_role,
    "vault:pkiSecret/secretBackendIssuer:SecretBackendIssuer": _pki_issuer,
    "vault:pkiSecret/secretBackendRootCert:SecretBackendRootCert": _pki_issuer,
    "vault:pkiSecret/secretBackendIntermediateCertRequest:SecretBackendIntermediateCertRequest":
        _pki_key,
    "vault:database/secretBackendConnection:SecretBackendConnection": _database_connection,
    "vault:database/secretBackendRole:SecretBackendRole": _database_role,
}
UNCHECKED_WHY = "a setting or an action `pulumi up` applies again from the plan"


@dataclass(frozen=True)
class Expected:
    checks: list[Expectation]
    unchecked: list[tuple[str, str]]  # (type, resource name) of vault:* resources not read back
    audit_files: list[str]  # file audit devices' paths: the restored server opens them


def expectations(resources: Iterable[Resource]) -> Expected:
    checks, unchecked, audit_files = [], [], []
    for r in sorted(resources, key=lambda r: (r.type, r.name)):
        if not r.type.startswith("vault:"):
            continue
        build = EXPECTATIONS.get(r.type)
        if build is None:
            unchecked.append((r.type, r.name))
            continue
        checks.append(build(r))
        options = r.inputs.get("options")
        if r.type == AUDIT_TYPE and isinstance(options, Mapping) \
                and isinstance(options.get("file_path"), str):
            audit_files.append(options["file_path"])
    return Expected(checks, unchecked, audit_files)


# --- judging what the restored server answers ---------------------------------------------


def _field(data: Mapping[str, Any], dotted: str) -> Any:
    value: Any = data
    for step in dotted.split("."):
        value = value.get(step) if isinstance(value, Mapping) else None
    return value


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, list):
        return isinstance(got, list) and sorted(map(str, got)) == sorted(map(str, want))
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want
    if isinstance(want, int | float) and isinstance(got, int | float):
        return math.isclose(got, want)
    if isinstance(want, int) and isinstance(got, str) and got.isdigit():
        return int(got) == want
    return got == want


def differing(data: Mapping[str, Any], want: Mapping[str, Any]) -> list[str]:
    """The names of the planned fields the server answers otherwise (never their values)."""
    return [name for name, value in want.items() if not _same(_field(data, name), value)]


def _policy_text(text: Any) -> str:
    return "\n".join(line.rstrip() for line in str(text or "").strip().splitlines())


def judge(expectation: Expectation, status: int, data: Mapping[str, Any]) -> Finding | None:
    """One expectation against the server's answer to its path."""
    e = expectation
    if e.check == "listed":
        entry = data.get(e.list_key) if status == 200 else None
        if not isinstance(entry, Mapping):
            return Finding(e, MISSING, f"no {e.list_key} in {e.path}")
        fields = differing(entry, e.want)
        return Finding(e, DIFFERS, ", ".join(fields) + " differ from the plan") if fields else None
    if status == 404 or (status == 200 and not data and e.check != "listing"):
        return Finding(e, MISSING, f"{e.path} is not there (HTTP {status})")
    if status != 200:
        return Finding(e, MISSING, f"{e.path} answered HTTP {status}")
    if e.check == "policy":
        if "policy" in e.want and _policy_text(data.get("policy")) != _policy_text(e.want["policy"]):
            return Finding(e, DIFFERS, "its rules differ from the plan")
        return None
    if e.check == "kv_live":
        current = data.get("current_version")
        listed = data.get("versions")
        versions: Mapping[str, Any] = listed if isinstance(listed, Mapping) else {}
        version = versions.get(str(current)) if isinstance(current, int) and current > 0 else None
        if not isinstance(version, Mapping):
            return Finding(e, MISSING, "no current version")
        if version.get("destroyed") or version.get("deletion_time"):
            return Finding(e, MISSING, f"version {current} is deleted or destroyed")
        return None
    if e.check == "has_key":
        return None if data.get("key_id") else Finding(e, MISSING, "the issuer has no key")
    if e.check == "listing":
        keys = data.get("keys")
        return None if isinstance(keys, list) and keys else Finding(e, MISSING, "no keys")
    fields = differing(data, e.want)
    return Finding(e, DIFFERS, ", ".join(fields) + " differ from the plan") if fields else None


def verify(vault: ScratchVault, checks: Sequence[Expectation]) -> list[Finding]:
    """Read each expectation's path once (listings are shared) and judge the answers."""
    answers: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    findings = []
    for e in checks:
        key = (e.method, e.path)
        if key not in answers:
            response = vault.request(e.method, e.path)
            answers[key] = (response.status, response.data)
        finding = judge(e, *answers[key])
        if finding is not None:
            findings.append(finding)
    return findings


# --- the drill ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DrillReport:
    snapshot: str
    taken_at: datetime
    recovery_point_seconds: float  # the snapshot's age when the drill ran
    restore_seconds: float  # scratch server start -> restored, unsealed, active
    verify_seconds: float
    checked: list[Expectation]
    findings: list[Finding]
    unchecked: list[tuple[str, str]]

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "taken_at": self.taken_at.isoformat(timespec="seconds"),
            "recovery_point_seconds": round(self.recovery_point_seconds),
            "restore_seconds": round(self.restore_seconds, 2),
            "verify_seconds": round(self.verify_seconds, 2),
            "ok": self.ok,
            "checked": len(self.checked),
            "findings": [f.as_dict() for f in self.findings],
            "unchecked": [{"type": t, "resource": n, "why": UNCHECKED_WHY}
                          for t, n in self.unchecked],
        }


def check_audit_paths(paths: Iterable[str]) -> None:
    """A restored file audit device is opened when the server unseals; OpenBao stays standby
    (never active) while it cannot. Say so before starting, naming the path."""
    for path in paths:
        if path in ("stdout", "discard", "/dev/stdout", "/dev/null"):
            continue
        folder = Path(path).parent
        if not (folder.is_dir() and _writable(folder)):
            raise DrillError(
                f"the snapshot's file audit device writes to {path}, and the restored server "
                f"cannot become active until it can open it ({folder} is not a writable "
                "directory here). Fix: run the drill where that directory exists and is "
                f"writable (a container with an empty volume at {folder}), never on a Vault "
                "server: the drill's own requests are appended to that file.")


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def run_drill(snapshot_path: Path, keys: Sequence[str], expected: Expected, *,
              binary: Path | None = None, timeout: float = 60.0,
              now: Callable[[], datetime] = lambda: datetime.now(UTC),
              clock: Callable[[], float] = time.monotonic) -> DrillReport:
    """Restore `snapshot_path` into a scratch server, unseal it with `keys` (a quorum of the
    source cluster's unseal keys), check `expected` and stop the server, whatever happens."""
    snapshot = read_snapshot(snapshot_path)
    check_audit_paths(expected.audit_files)
    started = clock()
    with scratch_vault(binary, timeout) as vault:
        vault.initialise()
        vault.restore(snapshot.path)
        vault.unseal(keys)
        vault.generate_root(keys)
        restored = clock()
        findings = verify(vault, expected.checks)
        verified = clock()
    return DrillReport(
        snapshot=str(snapshot_path), taken_at=snapshot.taken_at,
        recovery_point_seconds=snapshot.age_seconds(now()),
        restore_seconds=restored - started, verify_seconds=verified - restored,
        checked=list(expected.checks), findings=findings, unchecked=expected.unchecked)
