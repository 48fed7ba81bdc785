"""Every command that writes leaves the project as it was, or changed in full, whatever fails
mid-write: a file-size limit (RLIMIT_FSIZE, what a full disk does to one write) at each point
of the change, a read-only directory, concurrent writers. And no writer reaches outside the
project: not through a legacy service's name, a dangling link or a directory name.

The commands run as processes (`python -m configplane`), as users run them; the writer's own
tests (tests/test_projectfiles.py) kill it at each step of a change."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.catalog_compat import to_legacy
from tests.conftest import REPO
from tests.projects import copy_project
from tests.test_projectfiles import UNPRIVILEGED, tree

# a complete worker (import writes only what validate accepts) with two secrets
DOTENV = ("LOG_LEVEL=info\nQUEUE_URL=https://sqs.eu-west-1.amazonaws.com/123456789012/q\nCONCURRENCY=4\nRATE_LIMIT_RPS=10\n"
          "PAYMENTS_API_BASE_URL=https://payments.example.com\nSTRIPE_API_KEY=sk_live_"
          + "Cn4ryStr1peAbCdEfGh1234\nWEBHOOK_SIGNING_SECRET=whsec_" + "Cn4ryW3bh00kAbCdEfGhIjKl\n")


# The limit is set by the child itself, not by a preexec_fn: that would fork this process
# (which holds gRPC from the plan tests) and run gRPC's fork handlers in the child.
LIMITED = ("import resource, runpy, sys; n = int(sys.argv.pop(1)); "
           "resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
           "runpy.run_module('configplane', run_name='__main__', alter_sys=True)")


def configplane(*args: str, fsize: int | None = None, prefix: tuple[str, ...] = ()
                ) -> subprocess.CompletedProcess:
    start = ["-m", "configplane"] if fsize is None else ["-c", LIMITED, str(fsize)]
    return subprocess.run([*prefix, sys.executable, *start, *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO),
                               "PYTHONDONTWRITEBYTECODE": "1"})


def clean(run: subprocess.CompletedProcess) -> None:
    assert run.returncode in (0, 1), run.stderr[-2000:]
    assert "Traceback" not in run.stderr + run.stdout


@pytest.fixture
def dotenv(tmp_path: Path) -> Path:
    path = tmp_path / "inputs" / "billing.env"
    path.parent.mkdir()
    path.write_text(DOTENV)
    return path


def import_args(project: Path, dotenv: Path, service: str = "billing") -> tuple[str, ...]:
    return ("import", service, "--stack", "dev", "--from", str(dotenv), "--app-schema",
            "worker", "--owner", "@shop/billing", "--project-dir", str(project), "--write")


def all_or_nothing(run_with_limit, project: Path, limits: list[int]) -> None:
    """At each limit the command fails cleanly leaving the project as it was, or succeeds
    leaving it exactly as an unlimited run does; both outcomes happen across the limits."""
    before = tree(project)
    outcomes = set()
    for limit in limits:
        run = run_with_limit(limit)
        clean(run)
        after = tree(project)
        if run.returncode == 1:
            assert after == before, (limit, run.stderr)
            assert "nothing was changed" in run.stderr, run.stderr
            outcomes.add("refused")
        else:
            outcomes.add("written")
            return_to(project, before)
    full = run_with_limit(None)
    assert full.returncode == 0, full.stderr
    assert tree(project) != before
    assert outcomes == {"refused", "written"}, outcomes


def return_to(project: Path, snapshot: dict) -> None:
    for rel in sorted(set(tree(project)) - set(snapshot), reverse=True):
        path = project / rel
        path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
    for rel, content in snapshot.items():
        if isinstance(content, bytes):
            (project / rel).write_bytes(content)


def test_import_is_all_or_nothing_under_a_file_size_limit(tmp_path, dotenv):
    """The overlay is small, Pulumi.yaml (with the declarations) is not: a limit between them
    fails the second write; the first is undone, no temporary file stays."""
    project = copy_project(tmp_path / "project")
    all_or_nothing(lambda limit: configplane(*import_args(project, dotenv), fsize=limit),
                   project, [50, 600, 2500, 3700, 1 << 20])


def test_migrate_never_loses_a_service(tmp_path):
    """Before: services in Pulumi config. A failed write must not leave a stack file without
    its services while their catalog files are missing."""
    project = copy_project(tmp_path / "project")
    to_legacy(project)
    all_or_nothing(lambda limit: configplane("migrate", "--project-dir", str(project),
                                             "--write", fsize=limit),
                   project, [100, 1500, 3000, 1 << 20])


def test_codeowners_is_never_left_truncated(tmp_path):
    project = copy_project(tmp_path / "project")
    (project / ".github").mkdir()
    (project / ".github/CODEOWNERS").write_text("# old\n* @shop/platform\n")
    all_or_nothing(lambda limit: configplane("codeowners", "--project-dir", str(project),
                                             "--write", fsize=limit),
                   project, [10, 300, 1 << 20])


def test_plan_out_is_never_left_half_written(tmp_path):
    """plan.json is the largest file: a limit below it fails the change after the manifests
    were prepared; the directory keeps the previous plan whole."""
    project = copy_project(tmp_path / "project", policies=True)
    out = tmp_path / "out"
    out.mkdir()
    (out / "plan.json").write_text('{"previous": true}\n')
    before = tree(out)
    run = configplane("plan", "--stack", "dev", "--project-dir", str(project), "--no-policy",
                      "--quiet", "--out", str(out), "--format", "json", fsize=20000)
    clean(run)
    assert run.returncode == 1 and "nothing was changed" in run.stderr, run.stderr[-1000:]
    assert tree(out) == before


def test_a_read_only_catalog_directory_changes_nothing(tmp_path, dotenv):
    """import into a service whose directory cannot be written: Pulumi.yaml keeps no half of
    the change (the declarations would be written before the overlay fails)."""
    project = copy_project(tmp_path / "project")
    (project / "services/billing").mkdir()
    (project / "services/billing/service.yaml").write_text("app_schema: worker\n")
    before = tree(project)
    os.chmod(project / "services/billing", 0o555)
    try:
        run = configplane(*import_args(project, dotenv), prefix=tuple(UNPRIVILEGED))
    finally:
        os.chmod(project / "services/billing", 0o755)
    clean(run)
    assert run.returncode == 1 and "services/billing/dev.yaml" in run.stderr, run.stderr
    assert tree(project) == before


def test_concurrent_imports_are_serialised_and_lose_nothing(tmp_path, dotenv):
    """Six imports at once, each adding a service and its declarations to Pulumi.yaml: all
    six succeed and every declaration is there."""
    project = copy_project(tmp_path / "project")
    services = [f"svc{i}" for i in range(6)]
    procs = [subprocess.Popen([sys.executable, "-m", "configplane",
                               *import_args(project, dotenv, service)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
             for service in services]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0] * 6, results
    config = yaml.safe_load((project / "Pulumi.yaml").read_text())["config"]
    for service in services:
        assert (project / f"services/{service}/dev.yaml").is_file()
        assert f"configplane:{service}StripeApiKey" in config
        assert f"configplane:{service}WebhookSigningSecret" in config


def secret_args(project: Path, key: str, *extra: str) -> tuple[str, ...]:
    return ("secret", "set", "--stack", "dev", "--service", "web", key, "--grant",
            "--project-dir", str(project), *extra)


@pytest.mark.parametrize("extra", [(), ("--overlay",)])
def test_secret_set_is_all_or_nothing_under_a_file_size_limit(tmp_path, extra):
    """The service's file (or a new overlay) is small, Pulumi.yaml (declaration and grant) is
    not: a limit between them fails the second write and the first is undone."""
    project = copy_project(tmp_path / "project")
    if extra:
        (project / "services/web/dev.yaml").unlink()  # the overlay is a new file
    all_or_nothing(lambda limit: configplane(*secret_args(project, "PARTNER_TOKEN", *extra),
                                             fsize=limit),
                   project, [50, 1200, 1 << 20])


def test_concurrent_secret_sets_are_serialised_and_lose_nothing(tmp_path):
    """Six `secret set --grant` at once on one service, each reading and editing the same
    Pulumi.yaml and service.yaml: every spec, declaration and grant is there."""
    project = copy_project(tmp_path / "project")
    keys = [f"PARTNER_{i}_TOKEN" for i in range(6)]
    procs = [subprocess.Popen([sys.executable, "-m", "configplane", *secret_args(project, key)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
             for key in keys]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0] * 6, results
    config = yaml.safe_load((project / "Pulumi.yaml").read_text())["config"]
    granted = config["configplane:defaults"]["value"]["platform"]["grants"]["secure_keys"]["web"]
    secrets = yaml.safe_load((project / "services/web/service.yaml").read_text())["secrets"]
    for i, key in enumerate(keys):
        assert f"configplane:webPartner{i}Token" in config
        assert f"webPartner{i}Token" in granted
        assert secrets[key]["config_key"] == f"webPartner{i}Token"


# --- no writer reaches outside the project ---------------------------------------------


def test_migrate_refuses_a_legacy_service_named_to_leave_the_catalog(tmp_path):
    project = copy_project(tmp_path / "sub" / "project")
    to_legacy(project)
    path = project / "Pulumi.dev.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["configplane:services"]["../../x"] = {"config": {"A": 1}}
    path.write_text(yaml.safe_dump(document))
    before = tree(tmp_path)
    run = configplane("migrate", "--project-dir", str(project), "--write")
    clean(run)
    assert run.returncode == 1 and "service name `../../x` cannot name a directory" in run.stderr
    assert tree(tmp_path) == before


@pytest.mark.parametrize("link, target", [
    ("services/billing/dev.yaml", "{outside}/dev.yaml"),  # a dangling link out of the project
    ("services/billing", "{outside}"),                    # the service's directory, out
    ("services/billing", "api"),                          # the service's directory, another's
])
def test_import_does_not_follow_a_link_out_of_its_directory(tmp_path, dotenv, link, target):
    project = copy_project(tmp_path / "project")
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / link).parent.mkdir(parents=True, exist_ok=True)
    (project / link).symlink_to(target.format(outside=outside))
    before = tree(tmp_path)
    run = configplane(*import_args(project, dotenv))
    clean(run)
    assert run.returncode == 1, run.stdout
    assert tree(tmp_path) == before


def test_a_directory_name_cannot_inject_a_codeowners_line(tmp_path):
    project = copy_project(tmp_path / "project")
    evil = project / "services" / "evil\n* @attacker"
    evil.mkdir()
    (evil / "service.yaml").write_text("app_schema: worker\n")
    before = tree(project)
    for args in (("codeowners", "--project-dir", str(project)),
                 ("codeowners", "--project-dir", str(project), "--write")):
        run = configplane(*args)
        clean(run)
        assert run.returncode == 1 and run.stdout == ""
        assert run.stderr.count("\n") == 1 and "services/evil\\n* @attacker" in run.stderr
    assert tree(project) == before


def test_an_owner_with_a_trailing_newline_is_refused(tmp_path):
    project = copy_project(tmp_path / "project")
    path = project / "services/api/service.yaml"
    document = yaml.safe_load(path.read_text())
    document["owners"] = ["@shop/api-team\n"]
    path.write_text(yaml.safe_dump(document))
    run = configplane("codeowners", "--project-dir", str(project))
    clean(run)
    assert run.returncode == 1 and "owners must be a list" in run.stderr
