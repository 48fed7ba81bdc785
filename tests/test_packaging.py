"""`pip install configplane` gives a working `configplane`: the wheel alone, in a fresh virtualenv,
runs every verb that needs no cloud; `plan` and `drift` name the extra they need.

The wheel is built from a copy of this checkout without its build products (setuptools reuses
an in-tree `build/` and `*.egg-info`, which can ship files no longer declared), with the venv's
own setuptools (no build isolation, so no download). It is installed into a fresh virtualenv,
offline, from a wheelhouse holding exactly what the wheel declares (tests/wheelhouse.py: the
test venv's distributions repacked). No requirements file is involved: a module the CLI imports
that pyproject.toml does not declare is missing there, and the verb that imports it fails.
The commands run from outside the checkout, through the installed `configplane` script.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from configplane.cli.app import COMMANDS
from configplane.cli.installed import extra_requirements
from tests.conftest import REPO
from tests.projects import copy_project
from tests.wheelhouse import wheel_requirements, wheelhouse

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# Verbs that reach a cloud or run the Pulumi program: they need `configplane[plan]`.
# verb -> what follows it on a command line that reaches the extra's check (files that exist)
NEEDS_PLAN_EXTRA = {"plan": [], "drift": [], "shard": ["plan"],
                    "dr": ["verify", "--snapshot", "Pulumi.yaml", "--keys-file", "Pulumi.yaml"]}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source") / "configplane"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(source)], check=True, capture_output=True)
    built = next(out.glob("configplane-*.whl"))
    names = zipfile.ZipFile(built).namelist()
    assert "configplane/cli/commands/validate.py" in names and "configplane/cli/app.py" in names
    assert not any(n.startswith(("components/", "policies/", "tests/")) for n in names)
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel and what it declares, nothing else: its bin/."""
    house = tmp_path_factory.mktemp("wheelhouse")
    wheelhouse(wheel, house)
    env_dir = tmp_path_factory.mktemp("venv") / "fresh"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    done = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-index", "--isolated",
         "--find-links", str(house), str(wheel)],
        capture_output=True, text=True, env=environ, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return bin_dir


def _run(bin_dir: Path, cwd: Path, *args: str, stdin: str | None = None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    environ["PATH"] = f"{bin_dir}{os.pathsep}{environ.get('PATH', '')}"
    return subprocess.run(["configplane", *args], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=300, input=stdin)


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def _base(requirements: list[str]) -> list[str]:
    return [r for r in requirements if not Requirement(r).marker
            or "extra" not in str(Requirement(r).marker)]


def _pinned(*files: str) -> set[str]:
    names = set()
    for file in files:
        for line in (REPO / file).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-r"):
                names.add(canonicalize_name(Requirement(line).name))
    return names


def test_the_fresh_venv_has_only_what_the_wheel_declares(installed, wheel):
    listed = subprocess.run([str(installed / "python"), "-m", "pip", "list", "--format", "json"],
                            capture_output=True, text=True, check=True).stdout
    present = {canonicalize_name(d["name"]) for d in json.loads(listed)} - {"pip", "setuptools"}
    assert "configplane" in present
    assert not {"pulumi", "pulumi-aws", "pytest", "moto", "hypothesis"} & present
    assert _names(_base(wheel_requirements(wheel))) <= present


def test_declared_dependencies_are_pinned_and_the_pins_are_declared(wheel):
    base, plan = _names(PYPROJECT["dependencies"]), _names(PYPROJECT["optional-dependencies"]["plan"])
    # what the program, the pack and the Lambda run with is declared, in the base or the extra
    runtime = _pinned("requirements.txt", "policies/requirements.txt",
                      "lambdas/rotation/requirements.txt")
    assert runtime <= base | plan
    # and everything declared is pinned (requirements-dev.txt pins the CLI's own)
    assert base | plan <= runtime | _pinned("requirements-dev.txt")
    assert not base & plan
    # the wheel carries them, and `configplane plan` reads the extra back from it
    assert _names(extra_requirements("plan", wheel_requirements(wheel))) == plan
    assert _names(_base(wheel_requirements(wheel))) == base


def test_version_and_help(installed, tmp_path, wheel):
    version = wheel.name.split("-")[1]
    done = _run(installed, tmp_path, "--version")
    assert (done.returncode, done.stdout) == (0, f"configplane {version}\n")
    helped = _run(installed, tmp_path, "--help")
    assert helped.returncode == 0, helped.stderr
    for verb in COMMANDS:
        assert f"  {verb} " in helped.stdout
        verb_help = _run(installed, tmp_path, verb, "--help")
        assert (verb_help.returncode, verb_help.stderr) == (0, ""), verb
        assert "Example" in verb_help.stdout, verb


@pytest.fixture
def sample(tmp_path) -> Path:
    return copy_project(tmp_path / "project", policies=True)


def _verbs(project: Path, tmp: Path) -> dict[str, tuple[list[str], str | None]]:
    """A run of every verb that needs no cloud, against the sample project."""
    env_file = tmp / "app.env"
    env_file.write_text("LOG_LEVEL=info\nFEATURE_X=on\n")
    listing = tmp / "cms.json"
    listing.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": []}))
    pairs = '{"id": "1", "key": "LOG_LEVEL", "value": "info"}\n'
    preview = REPO / "tests" / "fixtures" / "preview"
    return {
        "validate": (["validate", "--stack", "prod"], None),
        "explain": (["explain", "--stack", "prod", "api", "LOG_LEVEL"], None),
        "diff": (["diff", "--stack", "staging", "--stack", "prod"], None),
        "flags": (["flags", "--stack", "prod"], None),
        "scan": (["scan", "--jsonl", "-"], pairs),
        "drift-report": (["drift-report", str(preview / "no-changes.json"), "--events",
                          str(preview / "no-changes.events.jsonl")], None),
        "import": (["import", "newsvc", "--stack", "dev", "--from", str(env_file),
                    "--app-schema", "http-api", "--owner", "@shop/api-team"], None),
        "prune": (["prune", "--stack", "dev", "--configmaps", str(listing)], None),
        "migrate": (["migrate"], None),
        "codeowners": (["codeowners"], None),
        "where": (["where", "api"], None),
        "affected": (["affected", "--all", "--format", "github-matrix"], None),
        "github-environments": (["github-environments", "--env", "prod"], None),
        "operator": (["operator", "stacks", "--env", "prod", "--repo",
                      "https://github.com/shop/config", "--organization", "shop",
                      "--secrets-provider", "awskms://alias/pulumi-prod", "--platform-role-arn",
                      "arn:aws:iam::333333333333:role/configplane-bootstrap-prod"], None),
    }


def test_every_offline_verb_runs_from_the_wheel_alone(installed, sample, tmp_path):
    verbs = _verbs(sample, tmp_path)
    assert set(verbs) | set(NEEDS_PLAN_EXTRA) | {"rollback", "secret"} == set(COMMANDS)
    for verb, (args, stdin) in verbs.items():
        done = _run(installed, sample / "services" / "api", *args, stdin=stdin)
        assert "internal error" not in done.stderr and "Traceback" not in done.stderr, (verb, done.stderr)
        assert done.returncode == 0, (verb, done.stdout, done.stderr)
    valid = _run(installed, sample, "validate", "--stack", "dev", "--format", "json")
    assert json.loads(valid.stdout)["valid"] is True


def test_secret_set_runs_from_the_wheel_alone(installed, sample):
    # a new `secure` secret: its spec and declaration written, the value still to be set
    done = _run(installed, sample / "services" / "api", "secret", "set", "--stack", "dev",
                "--service", "api", "PARTNER_TOKEN")
    assert done.returncode == 0 and "internal error" not in done.stderr, done.stderr
    assert "pulumi config set --secret" in done.stdout
    assert "PARTNER_TOKEN" in (sample / "services" / "api" / "service.yaml").read_text()


def test_rollback_runs_from_the_wheel_alone(installed, sample, tmp_path):
    # with no generation in the cluster listing, rollback refuses cleanly (exit 1)
    listing = tmp_path / "cms.json"
    listing.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": []}))
    done = _run(installed, sample, "rollback", "--stack", "dev", "api", "--configmaps", str(listing))
    assert done.returncode == 1 and done.stderr.startswith("error: "), done.stderr
    assert "internal error" not in done.stderr


def test_the_installed_cli_validates_from_anywhere(installed, tmp_path):
    done = _run(installed, tmp_path, "validate", "--stack", "dev", "--project-dir", str(REPO))
    assert (done.returncode, done.stdout) == (0, "stack dev: configuration is valid\n"), done.stderr


@pytest.mark.parametrize("verb", sorted(NEEDS_PLAN_EXTRA))
def test_plan_and_drift_say_what_to_install(installed, sample, verb):
    words = [verb, *NEEDS_PLAN_EXTRA[verb][:1]]
    done = _run(installed, sample, *words, "--stack", "dev", *NEEDS_PLAN_EXTRA[verb][1:])
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"error: `configplane {' '.join(words)}` needs the Pulumi SDKs (the `plan` "
                                  "extra), and these are not installed: ")
    named = done.stderr.split("not installed: ", 1)[1].split(". Fix:", 1)[0].split(", ")
    assert set(named) == set(PYPROJECT["optional-dependencies"]["plan"])
    assert "Fix: pip install 'configplane[plan]'" in done.stderr


def test_the_installed_cli_reads_a_preview_with_its_packaged_schema(installed, tmp_path):
    # the preview schema is package data: drift-report checks a document outside the checkout
    fixtures = REPO / "tests" / "fixtures" / "preview"
    done = _run(installed, tmp_path, "drift-report", str(fixtures / "no-changes.json"),
                "--format", "json")
    assert done.returncode == 0, done.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"steps": {}}')
    refused = _run(installed, tmp_path, "drift-report", str(bad))
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (f"error: {bad}: steps: expected a list of steps; expected the "
                              "output of `pulumi preview --json`\n")
