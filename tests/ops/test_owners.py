"""CODEOWNERS from the catalog: each team reviews its directory, the platform the rest."""

from __future__ import annotations

import subprocess

import yaml
from click.testing import CliRunner

from configplane.cli.commands.codeowners import command as codeowners_command
from configplane.ops import codeowners
from tests.conftest import REPO


def test_committed_codeowners_is_current():
    assert (REPO / ".github" / "CODEOWNERS").read_text() == codeowners(REPO)
    result = CliRunner().invoke(codeowners_command, ["--project-dir", str(REPO), "--check"])
    assert result.exit_code == 0, result.output


def owner_of(rules: list[list[str]], path: str) -> list[str]:
    """GitHub's reading of CODEOWNERS for the two pattern forms the generator writes: `*`
    (every file) and `/dir/` (everything under a top-level path); the last match wins."""
    owners: list[str] = []
    for pattern, *who in rules:
        assert pattern == "*" or (pattern.startswith("/") and pattern.endswith("/")), pattern
        if pattern == "*" or path.startswith(pattern[1:]):
            owners = who
    return owners


def _rules(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line and not line.startswith("#")]


def _tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    return [p for p in listed if (REPO / p).exists()]


def test_each_team_owns_its_service_and_the_platform_everything_else():
    rules = _rules(codeowners(REPO))
    services = {p.parent.name: yaml.safe_load(p.read_text())["owners"]
                for p in (REPO / "services").glob("*/service.yaml")}
    files = _tracked_files()
    assert len(files) > 100
    for path in files:
        parts = path.split("/")
        expected = (services[parts[1]] if parts[0] == "services" and parts[1] in services
                    else ["@shop/platform"])
        assert owner_of(rules, path) == expected, path


def test_the_platform_reviews_all_that_ci_runs_with_credentials():
    # What the deploy job executes with cloud credentials, and files that do not exist yet:
    # a catch-all, not a list that a new file (a conftest.py, a sitecustomize.py) slips past.
    rules = _rules(codeowners(REPO))
    for path in ("Makefile", "pyproject.toml", "requirements.txt", "requirements-dev.txt",
                 "policies/requirements.txt", ".ci/run", ".github/actions/stack-access/action.yml",
                 ".github/workflows/deploy.yml", ".github/CODEOWNERS", "tests/conftest.py",
                 "components/service.py", "policies/__main__.py", "__main__.py", "Pulumi.yaml",
                 "Pulumi.prod.yaml", "configplane/cli/app.py", "lambdas/rotation/handler.py",
                 "schemas/stack.schema.json", "services/defaults.yaml", "sitecustomize.py",
                 "setup.py", "a/new/dir/file.py", "services/new.yaml"):
        assert owner_of(rules, path) == ["@shop/platform"], path


def test_a_service_without_owners_falls_to_the_platform(project):
    path = project / "services" / "web" / "service.yaml"
    document = yaml.safe_load(path.read_text())
    del document["owners"]
    path.write_text(yaml.safe_dump(document))
    assert "/services/web/ @shop/platform\n" in codeowners(project)
    result = CliRunner().invoke(codeowners_command, ["--project-dir", str(project), "--check"])
    assert result.exit_code == 1
    assert result.output == ("error: .github/CODEOWNERS is not current. Fix: run `configplane "
                             "codeowners --write` and commit it.\n")


def test_bad_owners_and_missing_platform_owners_are_clean_errors(project):
    path = project / "services" / "api" / "service.yaml"
    path.write_text(path.read_text().replace('owners: ["@shop/api-team"]', "owners: [api team]"))
    result = CliRunner().invoke(codeowners_command, ["--project-dir", str(project)])
    assert (result.exit_code, result.output) == (1, (
        "error: services/api/service.yaml: owners must be a list of GitHub users or teams "
        "(`@org/team`, `@user`) or e-mail addresses. Fix: correct it.\n"))
    (project / "services" / "defaults.yaml").write_text("owners: []\nservice: {}\n")
    result = CliRunner().invoke(codeowners_command, ["--project-dir", str(project)])
    assert result.exit_code == 1
    assert "services/defaults.yaml: no platform owners" in result.output


def test_validate_checks_owners_too(project):
    from configplane.validation import load_or_issues

    path = project / "services" / "api" / "service.yaml"
    path.write_text(path.read_text().replace('owners: ["@shop/api-team"]', "owners: [api team]"))
    _, issues = load_or_issues(project, "dev")
    assert [(i.path, i.file, i.line) for i in issues] == [
        ("services.api.owners.0", "services/api/service.yaml", 1)]
