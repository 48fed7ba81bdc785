"""Backups and replicas are for the loss of a region: validate refuses them in the
environment's own region, and a replica region listed twice; and a service may not take the
names of the platform's snapshot CronJob."""

from __future__ import annotations

import pytest

from tests.catalog_compat import edit_stack
from tests.validation.test_pipeline import run_validate

PLATFORM = "configplane:platform"


def backup(c):
    return c[PLATFORM]["backup"]


@pytest.mark.parametrize(("change", "path", "text"), [
    (lambda c: backup(c).update(region="eu-west-1"), "platform.backup.region",
     "the backup bucket would be in eu-west-1, the environment's own region"),
    (lambda c: c[PLATFORM]["aws"].update(replica_regions=["eu-west-1"]),
     "platform.aws.replica_regions.0", "eu-west-1 is the environment's own region"),
    (lambda c: c[PLATFORM]["aws"].update(replica_regions=["eu-central-1", "eu-central-1"]),
     "platform.aws.replica_regions.1", "eu-central-1 is listed twice"),
    (lambda c: backup(c)["vault_snapshots"].update(bao_image="quay.io/openbao/openbao:2.7.2"),
     "platform.backup.vault_snapshots.bao_image", "does not match"),
])
def test_a_backup_setting_that_defeats_its_purpose_is_refused(project, change, path, text):
    edit_stack(project, "prod", change)
    code, report = run_validate(project, "prod")
    assert code == 1
    found = [e for e in report["errors"] if e["path"] == path]
    assert found and text in found[0]["message"], report["errors"]
    assert found[0]["file"] == "Pulumi.prod.yaml"


@pytest.mark.parametrize("name", ["vault-snapshot", "vault-backup"])
def test_a_service_cannot_take_the_snapshot_jobs_names(project, name):
    (project / "services" / "web").rename(project / "services" / name)
    edit_stack(project, "prod", lambda c: None)
    code, report = run_validate(project, "prod")
    assert code == 1
    assert any(e["path"] == f"services.{name}" and "platform name" in e["message"]
               for e in report["errors"]), report["errors"]
