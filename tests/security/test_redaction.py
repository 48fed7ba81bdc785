"""The redaction boundary's own rules (configplane.redaction.redactor), and the places that use it."""

from __future__ import annotations

import json

import yaml
from hypothesis import given
from hypothesis import strategies as st
from pulumi.runtime import rpc

from configplane.cli.commands.plan import write_out
from configplane.offline import Plan, PlannedResource
from configplane.redaction import (
    HIDDEN,
    REDACTED,
    SECRET_SIG_KEY,
    SECRET_SIG_VALUE,
    Redactor,
    file_secrets,
    url_userinfo,
)
from configplane.redaction.redactor import _JSON_TOKEN
from tests.catalog_compat import edit_stack
from tests.projects import copy_project
from tests.security.conftest import cli, edit_yaml

DB_URL = "postgres://api:Sup3r-S3cret-pw@db.internal:5432/shop"


def test_the_wire_format_is_the_sdks():
    assert (SECRET_SIG_KEY, SECRET_SIG_VALUE) == (rpc._special_sig_key, rpc._special_secret_sig)


def test_tree_redacts_marked_known_and_flagged_values_only():
    r = Redactor(["known-value-1"])
    data = {"a": {SECRET_SIG_KEY: SECRET_SIG_VALUE, "value": "x"}, "b": "has known-value-1 in it",
            "DATABASE_URL": DB_URL, "LOG_LEVEL": "info", "PORT": 8080, "on": True,
            "list": ["known-value-1", "plain"], "config_key": "apiDbPassword"}
    assert r.tree(data) == {"a": REDACTED, "b": "has [secret] in it", "DATABASE_URL": REDACTED,
                            "LOG_LEVEL": "info", "PORT": 8080, "on": True,
                            "list": [REDACTED, "plain"], "config_key": "apiDbPassword"}


def test_specs_are_shown_by_metadata_only():
    r = Redactor()
    spec = {"source": "secure", "store": "aws", "config_key": "k", "value": "pasted",
            "database": {"host": "h", "password": "pw"}, "rotation": {"strategy": "random"},
            "description": f"use {DB_URL}"}
    assert r.spec(spec) == {"source": "secure", "store": "aws", "config_key": "k",
                            "value": HIDDEN, "database": {"host": "h", "password": HIDDEN},
                            "rotation": {"strategy": "random"}, "description": REDACTED}
    assert r.spec("sk_live_pasted") == REDACTED
    assert r.spec(12345) == REDACTED


@given(st.text(min_size=4, max_size=40).filter(lambda s: s.strip("\r\n") == s and
                                                REDACTED not in s and
                                                not _JSON_TOKEN.fullmatch(s)),
       st.text(max_size=20), st.text(max_size=20))
def test_text_never_keeps_a_known_value(secret, before, after):
    r = Redactor([secret])
    for text in (before + secret + after, json.dumps(before + secret + after)):
        assert secret not in r.text(text).replace(REDACTED, "\x00")


def test_url_userinfo():
    assert url_userinfo("https://admin:pw@vault:8200") == "admin:pw"
    assert url_userinfo("https://vault:8200/a@b") is None
    assert url_userinfo("user@example.com") is None


def test_file_secrets_reads_unparseable_files(tmp_path):
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text("config:\n  vault:token: s.abcdefghijkl\n  x:\n    secure: plaintext-pw\n"
                    f"  DATABASE_URL: '{DB_URL}'\n  bad: [\n  config_key: apiDbPassword\n")
    assert file_secrets([path]) >= {"s.abcdefghijkl", "plaintext-pw", DB_URL,
                                    "api:Sup3r-S3cret-pw"}
    assert "apiDbPassword" not in file_secrets([path])


def _configmap_plan() -> Plan:
    inputs = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "api-config", "namespace": "api-dev"},
              "data": {"DATABASE_URL": DB_URL, "LOG_LEVEL": "info"}}
    resource = PlannedResource(urn="urn:pulumi:dev::p::kubernetes:core/v1:ConfigMap::api",
                               type="kubernetes:core/v1:ConfigMap", name="api", inputs=inputs,
                               outputs=inputs, parent=None, dependencies=[],
                               property_dependencies={}, custom=True)
    return Plan(stack="dev", project="p", resources=[resource], outputs={})


def test_a_credential_the_pack_would_flag_is_redacted_in_plan_json_and_out(tmp_path):
    plan = _configmap_plan()
    document = plan.as_dict(Redactor())
    assert document["resources"][0]["inputs"]["data"] == {"DATABASE_URL": REDACTED,
                                                          "LOG_LEVEL": "info"}
    write_out(plan, tmp_path / "out", Redactor())
    manifest = yaml.safe_load((tmp_path / "out" / "configmap-api-dev-api-config.yaml").read_text())
    assert manifest["data"] == {"DATABASE_URL": REDACTED, "LOG_LEVEL": "info"}
    assert "Sup3r" not in (tmp_path / "out" / "plan.json").read_text()


def test_explain_whole_secrets_pasted_specs_and_collisions(tmp_path):
    project = copy_project(tmp_path / "project")

    def change(config):
        worker = config["configplane:services"]["worker"]  # services/worker/dev.yaml
        worker["secrets"] = {"STRIPE_KEY": "sk_live_Pasted0123456789abcdef",
                             "CONCURRENCY": {"source": "generated", "store": "vault"}}

    edit_stack(project, "dev", change)
    p = str(project)
    whole = json.loads(cli("explain", "--stack", "dev", "worker", "secrets", "--project-dir", p,
                           "--format", "json").stdout)
    assert whole["secret"] is True
    assert whole["value"]["STRIPE_KEY"] == REDACTED
    assert whole["value"]["PAYMENTS_API_KEY"]["source"] == "secure"
    pasted = cli("explain", "--stack", "dev", "worker", "STRIPE_KEY", "--project-dir", p)
    assert pasted.code == 0 and "Pasted0123" not in pasted.text and REDACTED in pasted.stdout
    both = json.loads(cli("explain", "--stack", "dev", "worker", "CONCURRENCY", "--project-dir",
                          p, "--format", "json").stdout)
    assert both["path"] == "secrets.CONCURRENCY" and both["value"] == REDACTED
    assert any("both a config key and a secret" in n for n in both["notes"])


def test_explain_names_the_stack_file_for_defaults_it_sets(tmp_path):
    # The layout before the catalog (still read): a service that is not in services/ (one in
    # both would be refused) in project defaults that the stack file sets.
    project = copy_project(tmp_path / "project")
    edit_yaml(project / "Pulumi.dev.yaml", lambda d: d["config"].update(
        {"configplane:defaults": {"services": {"shop-web": {"app_schema": "web-frontend",
                                                            "config": {"PORT": 4000}}}}}))
    data = json.loads(cli("explain", "--stack", "dev", "shop-web", "PORT", "--project-dir",
                          str(project), "--format", "json").stdout)
    assert data["entries"][0]["set_by"]["file"] == "Pulumi.dev.yaml"


def test_explain_does_not_call_plaintext_under_secure_encrypted(tmp_path):
    project = copy_project(tmp_path / "project")
    edit_yaml(project / "Pulumi.dev.yaml", lambda d: d["config"].update(
        {"configplane:apiDbPassword": {"secure": "hunter2-plain"}}))
    data = json.loads(cli("explain", "--stack", "dev", "api", "DATABASE_PASSWORD",
                          "--project-dir", str(project), "--format", "json").stdout)
    assert data["secret_value"]["state"].startswith("NOT ENCRYPTED: under `secure:` in "
                                                    "Pulumi.dev.yaml but not a ciphertext.")
    assert "hunter2-plain" not in json.dumps(data)
    sample = json.loads(cli("explain", "--stack", "dev", "api", "DATABASE_PASSWORD",
                            "--format", "json").stdout)
    assert sample["secret_value"]["state"] == "set, encrypted in Pulumi.dev.yaml"


def test_the_program_can_load_the_detector_validate_uses():
    """load_stack runs the pack's detector inside the Pulumi program too: the program's
    requirements pin what the pack pins."""
    from tests.projects import REPO

    def pins(path):
        return {line.split("==")[0]: line.split("==")[1] for line in
                (REPO / path).read_text().splitlines() if "==" in line and not line.startswith("#")}

    program, pack = pins("requirements.txt"), pins("policies/requirements.txt")
    for name in ("detect-secrets", "google-re2"):
        assert program[name] == pack[name]


def test_text_redaction_keeps_json_valid():
    r = Redactor(["123456", "true", "s3cr3t-value"])
    text = json.dumps({"port": 123456, "on": True, "v": "s3cr3t-value"})
    assert json.loads(r.text(text)) == {"port": 123456, "on": True, "v": REDACTED}
    assert r.tree({"pin": 123456, "x": "123456"}) == {"pin": REDACTED, "x": REDACTED}


def test_declaration_fields_are_not_secret_values(tmp_path):
    path = tmp_path / "Pulumi.yaml"
    path.write_text("config:\n  configplane:apiDbPassword:\n    type: string\n    secret: true\n"
                    "    description: the db password\n    default: pl4in-default\n")
    assert file_secrets([path], ["configplane:apiDbPassword"]) == {"pl4in-default"}
