"""The redaction boundary's own rules (configplane.redaction.redactor), and the places that use it."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pulumi.runtime import rpc

from configplane.cli.commands.plan import render_table, table_part, write_out
from configplane.offline import Plan, PlannedResource
from configplane.redaction import (
    HIDDEN,
    REDACTED,
    SECRET_SIG_KEY,
    SECRET_SIG_VALUE,
    Redactor,
    file_secrets,
    text_secrets,
    url_userinfo,
)
from configplane.redaction.redactor import _JSON_TOKEN, document_secrets, spec_metadata
from tests.catalog_compat import edit_stack
from tests.projects import copy_project
from tests.security.conftest import cli, edit_yaml

DB_URL = "postgres://api:Sup3r-S3cret-pw@db.internal:5432/shop"


def test_the_wire_format_is_the_sdks():
    assert (rpc._special_sig_key, rpc._special_secret_sig) == (SECRET_SIG_KEY, SECRET_SIG_VALUE)


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


# --- names and foreign text (issue 18) ------------------------------------------------------

# Vendor-format tokens the detector knows by their shape, whatever slot holds them.
TOKENS = {
    "github": "ghp_" + "Zq81LmNp0XrAbCdEf0123456789AbCdEf0123",
    "aws": "AKIA" + "Q7RZ5M2XK9P4W3NB",
    "stripe": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dcQ",
}
NAME_SLOT_KEYS = ["name", "urn", "path", "config_key", "owners", "key", "id", "type"]


@given(st.sampled_from(sorted(TOKENS.values())), st.sampled_from(["", "x-", "team/"]),
       st.sampled_from(["", "-prod", ".config"]))
def test_a_token_used_as_a_name_is_a_secret_of_the_inventory_and_of_tree(token, before, after):
    name = f"{before}{token}{after}"
    # as a mapping key anywhere (a tenant, a flag, a secret's name), and in a name slot
    document = {"services": {"api": {"tenants": {name: {"config": {}}},
                                     "flags": {name: {"state": "ENABLED"}}},
                             "web": {"owners": [name], "secrets": {name: {"source": "generated"}}}}}
    assert name in document_secrets(document) or token in document_secrets(document)
    shown = json.dumps(Redactor().tree(document))
    assert token not in shown
    for key in NAME_SLOT_KEYS:
        assert Redactor().tree({key: name}) == {key: REDACTED}, key


_KEYS = st.sampled_from(["name", "data", "password", "spec", "tenants", "owners", "on",
                         *TOKENS.values(), f"x-{TOKENS['aws']}"])
_DOCUMENTS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["info", *TOKENS.values()]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4)
    | st.builds(lambda v: {SECRET_SIG_KEY: SECRET_SIG_VALUE, "value": v}, inner),
    max_leaves=12)


@given(_DOCUMENTS)
def test_learning_the_keys_knows_what_a_whole_tree_with_its_keys_kept_knows(document):
    # a table that prints part of a document (`emit`'s `shown`) still learns every flagged
    # key of the rest: the stream then hides it wherever the table prints it
    whole, keys = Redactor(), Redactor()
    whole.tree(document, keep_keys=True)
    keys.learn_keys(document)
    assert keys.values == whole.values


@given(st.lists(st.tuples(st.sampled_from(["svc-a", f"svc-{TOKENS['aws']}", TOKENS["github"]]),
                          _DOCUMENTS, st.booleans()), max_size=4))
def test_a_plan_table_from_the_part_it_shows_prints_no_secret_and_learns_every_key(resources):
    document = {
        "stack": "dev", "outputs": {"services": {TOKENS["stripe"]: "x"}},
        "resources": [{"type": "kubernetes:core/v1:ConfigMap", "name": name, "read": read,
                       "inputs": inputs, "outputs": inputs,
                       "options": {"protect": read, "retainOnDelete": True, "parent": name}}
                      for name, inputs, read in resources],
        "summary": {"resources": len(resources)}, "violations": []}
    whole, part = Redactor(), Redactor()
    with redirect_stdout(io.StringIO()) as printed_whole:
        render_table(whole.tree(document, keep_keys=True))
    part.learn_keys(document)
    with redirect_stdout(io.StringIO()) as printed_part:
        render_table(part.tree(table_part(document), keep_keys=True))
    assert part.values == whole.values
    shown = printed_part.getvalue()
    assert not any(token in shown for token in TOKENS.values())
    # the same lines; a name holding a learned key shows the rest of itself (`svc-[secret]`)
    # where the whole walk, not yet knowing the key there, hid the whole name
    if REDACTED not in shown:
        assert shown == printed_whole.getvalue()
    assert len(shown.splitlines()) == len(printed_whole.getvalue().splitlines())


def test_names_that_are_not_tokens_stay_and_redacted_keys_stay_distinct():
    plain = {"tenants": {"acme": 1, "globex": 2}, "config_key": "apiDbPassword",
             "name": "api-config-hf678c7m2b", "owners": ["@shop/web-team"],
             "urn": "urn:pulumi:dev::configplane::kubernetes:core/v1:ConfigMap::api-config"}
    assert Redactor().tree(plain) == plain
    two = Redactor().tree({TOKENS["github"]: {}, TOKENS["aws"]: {}, "ok": 3})
    assert two == {REDACTED: {}, f"{REDACTED} 2": {}, "ok": 3}


def test_a_path_naming_a_secret_shows_the_rest_of_itself():
    r = Redactor([TOKENS["stripe"]])
    path = f"services.web.secrets.{TOKENS['stripe']}.length"
    assert r.tree({"path": path, "message": f"`{TOKENS['stripe']}` is bad"}) == {
        "path": "services.web.secrets.[secret].length", "message": "`[secret]` is bad"}


def test_a_value_pasted_inside_dynamic_grants_is_hidden_and_in_the_inventory():
    spec = {"source": "dynamic", "dynamic": {"connection": "shop", "grants": [
        {"schema": "public", "tables": ["orders"], "privileges": ["SELECT"],
         "value": "Pw-pasted-9zQ"}]}}
    shown = Redactor().spec(spec)
    assert shown["dynamic"]["grants"] == [{"schema": "public", "tables": ["orders"],
                                           "privileges": ["SELECT"], "value": HIDDEN}]
    assert "Pw-pasted-9zQ" in document_secrets({"services": {"api": {"secrets": {"X": spec}}}})
    assert spec_metadata(("dynamic", "grants", "tables"))
    assert not spec_metadata(("dynamic", "grants", "value"))
    assert not spec_metadata(("dynamic", "value"))


FOREIGN = [
    (f"preview failed: Authorization: Bearer {'abcD1234efgh5678'}", "abcD1234efgh5678"),
    (f"policy: value {TOKENS['github']} found in ConfigMap", TOKENS["github"]),
    ("cannot connect to postgres://app:s3cretPw9@db/x", "s3cretPw9"),
    ("exec failed with password=hunter2x and user=app", "hunter2x"),
    (f'{{"data": {{"API_TOKEN": "{TOKENS["stripe"]}"}}}}', TOKENS["stripe"]),
]


@given(st.sampled_from(FOREIGN), st.text(max_size=30), st.text(max_size=30))
def test_foreign_text_secrets_are_found_in_any_surrounding_text(case, before, after):
    text, secret = case
    found = text_secrets(f"{before}\n{text}\n{after}")
    r = Redactor()
    r.add(*found)
    assert secret not in r.text(f"{before}\n{text}\n{after}")


@pytest.mark.parametrize("text", [
    "the ConfigMap api-config has no label. Fix: add app.kubernetes.io/name.",
    "token required; password: required; secret: true; password_length: 32",
    "urn:pulumi:dev::configplane::vault:kv/secretV2:SecretV2::api-stripe-key",
    "Basic settings changed", "services.api.secrets.DATABASE_PASSWORD.rotation",
])
def test_foreign_text_without_a_secret_yields_nothing(text):
    assert text_secrets(text) == set()


def test_texts_are_judged_apart_never_across_two_of_them():
    # "password" ends one text, "=hunter2x" starts the next: no pair between them
    assert text_secrets(["password", "=hunter2x"]) == set()
    assert text_secrets({"password=hunter2x": ["x"]}) == {"hunter2x"}


def test_a_service_scoped_command_protects_its_services_and_reads_no_other(tmp_path):
    # `validate/plan --service api` read api's files and the platform's, never web's: their
    # redactor knows api's secrets and has no need (nor the time, at 2,000 services) for web's.
    from configplane.cli.boundary import protect_stack, running
    from configplane.inputs import RunContext
    from configplane.redaction import load_detector

    project = copy_project(tmp_path / "project")
    # loaded outside the boundary: detect-secrets' logging handler keeps the stream it was
    # created with, and pytest's capture closes that stream before logging's exit flush
    load_detector(project)
    canaries = {"api": "Zq8vXw3pLm5tRb9kYd2n", "web": "Hj4sNc7uGf1eWa6xTo3q"}
    for name, canary in canaries.items():
        path = project / "services" / name / "service.yaml"
        document = yaml.safe_load(path.read_text())
        document["config"]["DATABASE_PASSWORD"] = canary
        path.write_text(yaml.safe_dump(document))

    def redacted(services):
        with running(RunContext.create(project, services)) as run:
            protect_stack(project, "dev", services)
            return {name for name, canary in canaries.items()
                    if run.redactor.text(canary) != canary}

    assert redacted(None) == {"api", "web"}
    assert redacted(["api"]) == {"api"}
    assert redacted(["web", "api"]) == {"api", "web"}
