"""Canaries in every secret-ish place; every output of every command is searched for them.

Planted (CLI): plaintext under `secure:`, a plaintext value for a key declared secret, a
`default` on a `secret: true` declaration, provider credentials (`vault:token`,
`aws:secretKey`), a secret spec pasted as a string, an unknown field in a spec, a token in a
description, userinfo in the Vault address, credentials in config values (merged and
overridden layers), import inputs (.env and a Secret manifest), `scan` input, a preview
document. The service catalog holds most of these: the stack edits land in
`services/<svc>/dev.yaml`, the project-layer ones in `services/<svc>/service.yaml`
(tests.catalog_compat), and more sit in `services/defaults.yaml` (the fleet layer), in another
stack's overlay (`services/api/prod.yaml`) and in a catalog file that does not parse.
Planted (plan, library): the `secure` values and the generated values, read through the plan
JSON, the `--out` files and the policy pack's messages and logs.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from configplane.cli.commands.plan import write_out
from configplane.offline import PlanMocks, run_plan
from configplane.redaction import Redactor, detect_name
from tests.catalog_compat import edit_project, edit_stack
from tests.projects import REPO, copy_project, files_text
from tests.security.conftest import assert_clean, cli, edit_yaml


def _core(n: int) -> str:
    return f"cnry{n:02d}{secrets.token_hex(6)}"


CORES = {n: _core(n) for n in range(1, 24)}
C = CORES
PLANTS = {
    "secure-plaintext": f"hunter2-{C[1]}",
    "declared-plaintext": f"Pw-{C[2]}-x9Q",
    "vault-token": f"hvs.{C[3]}AbCdEfGhIj",
    "aws-secret-key": f"wJalrXUtnFEMI/{C[4]}/bPxRfiCYEXAMPLEKEY",
    "pasted-spec": f"sk_live_{C[5]}AbCdEfGh12",
    "spec-unknown-field": f"Pw-{C[6]}-zz",
    "description-token": f"ghp_{C[7]}0123456789abcdefghij",
    "vault-userinfo": f"{C[8]}pw",
    "config-url": f"{C[9]}pw",
    "config-token": f"{C[10]}f3a9c1d7e5b2a8c4d6",
    "declared-default": f"Pw-{C[11]}-default",
    "project-layer": f"{C[12]}Zq81LmNp0Xr",
    "import-dotenv": f"sk_live_{C[13]}AbCdEfGh12",
    "import-secret": f"{C[14]}-from-a-secret",
    "scan-input": f"ghp_{C[15]}0123456789abcdefghij",
    "preview": f"{C[16]}-preview-value",
    # 17-19: the plan test's generated and secure values
    "fleet-layer": f"{C[20]}Qz7pW",
    "prod-overlay": f"ghp_{C[21]}9876543210zyxwvutsrq",
    "broken-catalog-file": f"hvs.{C[22]}ZyXwVuTsRq",
    "base-spec": f"sk_live_{C[23]}ZyXwVuTs98",
}
CANARIES = list(CORES.values())


def plant(project: Path) -> None:
    def stack(config):  # services under configplane:services land in services/<svc>/dev.yaml
        config["configplane:apiDbPassword"] = {"secure": PLANTS["secure-plaintext"]}
        config["configplane:paymentsApiKey"] = PLANTS["declared-plaintext"]
        config["vault:token"] = PLANTS["vault-token"]
        config["aws:secretKey"] = PLANTS["aws-secret-key"]
        platform = config["configplane:platform"]
        platform["vault"]["address"] = (f"https://admin:{PLANTS['vault-userinfo']}"
                                        "@vault.dev.shop.internal:8200")
        api = config["configplane:services"]["api"]
        api["secrets"]["STRIPE_KEY"] = PLANTS["pasted-spec"]
        api["secrets"]["DATABASE_PASSWORD"]["password"] = PLANTS["spec-unknown-field"]
        api["secrets"]["SESSION_SIGNING_KEY"] = {
            "description": f"rotate with {PLANTS['description-token']}"}
        api["config"]["DATABASE_URL"] = f"postgres://api:{PLANTS['config-url']}@db.internal/shop"
        config["configplane:services"]["worker"]["config"]["API_TOKEN"] = PLANTS["config-token"]
        config["configplane:services"]["web"]["config"]["SMTP_PASSWORD"] = "${SMTP_PASSWORD}"

    def project_file(config):  # services under defaults land in services/<svc>/service.yaml
        config["configplane:apiDbPassword"]["default"] = PLANTS["declared-default"]
        services = config["configplane:defaults"]["value"]["services"]
        services["web"]["config"]["SMTP_PASSWORD"] = PLANTS["project-layer"]  # overridden
        services["worker"]["secrets"]["PARTNER_KEY"] = PLANTS["base-spec"]  # pasted string

    def prod(config):
        config["configplane:services"]["api"].setdefault("config", {})["GITHUB_TOKEN"] = \
            PLANTS["prod-overlay"]

    def fleet(doc):
        doc["service"] = {"config": {
            "SENTRY_DSN": f"https://ingest:{PLANTS['fleet-layer']}@sentry.shop.internal/1"}}

    edit_stack(project, "dev", stack)
    edit_project(project, project_file)
    edit_stack(project, "prod", prod)
    edit_yaml(project / "services/defaults.yaml", fleet)
    # a catalog file that does not parse, a secret on the line the parser stops at
    (project / "services/ledger").mkdir()
    (project / "services/ledger/dev.yaml").write_text(
        f"config:\n  VAULT_TOKEN: [{PLANTS['broken-catalog-file']}\n")


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory) -> Path:
    project = copy_project(tmp_path_factory.mktemp("poisoned") / "project", policies=True)
    plant(project)
    return project


@pytest.fixture(scope="module")
def legacy(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("legacy")
    (folder / "billing.env").write_text(
        f"LOG_LEVEL=info\nPORT=3000\nAPI_BASE_URL=https://api.example.com\n"
        f"STRIPE_API_KEY={PLANTS['import-dotenv']}\n")
    import base64
    encoded = base64.b64encode(PLANTS["import-secret"].encode()).decode()
    (folder / "billing.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: billing-secrets}\n"
        f"data:\n  WEBHOOK_SIGNING_SECRET: {encoded}\n")
    return folder


EXPLAIN = [
    ("api", "secrets"), ("api", "STRIPE_KEY"), ("api", "secrets.STRIPE_KEY"),
    ("api", "secrets.DATABASE_PASSWORD"), ("api", "secrets.DATABASE_PASSWORD.password"),
    ("api", "secrets.SESSION_SIGNING_KEY"), ("api", "secrets.SESSION_SIGNING_KEY.description"),
    ("api", "config.DATABASE_URL"), ("api", "DATABASE_URL"), ("api", "config"),
    ("worker", "API_TOKEN"), ("worker", "config"), ("web", "SMTP_PASSWORD"),
    ("worker", "PARTNER_KEY"), ("worker", "secrets"), ("api", "SENTRY_DSN"),
    ("web", "config.SENTRY_DSN"),
]


def test_every_command_on_the_poisoned_project_leaks_nothing(poisoned, legacy, tmp_path):
    p = str(poisoned)
    runs = [
        cli("validate", "--stack", "dev", "--project-dir", p),
        cli("validate", "--stack", "dev", "--project-dir", p, "--format", "json"),
        cli("plan", "--stack", "dev", "--project-dir", p, "--format", "json",
            "--out", str(tmp_path / "out")),
        cli("plan", "--stack", "dev", "--project-dir", p, "--no-policy"),
        cli("diff", "--stack", "dev", "--stack", "prod", "--project-dir", p),
        cli("import", "billing", "--stack", "dev", "--from", str(legacy / "billing.env"),
            "--from", str(legacy / "billing.yaml"), "--app-schema", "http-api",
            "--owner", "@shop/billing", "--project-dir", p),
        cli("import", "billing", "--stack", "dev", "--from", str(legacy / "billing.env"),
            "--from", str(legacy / "billing.yaml"), "--app-schema", "http-api",
            "--owner", "@shop/billing", "--project-dir", p, "--format", "json"),
    ]
    for fmt in ("table", "json"):  # the catalog's own verbs, and one service's view
        runs += [
            cli("validate", "--stack", "prod", "--project-dir", p, "--format", fmt),
            cli("validate", "--stack", "dev", "--service", "api", "--project-dir", p,
                "--format", fmt),
            cli("flags", "--stack", "dev", "--project-dir", p, "--format", fmt),
            cli("explain", "--stack", "prod", "api", "GITHUB_TOKEN", "--project-dir", p,
                "--format", fmt),
        ]
    runs += [
        cli("plan", "--stack", "dev", "--service", "worker", "--project-dir", p,
            "--format", "json", "--no-policy"),
        cli("codeowners", "--project-dir", p),
        cli("migrate", "--project-dir", p),
    ]
    for service, path in EXPLAIN:
        for fmt in ("table", "json"):
            runs.append(cli("explain", "--stack", "dev", service, path, "--project-dir", p,
                            "--format", fmt))
    for run in runs:
        assert_clean(run, CANARIES)
    by_verb = {r.args[0]: r for r in runs}
    assert by_verb["validate"].code == 1 and by_verb["plan"].code == 1
    assert [r.code for r in runs if r.args[:3] == ("validate", "--stack", "prod")] == [1, 1]
    assert not (tmp_path / "out").exists()  # an invalid stack writes nothing
    # explain answered (exit 0) about every planted secret, without its value
    assert all(r.code == 0 for r in runs if r.args[0] == "explain"), \
        [(r.args, r.stderr) for r in runs if r.args[0] == "explain" and r.code]


def test_validate_names_every_planted_mistake_without_its_value(poisoned):
    run = cli("validate", "--stack", "dev", "--project-dir", str(poisoned), "--format", "json")
    errors = {(e["file"], e["path"]) for e in json.loads(run.stdout)["errors"]}
    assert {
        ("services/defaults.yaml", "services.api.config.SENTRY_DSN"),  # the fleet layer
        ("services/worker/service.yaml", "services.worker.secrets.PARTNER_KEY"),
        ("services/ledger/dev.yaml", "services.ledger"),  # does not parse
    } <= errors, errors
    assert {
        ("Pulumi.dev.yaml", "config.configplane:apiDbPassword"),  # plaintext under secure
        ("Pulumi.dev.yaml", "config.configplane:paymentsApiKey"),  # declared secret, plaintext
        ("Pulumi.yaml", "config.configplane:apiDbPassword"),  # default on a secret declaration
        ("Pulumi.dev.yaml", "config.vault:token"),
        ("Pulumi.dev.yaml", "config.aws:secretKey"),
        ("services/api/dev.yaml", "services.api.secrets.STRIPE_KEY"),  # pasted string
        ("services/api/dev.yaml", "services.api.secrets.DATABASE_PASSWORD.password"),
        ("Pulumi.dev.yaml", "platform.vault.address"),
        ("services/api/dev.yaml", "services.api.config.DATABASE_URL"),
        ("services/worker/dev.yaml", "services.worker.config.API_TOKEN"),
    } <= errors, errors
    assert_clean(run, CANARIES)
    prod = cli("validate", "--stack", "prod", "--project-dir", str(poisoned), "--format", "json")
    assert ("services/api/prod.yaml", "services.api.config.GITHUB_TOKEN") in {
        (e["file"], e["path"]) for e in json.loads(prod.stdout)["errors"]}
    assert_clean(prod, CANARIES)


def test_the_project_layer_and_descriptions_are_checked_once_the_stack_parses(tmp_path):
    project = copy_project(tmp_path / "project")

    def stack(config):
        api = config["configplane:services"]["api"]
        api["secrets"]["SESSION_SIGNING_KEY"] = {
            "description": f"rotate with {PLANTS['description-token']}"}

    def project_file(config):
        web = config["configplane:defaults"]["value"]["services"]["web"]
        web["config"]["SMTP_PASSWORD"] = PLANTS["project-layer"]

    edit_stack(project, "dev", stack)
    edit_project(project, project_file)
    run = cli("validate", "--stack", "dev", "--project-dir", str(project), "--format", "json")
    errors = {(e["file"], e["path"]) for e in json.loads(run.stdout)["errors"]}
    assert errors == {
        ("services/api/dev.yaml", "services.api.secrets.SESSION_SIGNING_KEY.description"),
        ("services/web/service.yaml", "services.web.config.SMTP_PASSWORD"),
    }
    assert_clean(run, CANARIES)
    for service, path in (("api", "secrets.SESSION_SIGNING_KEY"), ("web", "SMTP_PASSWORD"),
                          ("api", "secrets.SESSION_SIGNING_KEY.description")):
        assert_clean(cli("explain", "--stack", "dev", service, path, "--project-dir",
                         str(project), "--format", "json"), CANARIES)


def test_import_output_and_the_files_it_writes_hold_no_input_secret(legacy, tmp_path):
    project = copy_project(tmp_path / "project")
    run = cli("import", "billing", "--stack", "dev", "--from", str(legacy / "billing.env"),
              "--from", str(legacy / "billing.yaml"), "--app-schema", "web-frontend",
              "--owner", "@shop/billing", "--project-dir", str(project), "--write")
    assert_clean(run, CANARIES)
    assert run.code == 0, run.text
    assert "# wrote services/billing/service.yaml:" in run.stdout
    assert "# declared in Pulumi.yaml, under config:" in run.stdout
    assert not [c for c in CANARIES if c in files_text(project)]


def test_scan_prints_no_value(tmp_path):
    source = tmp_path / "pairs.jsonl"
    source.write_text(json.dumps({"id": "1", "key": "GITHUB_TOKEN",
                                  "value": PLANTS["scan-input"]}) + "\n")
    run = cli("scan", "--jsonl", str(source))
    assert_clean(run, CANARIES)
    assert json.loads(run.stdout)["secret"] is True


def test_drift_report_prints_no_value(tmp_path):
    document = json.loads((REPO / "tests/fixtures/preview/config-change.json").read_text())
    for step in document["steps"]:
        for state in ("oldState", "newState"):
            if step.get(state) and step[state].get("type", "").endswith("ConfigMap"):
                step[state].setdefault("inputs", {})["data"] = {"API_TOKEN": PLANTS["preview"]}
    path = tmp_path / "preview.json"
    path.write_text(json.dumps(document))
    for fmt in ("json", "markdown"):
        assert_clean(cli("drift-report", str(path), "--format", fmt), CANARIES, codes=(0, 1, 7))


class CanaryMocks(PlanMocks):
    def generated_value(self, name: str) -> str:
        return f"gen-{CORES[17]}-{name}"


def test_plan_json_out_files_and_pack_messages_hold_no_secure_or_generated_value(tmp_path):
    secure = {"configplane:apiDbPassword": f"db-{CORES[18]}",
              "configplane:paymentsApiKey": f"pay-{CORES[19]}"}
    from configplane.inputs import read_stack_files
    from configplane.validation import load_stack
    model = load_stack(read_stack_files(REPO, "dev"))
    plan = run_plan(REPO, "dev", one_stack=True, secure_values=secure, mocks=CanaryMocks(model), policy=True)
    # the values did reach the resources (as secrets), so the search below can fail
    raw = json.dumps([r.inputs for r in plan.resources] + [r.outputs for r in plan.resources],
                     default=str)
    assert CORES[18] in raw and CORES[19] in raw and CORES[17] in raw
    document = json.dumps(plan.as_dict(Redactor()))
    write_out(plan, tmp_path / "out", Redactor())
    violations = json.dumps(plan.violations)
    for text in (document, files_text(tmp_path / "out"), violations):
        assert not [c for c in CANARIES if c in text]
    assert json.loads(document)["violations"] == []


# --- secrets used as names, and foreign text (issue 18) -------------------------------------
# Vendor-format tokens (the detector knows them by their shape), each with its own canary core.
_FILL = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"


def github_token(core: str) -> str:
    return "ghp_" + (core + _FILL)[:36]


def aws_key_id(core: str) -> str:
    return "AKIA" + (core.upper() + "Q7RZ5M2XK9P4W3NB")[:16]


def stripe_key(core: str) -> str:
    return "sk_live_" + (core + _FILL)[:24]


NAME_PLANTS = {
    "tenant": aws_key_id(C[1][4:]),  # an AWS key id as a tenant name
    "flag": github_token(C[2]),  # a GitHub token as a flag name
    "owner-team": github_token(C[3]),  # ... as an owner (@org/<token>)
    "secret-name": stripe_key(C[4]),  # a Stripe key as a secret's name
    "grant-value": f"Pw-{C[5]}-grant",  # a value pasted inside dynamic.grants
}
NAME_CANARIES = list(NAME_PLANTS.values())


def test_the_name_canaries_have_their_vendors_shape():
    """Else the tests below would pass by planting nothing the detector knows."""
    tokens = [v for k, v in NAME_PLANTS.items() if k != "grant-value"]
    tokens += [v for k, v in FOREIGN.items() if k != "dsn-password"]
    assert all(detect_name(token) for token in tokens), [t for t in tokens if not detect_name(t)]


def plant_names(project: Path) -> None:
    def worker(doc):
        doc.setdefault("tenants", {})[NAME_PLANTS["tenant"]] = {"config": {}}

    def web(doc):
        doc["flags"][NAME_PLANTS["flag"]] = {"state": "ENABLED", "defaultVariant": "on",
                                             "variants": {"on": True, "off": False}}
        doc["owners"] = [f"@shop/{NAME_PLANTS['owner-team']}"]
        doc["secrets"][NAME_PLANTS["secret-name"]] = {"source": "generated", "store": "vault",
                                                      "length": 32}

    def api(doc):
        doc.setdefault("secrets", {})["ORDERS_DB"] = {
            "source": "dynamic", "dynamic": {"connection": "shop", "grants": [
                {"schema": "public", "tables": ["orders"], "privileges": ["SELECT"],
                 "value": NAME_PLANTS["grant-value"]}]}}

    edit_yaml(project / "services/worker/dev.yaml", worker)
    edit_yaml(project / "services/web/service.yaml", web)
    edit_yaml(project / "services/api/dev.yaml", api)


def test_secrets_used_as_names_reach_no_output_and_no_written_file(tmp_path):
    project = copy_project(tmp_path / "project", policies=True)
    plant_names(project)
    before = files_text(project)
    assert all(c in before for c in NAME_CANARIES)  # planted, so the search below can fail
    p = str(project)
    runs = []
    for fmt in ("table", "json"):
        runs += [cli("validate", "--stack", "dev", "--project-dir", p, "--format", fmt),
                 cli("flags", "--stack", "dev", "--project-dir", p, "--format", fmt),
                 cli("diff", "--stack", "dev", "--stack", "prod", "--project-dir", p,
                     "--format", fmt)]
        for service, path in (("web", "flags"), ("web", "secrets"), ("worker", "tenants"),
                              ("web", "owners"), ("api", "secrets.ORDERS_DB"),
                              ("api", "secrets.ORDERS_DB.dynamic.grants"), ("worker", "config")):
            runs.append(cli("explain", "--stack", "dev", service, path, "--project-dir", p,
                            "--format", fmt))
    runs += [cli("plan", "--stack", "dev", "--project-dir", p, "--format", "json", "--no-policy",
                 "--out", str(tmp_path / "out")),
             cli("codeowners", "--project-dir", p), cli("codeowners", "--project-dir", p, "--write"),
             cli("migrate", "--project-dir", p)]
    for run in runs:
        assert_clean(run, NAME_CANARIES)
    validate = json.loads(next(r for r in runs if r.args[0] == "validate" and "json" in r.args)
                          .stdout)["errors"]
    named = [e for e in validate if "a name that looks like a credential" in e["message"]]
    assert {e["file"] for e in named} == {"services/web/service.yaml", "services/worker/dev.yaml"}
    assert len(named) == 4, named  # tenant, flag, owner, secret name: each once, by path
    codeowners = [r for r in runs if r.args[0] == "codeowners"]
    assert [r.code for r in codeowners] == [1, 1]
    assert "owners[0] looks like a credential" in codeowners[0].stderr
    explained = [r for r in runs if r.args[0] == "explain"]
    assert all(r.code == 0 for r in explained), [(r.args, r.stderr) for r in explained if r.code]
    # nothing was written that holds a canary (CODEOWNERS refused, plan invalid: no --out)
    assert not (project / ".github").exists() and not (tmp_path / "out").exists()
    assert files_text(project) == before


def test_import_writes_no_value_the_stack_holds_as_a_secret_and_no_secret_name(tmp_path):
    project = copy_project(tmp_path / "project")
    known = f"Pw-{C[6]}-known"

    def stack(config):
        config["configplane:paymentsApiKey"] = known  # declared secret, plaintext: a secret

    edit_stack(project, "dev", stack)
    source = tmp_path / "in.env"
    source.write_text(f"LOG_LEVEL=info\nUPSTREAM_HOST={known}\n"
                      f"SENTRY_DSN=https://{C[7]}@o1.ingest.sentry.io/1\n")
    # the dry run prints the files import would write (--write writes nothing here: validate
    # rejects a stack holding a declared secret in plaintext)
    before = files_text(project)
    runs = [cli("import", "billing", "--stack", "dev", "--from", str(source), "--app-schema",
                "worker", "--owner", "@shop/billing", "--project-dir", str(project), *write,
                "--format", "json") for write in ((), ("--write",))]
    for run in runs:
        assert_clean(run, [known, C[7]])
    assert files_text(project) == before
    assert runs[1].code == 1 and "nothing written" in runs[1].stderr, runs[1].text
    assert runs[0].code == 0, runs[0].text
    dry = json.loads(runs[0].stdout)
    reasons = {s["key"]: s["reason"] for s in dry["secrets"]}
    assert reasons.pop("UPSTREAM_HOST") == "a value the stack already holds as a secret"
    # validate's decision (plaintext_rules): the detector's rules and url-userinfo
    assert reasons.pop("SENTRY_DSN").startswith("looks like a secret: ") and not reasons
    config = {k: v for document in dry["files"].values() if document
              for k, v in (document.get("config") or {}).items()}
    assert config == {"LOG_LEVEL": "info"}  # the others are secrets, by reference only
    # a key that is itself a token is refused: names are written and shown
    source.write_text(f"{NAME_PLANTS['flag']}=1\n")
    before = files_text(project)
    refused = cli("import", "ledger", "--stack", "dev", "--from", str(source), "--app-schema",
                  "worker", "--owner", "@shop/ledger", "--project-dir", str(project), "--write")
    assert_clean(refused, NAME_CANARIES)
    assert refused.code == 1 and "a key looks like a credential" in refused.stderr
    assert files_text(project) == before


FOREIGN = {
    "diagnostic": github_token(C[8]),
    "policy-message": stripe_key(C[9]),
    "urn-name": aws_key_id(C[10][4:]),
    "listing-name": github_token(C[11]),
    "listing-kind": stripe_key(C[12]),
    "manifest-name": github_token(C[13]),
    "scan-id": github_token(C[14]),
    "dsn-password": f"{C[15]}pw9",
}
FOREIGN_CANARIES = list(FOREIGN.values())


def test_foreign_text_passes_the_detector_before_any_output(tmp_path):
    document = json.loads((REPO / "tests/fixtures/preview/config-change.json").read_text())
    document.setdefault("diagnostics", []).append(
        {"severity": "error", "message": f"refused: token {FOREIGN['diagnostic']} and "
                                         f"postgres://app:{FOREIGN['dsn-password']}@db/x"})
    urn = f"urn:pulumi:dev::configplane::kubernetes:core/v1:ConfigMap::{FOREIGN['urn-name']}"
    document["steps"].append({"op": "create", "urn": urn, "newState": {
        "type": "kubernetes:core/v1:ConfigMap", "inputs": {}}})
    (tmp_path / "preview.json").write_text(json.dumps(document))
    (tmp_path / "events.jsonl").write_text(json.dumps({"sequence": 1, "policyEvent": {
        "policyPackName": "configplane", "policyName": "no-plaintext-secrets",
        "enforcementLevel": "mandatory", "resourceUrn": urn,
        "message": f"data.API_KEY holds {FOREIGN['policy-message']}"}}) + "\n")
    runs = [cli("drift-report", str(tmp_path / "preview.json"), "--events",
                str(tmp_path / "events.jsonl"), "--format", fmt) for fmt in ("markdown", "json")]
    listing = {"kind": "List", "items": [
        {"kind": FOREIGN["listing-kind"], "metadata": {"name": "x"}},
        {"kind": "ConfigMap", "metadata": {"name": FOREIGN["listing-name"], "namespace": "api"}}]}
    (tmp_path / "cms.json").write_text(json.dumps(listing))
    listing["items"] = listing["items"][1:]
    (tmp_path / "cms2.json").write_text(json.dumps(listing))
    for name in ("cms.json", "cms2.json"):
        runs += [cli("prune", "--stack", "dev", "--configmaps", str(tmp_path / name)),
                 cli("rollback", "api", "--stack", "dev", "--configmaps", str(tmp_path / name))]
    (tmp_path / "m.yaml").write_text(
        f"kind: ConfigMap\nmetadata: {{name: {FOREIGN['manifest-name']}}}\nbinaryData: 5\n")
    runs.append(cli("import", "billing", "--stack", "dev", "--from", str(tmp_path / "m.yaml"),
                    "--app-schema", "worker", "--owner", "@shop/billing"))
    runs.append(cli("scan", "--jsonl", "-", input=json.dumps(
        {"id": FOREIGN["scan-id"], "key": "LOG_LEVEL", "value": "info"}) + "\n"))
    for run in runs:
        assert_clean(run, FOREIGN_CANARIES, codes=(0, 1, 7))
    assert [r.code for r in runs[:2]] == [1, 1]  # errors and a mandatory violation
    assert "[secret]" in runs[0].stdout and "[secret]" in runs[1].stdout
    assert runs[-2].code == 1 and "binaryData is not a mapping" in runs[-2].stderr
