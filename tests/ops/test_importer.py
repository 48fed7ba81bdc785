"""`configplane import`: adopt .env files and ConfigMap/Secret manifests, secrets moved out."""

from __future__ import annotations

import base64
import difflib
import json
import os
import pty
import select
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from configplane.cli.commands.import_ import command as import_command
from configplane.cli.commands.validate import command as validate_command
from configplane.offline import run_plan
from configplane.ops import (
    ImportProblem,
    add_declarations,
    add_grants,
    config_key_for,
    read_dotenv,
    read_input,
)
from configplane.ops.importer.proposal import _typed
from tests.projects import REPO, files_text

# Canaries: each one is a secret value that must never reach a project file or any output.
STRIPE = "sk_live_CanaryR4t6Y8u0I2o4P6a8"  # the detector's vendor rules flag it (.env)
SMTP = "canary-smtp-Qw3Er5Ty7Ui9"  # a password-named key in a ConfigMap: the detector flags it
DB_PASSWORD = "canary-db-Zx1Cv3Bn5Mm7"  # a Secret manifest's key: always a secret
WEBHOOK = "canary-whsec-Lk8Jh6Gf4Ds2"  # Secret stringData
CANARIES = (STRIPE, SMTP, DB_PASSWORD, WEBHOOK)

DOTENV = f"""# billing, as it ran on the old VM
export LOG_LEVEL=info
PORT=8080
DATABASE_HOST="billing-db.internal"   # primary
STRIPE_API_KEY={STRIPE}
DATABASE_USER=billing
"""

MANIFESTS = f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: billing-config
data:
  DATABASE_PORT: "5432"
  DATABASE_NAME: billing
  REQUEST_TIMEOUT_MS: "3000"
  SMTP_PASSWORD: {SMTP}
---
apiVersion: v1
kind: Secret
metadata:
  name: billing-secrets
type: Opaque
data:
  DATABASE_PASSWORD: {base64.b64encode(DB_PASSWORD.encode()).decode()}
stringData:
  WEBHOOK_SIGNING_SECRET: {WEBHOOK}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: billing
"""

SECRETS = {  # key -> config key
    "STRIPE_API_KEY": "billingStripeApiKey",
    "SMTP_PASSWORD": "billingSmtpPassword",
    "DATABASE_PASSWORD": "billingDatabasePassword",
    "WEBHOOK_SIGNING_SECRET": "billingWebhookSigningSecret",
}
OWNER = "@shop/billing-team"
VALUES = {"STRIPE_API_KEY": STRIPE, "SMTP_PASSWORD": SMTP, "DATABASE_PASSWORD": DB_PASSWORD,
          "WEBHOOK_SIGNING_SECRET": WEBHOOK}


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    """The inputs, outside the project (they hold plaintext; the project never may)."""
    folder = tmp_path / "legacy"
    folder.mkdir()
    (folder / "billing.env").write_text(DOTENV)
    (folder / "billing.yaml").write_text(MANIFESTS)
    return folder


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(import_command, list(args))
    return result.exit_code, result.output


def import_billing(project: Path, legacy: Path, *extra: str, fmt: str = "json") -> tuple[int, str]:
    return invoke("billing", "--stack", "dev", "--from", str(legacy / "billing.env"),
                  "--from", str(legacy / "billing.yaml"), "--app-schema", "http-api",
                  "--owner", OWNER, "--project-dir", str(project), "--format", fmt, *extra)


def run_validate(project: Path, stack: str) -> tuple[int, list[dict]]:
    result = CliRunner().invoke(validate_command, ["--stack", stack, "--project-dir", str(project),
                                                   "--format", "json"])
    return result.exit_code, json.loads(result.output)["errors"]


def merge(base: dict, overlay: dict) -> dict:
    """Two catalog layers deep-merged (objects merge; anything else replaces)."""
    out = dict(base)
    for key, value in overlay.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


def pulumi_config_set(project: Path, stack: str, key: str) -> None:
    """What `pulumi config set --secret` leaves in the stack file: ciphertext, never plaintext
    (a shard stack's file is created by its first value)."""
    path = project / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        path.write_text("config:\n")
    path.write_text(path.read_text().replace(
        "config:\n", f"config:\n  {key}:\n    secure: AAABAJ3Eo1MsX1c2ZmFrZS1jaXBoZXJ0ZXh0\n", 1))


def test_round_trip_import_write_plan(project, legacy):
    before_project_file = (project / "Pulumi.yaml").read_text()
    code, output = import_billing(project, legacy, "--write")
    assert code == 0, output
    document = json.loads(output)
    assert document["written"] == ["services/billing/service.yaml", "services/billing/dev.yaml",
                                   "services/billing/prod.yaml", "services/billing/staging.yaml",
                                   "Pulumi.yaml"]
    assert document["problems"] == []
    assert document["section"] == {"billing": {
        "owners": [OWNER],
        "app_schema": "http-api",
        # the connection facts move into the password's `database`: the pod gets them whole
        "config": {"LOG_LEVEL": "info", "PORT": 8080, "REQUEST_TIMEOUT_MS": 3000},
        "secrets": {
            "STRIPE_API_KEY": {"source": "secure", "store": "vault",
                               "config_key": "billingStripeApiKey",
                               "description": "imported from billing.env line 5"},
            "SMTP_PASSWORD": {"source": "secure", "store": "vault",
                              "config_key": "billingSmtpPassword",
                              "description": "imported from billing.yaml: ConfigMap billing-config"},
            "DATABASE_PASSWORD": {"source": "secure", "store": "aws",
                                  "config_key": "billingDatabasePassword",
                                  "description": "imported from billing.yaml: Secret billing-secrets",
                                  "database": {"host": "billing-db.internal", "port": 5432,
                                               "dbname": "billing", "username": "billing"}},
            "WEBHOOK_SIGNING_SECRET": {"source": "secure", "store": "vault",
                                       "config_key": "billingWebhookSigningSecret",
                                       "description": "imported from billing.yaml: Secret "
                                                      "billing-secrets"},
        },
    }}
    # The base holds what is the same everywhere; the overlay what the parity rules say
    # differs per environment (LOG_LEVEL, the database host); the other stacks get `null`
    # until the service is imported there. Base and overlay merge to the section, exactly.
    catalog = project / "services" / "billing"
    base = yaml.safe_load((catalog / "service.yaml").read_text())
    overlay = yaml.safe_load((catalog / "dev.yaml").read_text())
    assert overlay == {"config": {"LOG_LEVEL": "info"},
                       "secrets": {"DATABASE_PASSWORD": {"database": {"host": "billing-db.internal"}}}}
    assert merge(base, overlay) == document["section"]["billing"]
    for stack in ("staging", "prod"):
        assert yaml.safe_load((catalog / f"{stack}.yaml").read_text()) is None
        assert run_validate(project, stack) == (0, [])
    reasons = {s["key"]: s["reason"] for s in document["secrets"]}
    assert reasons["DATABASE_PASSWORD"] == reasons["WEBHOOK_SIGNING_SECRET"] == "a Kubernetes Secret"
    assert reasons["STRIPE_API_KEY"].startswith("looks like a secret: ")
    assert "gitleaks:stripe-access-token" in reasons["STRIPE_API_KEY"]
    assert reasons["SMTP_PASSWORD"].startswith("looks like a secret: ")
    assert document["notes"] == [
        "billing.yaml: skipped Deployment billing (only ConfigMaps and Secrets are imported)",
        # the grant is written in Pulumi.yaml, a platform file: the platform reviews it
        "grants billingStripeApiKey, billingSmtpPassword, billingDatabasePassword, "
        "billingWebhookSigningSecret to billing in Pulumi.yaml (platform.grants.secure_keys."
        "billing): a platform file, so the platform's owners review the grant with the "
        "declarations (CODEOWNERS).",
        # dev is split into stacks: the values go to the service's shard (docs/fleet.md)
        "billing's secure values go to its shard's stack dev-billing-team, which does not "
        "exist yet: run `pulumi stack init dev-billing-team` before setting them."]

    # Pulumi.yaml: one block inserted after the existing secret declarations and the service's
    # grant inserted under the platform's grants; every other line (comments too) is kept.
    old, new = before_project_file.splitlines(), (project / "Pulumi.yaml").read_text().splitlines()
    edits = [op for op in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
             if op[0] != "equal"]
    assert [op[0] for op in edits] == ["insert", "insert"]
    at, inserted = edits[0][1], new[edits[0][3]:edits[0][4]]
    assert [line.strip() for line in new[edits[1][3]:edits[1][4]]] == [
        "billing:", *(f"- {SECRETS[k]}" for k in SECRETS)]
    assert old[at - 1] == "    description: The worker's key for the payments provider API"
    assert yaml.safe_load("\n".join(inserted)) == {
        f"configplane:{config_key}": {
            "type": "string", "secret": True,
            "description": f"{key} of the billing service (imported from "
                           + ("billing.env line 5)" if key == "STRIPE_API_KEY" else
                              "billing.yaml: ConfigMap billing-config)" if key == "SMTP_PASSWORD"
                              else "billing.yaml: Secret billing-secrets)"),
        }
        for key, config_key in SECRETS.items()
    }

    # Until the secrets are set, validation says exactly what to run, and nothing else.
    code, errors = run_validate(project, "dev")
    assert code == 1
    assert sorted(e["path"] for e in errors) == sorted(
        f"services.billing.secrets.{key}.config_key" for key in SECRETS)

    # The grants were written beside the declarations, in Pulumi.yaml (reviewed by the platform).
    platform = yaml.safe_load((project / "Pulumi.yaml").read_text())[
        "config"]["configplane:defaults"]["value"]["platform"]
    assert platform["grants"]["secure_keys"]["billing"] == [SECRETS[k] for k in SECRETS]

    # The printed commands pipe each value from its input into `pulumi config set --secret`.
    secure_values = {}
    for command in document["commands"]:
        producer, consumer = (shlex.split(part) for part in command.split(" | "))
        assert producer[:2] == ["configplane", "import"]
        assert consumer[:4] == ["pulumi", "config", "set", "--secret"]
        assert consumer[5:] == ["--stack", "dev-billing-team", "--cwd", str(project)]
        result = CliRunner().invoke(import_command, producer[2:])
        assert result.exit_code == 0
        key = consumer[4]
        secure_values[key] = result.output.removesuffix("\n")  # pulumi drops one newline
        pulumi_config_set(project, "dev-billing-team", key)
    assert secure_values == {f"configplane:{SECRETS[k]}": v for k, v in VALUES.items()}

    plan = run_plan(project, "dev", one_stack=True, secure_values=secure_values)
    resources = {r.name: r for r in plan.resources}
    configmap = resources["billing-config-config"].inputs
    assert configmap["data"] == {"LOG_LEVEL": "info", "PORT": "8080", "REQUEST_TIMEOUT_MS": "3000"}
    external = resources["billing-external-secret-external-secret"].inputs
    assert external["spec"]["data"] == [
        {"secretKey": key, "remoteRef": {"key": "billing", "property": key}}
        for key in sorted(SECRETS) if key != "DATABASE_PASSWORD"
    ]
    assert [d["extract"] for d in external["spec"]["dataFrom"]] == [
        {"key": "configplane/dev/billing/DATABASE_PASSWORD"}]

    text = files_text(project) + output + json.dumps(plan.as_dict())
    for canary in CANARIES:
        assert canary not in text


def test_printed_section_and_commands_reveal_no_value(project, legacy):
    code, output = import_billing(project, legacy, fmt="table")
    assert code == 0
    lines = output.splitlines()
    assert lines[0] == "# write to services/billing/service.yaml:"
    assert (f"configplane import --from {legacy / 'billing.env'} --emit-value STRIPE_API_KEY | "
            f"pulumi config set --secret configplane:billingStripeApiKey --stack dev-billing-team "
            f"--cwd {project}") in lines  # the value goes to the service's shard (dev is split)
    assert "#   DATABASE_PASSWORD from billing.yaml: Secret billing-secrets: a Kubernetes Secret" in lines
    for canary in CANARIES:
        assert canary not in output
    # Printing writes nothing.
    assert "billing" not in (project / "Pulumi.dev.yaml").read_text()
    assert not (project / "services" / "billing").exists()


def test_existing_service_inherits_its_schema_and_keeps_default_declarations(project, tmp_path):
    source = tmp_path / "api.env"
    source.write_text("DATABASE_POOL_SIZE=30\nDATABASE_PASSWORD=canary-x-Gh5Jk7Lm9\n")
    code, output = invoke("api", "--stack", "staging", "--from", str(source),
                          "--project-dir", str(project), "--format", "json")
    document = json.loads(output)
    assert code == 0
    # No app_schema line: api's comes from services/api/service.yaml.
    assert document["section"]["api"]["config"] == {"DATABASE_POOL_SIZE": 30}
    assert document["declarations"] == {"configplane:apiDatabasePassword": {
        "type": "string", "secret": True,
        "description": "DATABASE_PASSWORD of the api service (imported from api.env line 2)"}}
    # --write refuses: staging already has an api section to merge by hand.
    code, output = invoke("api", "--stack", "staging", "--from", str(source),
                          "--project-dir", str(project), "--write")
    assert (code, output.strip()) == (1, "error: services/api/staging.yaml already exists. Fix: "
                                         "merge the printed section by hand (run without --write).")


def test_emit_value_refuses_a_terminal(legacy):
    """Standard output a real terminal (a pseudo-terminal): the value is refused, not shown."""
    terminal, its_other_end = pty.openpty()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "configplane", "import", "--from", str(legacy / "billing.env"),
             "--emit-value", "STRIPE_API_KEY"],
            stdin=subprocess.DEVNULL, stdout=its_other_end, stderr=subprocess.PIPE, text=True,
            timeout=120)
        os.close(its_other_end)
        shown = b""
        while select.select([terminal], [], [], 0)[0]:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # EIO: the other end is closed and everything was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(terminal)
    assert run.returncode == 1
    assert run.stderr.startswith("error: refusing to print a secret value to a terminal.")
    assert STRIPE not in run.stderr and STRIPE.encode() not in shown


def test_dotenv_parsing():
    text = (
        "# comment\n\nexport A=1\nB = two words  # trailing comment\nC='single # kept'\n"
        'D="line\\nbreak \\"quoted\\""\nE="multi\nline"\nF=\nG=x#not-a-comment\n'
    )
    assert [(f.key, f.value, f.origin) for f in read_dotenv("x.env", text)] == [
        ("A", "1", "x.env line 3"),
        ("B", "two words", "x.env line 4"),
        ("C", "single # kept", "x.env line 5"),
        ("D", 'line\nbreak "quoted"', "x.env line 6"),
        ("E", "multi\nline", "x.env line 7"),
        ("F", "", "x.env line 9"),
        ("G", "x#not-a-comment", "x.env line 10"),
    ]


def test_values_are_typed_only_when_they_render_back_the_same():
    assert _typed("8080", {"type": "integer"}) == 8080
    assert _typed("08080", {"type": "integer"}) == "08080"
    assert _typed("true", {"type": "boolean"}) is True
    assert _typed("True", {"type": "boolean"}) == "True"
    assert _typed("1.5", {"type": "number"}) == 1.5
    assert _typed("1.50", {"type": "number"}) == "1.50"
    assert _typed("8080", {"type": "string"}) == "8080"
    assert _typed("8080", None) == "8080"


def test_config_key_names():
    assert config_key_for("billing", "STRIPE_API_KEY") == "billingStripeApiKey"
    assert config_key_for("web-admin", "tls.crt") == "webAdminTlsCrt"


DECLARATION = {"configplane:x": {"type": "string", "secret": True}}
X_BLOCK = "  configplane:x:\n    type: string\n    secret: true\n"


DOTENV_KEYS = st.from_regex(r"[A-Z_][A-Z0-9_]{0,11}", fullmatch=True)
DOTENV_VALUES = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                        max_size=30)


def dotenv_quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r") + '"'


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(DOTENV_KEYS, DOTENV_VALUES.filter(lambda v: not v.endswith("\\")),
                      min_size=1, max_size=5))
def test_dotenv_render_then_read_gives_the_values_back(values):
    text = "# written by the test\n\n" + "".join(
        f"{'export ' if n % 2 else ''}{key}={dotenv_quoted(value)}\n"
        for n, (key, value) in enumerate(values.items()))
    found = read_dotenv("t.env", text)
    assert {f.key: f.value for f in found} == values
    assert [f.origin for f in found] == [f"t.env line {n + 3}" for n in range(len(values))]


def test_dotenv_a_backslash_before_the_closing_quote_may_escape_it():
    # python-dotenv's grammar (configplane/ops/importer/envfile.py): a double-quoted value ending
    # in `\\` reads to the next `"` in the file when there is one. Here that is a clean error
    # naming the line; alone, or unquoted, the value is read as written.
    with pytest.raises(ImportProblem) as e:
        read_dotenv("t.env", 'A="C:\\\\"\nB="y"\n')
    assert str(e.value) == ("t.env line 1: text after the quoted value of A. Fix: quote the "
                            "whole value.")
    assert [(f.key, f.value) for f in read_dotenv("t.env", 'A="C:\\\\"\n')] == [("A", "C:\\")]
    assert [(f.key, f.value) for f in read_dotenv("t.env", "A=C:\\\nB=y\n")] == [
        ("A", "C:\\"), ("B", "y")]


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.from_regex(r"configplane:[a-z][a-zA-Z0-9]{0,15}", fullmatch=True),
                       st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=40),
                       min_size=1, max_size=3))
@example({"configplane:a": "Off", "configplane:b": "~", "configplane:c": "2026-01-02"})
@example({"configplane:a": "yes", "configplane:b": "0x1F", "configplane:c": "1_000"})
def test_declarations_added_to_the_project_file_change_nothing_else(descriptions):
    # words YAML 1.1 reads as something else (a bool, null, a number, a date) stay text
    before = (REPO / "Pulumi.yaml").read_text()
    original = yaml.safe_load(before)
    declarations = {key: {"type": "string", "secret": True, "description": text}
                    for key, text in descriptions.items() if key not in original["config"]}
    if not declarations:
        return
    after = add_declarations(before, declarations)
    old, new = before.splitlines(), after.splitlines()
    at = next((n for n, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), len(old))
    assert new[:at] + new[at + len(new) - len(old):] == old  # one block inserted, all else kept
    assert yaml.safe_load(after)["config"] == {**original["config"], **declarations}


@pytest.mark.parametrize("before, after", [
    # no config section yet: one is added at the end
    ("# new project\n", "# new project\nconfig:\n" + X_BLOCK),
    ("name: p  # the project\n", "name: p  # the project\nconfig:\n" + X_BLOCK),
    ("", "config:\n" + X_BLOCK),
    ("name: p\nconfig:\n", "name: p\nconfig:\n" + X_BLOCK),
    ("config:\n  a:b: 1", "config:\n" + X_BLOCK + "  a:b: 1\n"),  # no final newline
    # no secret declared yet: first under config
    ("name: p\nconfig:\n  a:b: 1\n", "name: p\nconfig:\n" + X_BLOCK + "  a:b: 1\n"),
    # after the last secret declaration, even one written inline
    ("config:\n  p:k: {type: string, secret: true}\n  a:b: 1\n",
     "config:\n  p:k: {type: string, secret: true}\n" + X_BLOCK + "  a:b: 1\n"),
    # the comment lines that introduced the next key still introduce it; end-of-line
    # comments, quotes and an indented list stay as written
    ("config:\n  p:k:\n    type: string\n    secret: true  # set per stack\n\n"
     "  # defaults: the lowest layer\n  a:b:\n    value: ['x', \"y\"]\n    list:\n      - 1\n",
     "config:\n  p:k:\n    type: string\n    secret: true  # set per stack\n" + X_BLOCK + "\n"
     "  # defaults: the lowest layer\n  a:b:\n    value: ['x', \"y\"]\n    list:\n      - 1\n"),
    # another indentation, kept
    ("config:\n    p:k:\n        secret: true\n        type: string\n",
     "config:\n    p:k:\n        secret: true\n        type: string\n    configplane:x:\n"
     "        type: string\n        secret: true\n"),
])
def test_declarations_are_one_inserted_block(before, after):
    assert add_declarations(before, DECLARATION) == after


@pytest.mark.parametrize("text", [
    "config: {}\n",  # a flow mapping: adding to it would rewrite the line
    "config:\n  p:k:\n    secret: true\n  a:b:\n     - 1\n",  # a layout ruamel.yaml would change
])
def test_declarations_refuse_an_edit_that_would_change_other_lines(text):
    with pytest.raises(ImportProblem) as e:
        add_declarations(text, DECLARATION)
    assert str(e.value) == ("Pulumi.yaml: could not add the declarations without changing "
                            "something else (unusual layout). Fix: add them by hand; run without "
                            "--write to print them.")


@pytest.mark.parametrize("files, extra, message", [
    ({"a.env": "LOG_LEVEL=info\n"}, ["--app-schema", "grpc-api"],
     "error: unknown app schema `grpc-api`. Fix: use one of http-api, web-frontend, worker or add "
     "schemas/services/grpc-api.schema.json."),
    ({"a.env": "LOG_LEVEL=info\n"}, [],
     "error: service `billing` is new: it needs --app-schema. Fix: use one of http-api, "
     "web-frontend, worker."),
    ({"a.env": f"LOG_LEVEL=info\nthis line is not {STRIPE}\n"}, ["--app-schema", "http-api"],
     "error: {dir}/a.env line 2: not a KEY=VALUE line. Fix: correct or comment it out."),
    ({"a.env": f'TOKEN="{STRIPE}\n'}, ["--app-schema", "http-api"],
     "error: {dir}/a.env line 1: the value of TOKEN has no closing \". Fix: close the quote."),
    ({"a.yaml": f"kind: Secret\nmetadata: {{name: s}}\ndata:\n  TOKEN: {STRIPE}!\n"},
     ["--app-schema", "http-api"],
     "error: {dir}/a.yaml: Secret s key TOKEN is not base64 of UTF-8 text. Fix: correct it, or set "
     "this secret by hand with `pulumi config set --secret`."),
    ({"a.yaml": f"kind: ConfigMap\ndata:\n  TOKEN: [{STRIPE}\n"}, ["--app-schema", "http-api"],
     "error: {dir}/a.yaml:4: not valid YAML, column 1: did not find expected ',' or ']'. Fix: "
     "correct the syntax (a YAML linter shows the spot)."),
    ({"a.env": "LOG_LEVEL=info\n", "b.env": "LOG_LEVEL=debug\n"}, ["--app-schema", "http-api"],
     "error: LOG_LEVEL is in both a.env line 1 and b.env line 1. Fix: remove one of them, or "
     "import them separately."),
])
def test_bad_input_is_a_clean_error(project, tmp_path, files, extra, message):
    args = ["billing", "--stack", "dev", "--project-dir", str(project), *extra]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        args += ["--from", str(tmp_path / name)]
    code, output = invoke(*args)
    assert (code, output.strip()) == (1, message.replace("{dir}", str(tmp_path)))
    assert STRIPE not in output


def test_missing_input_and_missing_key(tmp_path, project):
    code, output = invoke("billing", "--stack", "dev", "--from", str(tmp_path / "nope.env"),
                          "--app-schema", "http-api", "--project-dir", str(project))
    assert (code, output.strip()) == (1, f"error: {tmp_path}/nope.env: file not found. Fix: check "
                                         "the --from path.")
    (tmp_path / "a.env").write_text("A=1\n")
    code, output = invoke("--from", str(tmp_path / "a.env"), "--emit-value", "B")
    assert (code, output.strip()) == (1, f"error: B is not in {tmp_path}/a.env. Fix: check the key "
                                         "and --from.")
    code, output = invoke("--from", str(tmp_path / "a.env"))
    assert (code, output.strip()) == (1, "error: give the SERVICE and --stack to import into, e.g. "
                                         "`configplane import billing --stack dev --from billing.env`.")


def test_a_database_password_without_its_user_says_what_to_add(project, legacy):
    env = legacy / "billing.env"
    env.write_text(env.read_text().replace("DATABASE_USER=billing\n", ""))
    code, output = import_billing(project, legacy)
    assert code == 0, output
    document = json.loads(output)
    assert document["section"]["billing"]["secrets"]["DATABASE_PASSWORD"]["database"] == {
        "host": "billing-db.internal", "port": 5432, "dbname": "billing"}
    assert document["notes"][:3] == [
        "billing.yaml: skipped Deployment billing (only ConfigMaps and Secrets are imported)",
        "DATABASE_USER not found in the inputs. Fix: set services.billing.secrets."
        "DATABASE_PASSWORD.database.{host, dbname, username}.",
        "grants billingStripeApiKey, billingSmtpPassword, billingDatabasePassword, "
        "billingWebhookSigningSecret to billing in Pulumi.yaml (platform.grants.secure_keys."
        "billing): a platform file, so the platform's owners review the grant with the "
        "declarations (CODEOWNERS).",
    ]


@pytest.mark.parametrize("service, entry, existing", [
    ("shop", "VAULT_DB_PASSWORD", "configplane:shopVaultDbPassword"),  # the platform's key
    ("api", "DB_PASSWORD", "configplane:apiDbPassword"),  # the service's own, with a value
    ("payments", "API_KEY", "configplane:paymentsApiKey"),  # worker's key, by spelling
])
def test_import_never_maps_an_entry_onto_an_existing_key(project, tmp_path, service, entry,
                                                        existing):
    """An entry whose derived key exists already would receive that key's value (and the
    printed `pulumi config set` would overwrite it): refused, and nothing is written."""
    source = tmp_path / "in.env"
    source.write_text(f"{entry}=canary-Qm7Xw2Lp9Zr4\n")
    before = files_text(project)
    code, output = invoke(service, "--stack", "dev", "--from", str(source), "--store", "vault",
                          "--app-schema", "worker", "--project-dir", str(project), "--format",
                          "json", "--write", "--owner", "@shop/team")
    assert code == 1
    assert f"would become `{existing}`" in output and "import never" in output
    assert "canary-Qm7Xw2Lp9Zr4" not in output
    assert files_text(project) == before


@pytest.mark.parametrize("service, keys", [("api", ["apiNewKey"]), ("billing", ["billingA", "billingB"])])
def test_a_grant_is_added_to_pulumi_yaml_and_nothing_else_changes(service, keys):
    """Import grants the keys it declares to the service, in the platform's file: for a service
    with grants (a flow-style list) its one line is rewritten, otherwise lines are inserted."""
    text = (REPO / "Pulumi.yaml").read_text()
    result = add_grants(text, service, keys)
    before, after = yaml.safe_load(text), yaml.safe_load(result)
    grants = before["config"]["configplane:defaults"]["value"]["platform"]["grants"]["secure_keys"]
    grants[service] = grants.get(service, []) + keys
    assert after == before
    removed = [line for line in difflib.ndiff(text.splitlines(), result.splitlines())
               if line.startswith("- ")]
    assert removed == ([f"-             {service}: [apiDbPassword]"] if service == "api" else [])
    assert add_grants(result, service, keys) == result  # granted once


def test_a_grant_refuses_a_file_it_cannot_edit_cleanly():
    with pytest.raises(ImportProblem, match="not a mapping"):
        add_grants("config:\n  configplane:defaults:\n    value: [1]\n", "api", ["k"])


def test_a_byte_order_mark_is_not_part_of_the_first_key(tmp_path):
    # Windows editors start a UTF-8 file with a BOM; the first key is still LOG_LEVEL
    source = tmp_path / "app.env"
    source.write_bytes(b"\xef\xbb\xbfLOG_LEVEL=info\nPORT=8080\n")
    entries, _ = read_input(str(source))
    assert [(e.key, e.value) for e in entries] == [("LOG_LEVEL", "info"), ("PORT", "8080")]


@pytest.mark.parametrize("linked", ["Pulumi.dev.yaml", "Pulumi.yaml", "services/defaults.yaml"])
def test_a_project_file_linked_out_of_the_project_is_refused_not_followed(project, legacy, tmp_path,
                                                                         linked):
    """import reads the project's files as validate does: a link out of the project is an error
    naming the file, never followed (its target read, copied or written)."""
    outside = tmp_path / "outside.yaml"
    outside.write_bytes((project / linked).read_bytes())
    (project / linked).unlink()
    (project / linked).symlink_to(outside)
    before_outside, before = outside.read_bytes(), files_text(project)
    for extra in ((), ("--write",)):
        code, output = import_billing(project, legacy, *extra)
        assert code == 1 and output.startswith("error: ") and "Traceback" not in output, output
        assert linked in output
        assert files_text(project) == before and outside.read_bytes() == before_outside


def test_a_catalog_link_out_of_the_project_stays_a_link_in_the_import_check(project, legacy, tmp_path):
    """The import's scratch check judges the service's files as validate would: a link out of
    the project is refused there too (not copied as its target's text), and the import's own
    file replaces the link in the scratch copy, never written through it."""
    outside = tmp_path / "outside.yaml"
    outside.write_text("null\n")
    service = project / "services" / "billing"
    service.mkdir()
    (service / "dev.yaml").symlink_to(outside)
    code, output = import_billing(project, legacy, "--write")
    assert code == 1 and "Traceback" not in output, output
    assert outside.read_text() == "null\n"


HOSTILE_DOCUMENTS = ("- a\n", "{}\n", "{config: {}}\n", "config: [1]\n",
                     "config:\n  configplane:services: [1]\n", "42\n",
                     ": : :\n", "a: &a [*a]\n", "\t\x00\n", "config: {a: 1}\nconfig: {b: 2}\n",
                     "".join(f'x{i}: &a{i} [{", ".join([f"*a{i - 1}"] * 9) if i else "1"}]\n'
                             for i in range(12)),  # a billion laughs
                     "[" * 10000 + "]" * 10000 + "\n")


@pytest.mark.parametrize("document", HOSTILE_DOCUMENTS)
@pytest.mark.parametrize("file", ["Pulumi.dev.yaml", "Pulumi.yaml"])
def test_a_hostile_project_file_is_a_clean_error(project, legacy, file, document):
    """Whatever the project's own files hold, import answers with one clean error (or a
    proposal), never an internal error, and writes nothing it was not asked to."""
    (project / file).write_text(document)
    before = files_text(project)
    for extra in ((), ("--write",)):
        code, output = import_billing(project, legacy, *extra)
        assert "Traceback" not in output and "internal error" not in output, output
        assert code in (0, 1), output
        if code == 1:
            assert output.startswith("error: ") and files_text(project) == before, output
