"""CODEOWNERS from the catalog: each team reviews its directory, the platform the rest."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from configplane.cli.commands.codeowners import command as codeowners_command
from configplane.ops import codeowners
from tests.conftest import REPO


def test_committed_codeowners_is_current():
    assert (REPO / ".github" / "CODEOWNERS").read_text() == codeowners(REPO)
    result = CliRunner().invoke(codeowners_command, ["--project-dir", str(REPO), "--check"])
    assert result.exit_code == 0, result.output


def test_each_team_owns_its_service_and_the_platform_the_rest():
    rules = [line.split() for line in codeowners(REPO).splitlines()
             if line and not line.startswith("#")]
    assert rules == [
        ["/Pulumi.yaml", "@shop/platform"], ["/Pulumi.*.yaml", "@shop/platform"],
        ["/__main__.py", "@shop/platform"], ["/policies/", "@shop/platform"],
        ["/.github/", "@shop/platform"], ["/components/", "@shop/platform"],
        ["/schemas/", "@shop/platform"], ["/configplane/", "@shop/platform"],
        ["/lambdas/", "@shop/platform"], ["/services/defaults.yaml", "@shop/platform"],
        ["/services/api/", "@shop/api-team"], ["/services/web/", "@shop/web-team"],
        ["/services/worker/", "@shop/payments-team"],
    ]


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
