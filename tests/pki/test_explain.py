"""`configplane explain` on a dynamic secret: where it comes from and where it lands."""

from __future__ import annotations

import json

from click.testing import CliRunner

from configplane.cli.commands.explain import command as explain
from tests.conftest import REPO


def explained(*args: str) -> dict:
    result = CliRunner().invoke(explain, ["--stack", "dev", "--project-dir", str(REPO),
                                          "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_dynamic_secret_is_explained_as_a_login_from_vault():
    document = explained("api", "secrets.REPORTING_DB_PASSWORD")
    assert document["secret_value"] == {
        "source": "dynamic",
        "state": "a new short-lived login from Vault's database engine each time External "
                 "Secrets refreshes; no value exists before that"}
    assert document["delivered_as"] == {
        "secret_name": "api-dynamic-reporting-db-password",
        "key": "REPORTING_DB_PASSWORD (login name in REPORTING_DB_USERNAME)",
        "stored_in": "vault database engine, role api-reporting-db-password"}


def test_grants_resolve_to_the_layer_that_set_them():
    """The resolved grants equal what services/api/service.yaml wrote (`schema`, not
    pydantic's `schema_`), so explain names the service layer, not the model's defaults."""
    document = explained("api", "secrets.REPORTING_DB_PASSWORD.dynamic.grants")
    (entry,) = document["entries"]
    assert entry["set_by"]["layer"] == "service"
    assert entry["set_by"]["file"] == "services/api/service.yaml"
    assert entry["value"] == [{"schema": "app", "tables": ["orders", "order_items"],
                               "privileges": ["SELECT"]}]
