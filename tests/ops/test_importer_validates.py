"""`import --write` never leaves files that `validate` refuses: for any .env or manifest input
it either writes a service that validates in every stack once its secrets are set, or refuses
with one clean message and writes nothing (issue 20)."""

from __future__ import annotations

import json
import shlex
import string
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from configplane.cli.commands.import_ import command as import_command
from configplane.cli.commands.validate import command as validate_command
from tests.conftest import STACKS
from tests.ops.test_importer import dotenv_quoted, pulumi_config_set
from tests.projects import copy_project, files_text

SCHEMAS = ("http-api", "worker", "web-frontend")
# Keys the sample app schemas know, keys they do not, and keys that name secrets.
KEYS = ("LOG_LEVEL", "PORT", "DATABASE_URL", "DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME",
        "DATABASE_USER", "DATABASE_PASSWORD", "REQUEST_TIMEOUT_MS", "CORS_ALLOWED_ORIGINS",
        "QUEUE_URL", "CONCURRENCY", "RATE_LIMIT_RPS", "PAYMENTS_API_BASE_URL", "API_BASE_URL",
        "SENTRY_DSN", "STRIPE_API_KEY", "SESSION_SECRET", "FEATURE_COLOUR")
VALUES = ("info", "debug", "verbose", "8080", "08080", "-1", "true", "", "billing",
          "https://api.example.com/v2", "https://sqs.eu-west-1.amazonaws.com/111111111111/q",
          "https://k3y9Xw2Lm8Qp@o12.ingest.sentry.io/4",  # a DSN: userinfo is a credential
          "postgres://billing:Zq8vX3pL9wR2@billing-db.internal:5432/billing",
          "postgres://billing@billing-db.internal/billing", "postgres://db.internal:notaport/x",
          "sk_live_CanaryR4t6Y8u0I2o4P6a8", "Zq8vX3pL9wR2tY6uB4nM1kJ7")
EXTRA_SECRETS = {"SENTRY_DSN": VALUES[11], "STRIPE_API_KEY": VALUES[15],
                 "SESSION_SECRET": VALUES[16]}
SECRET_HINTS = ("Zq8vX3pL9wR2", "k3y9Xw2Lm8Qp", "sk_live_Canary")

keys = st.one_of(st.sampled_from(KEYS), st.from_regex(r"[A-Z][A-Z0-9_]{0,12}", fullmatch=True))
values = st.one_of(st.sampled_from(VALUES),
                   st.text(string.ascii_letters + string.digits + ":/@._-", max_size=24))


def run(command, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(command, list(args))
    return result.exit_code, result.output


def write_inputs(folder: Path, env: dict[str, str], configmap: dict[str, str],
                 secret: dict[str, str]) -> list[str]:
    folder.mkdir()
    sources = []
    if env:
        (folder / "app.env").write_text("".join(f"{k}={dotenv_quoted(v)}\n" for k, v in env.items()))
        sources.append(str(folder / "app.env"))
    documents = [{"apiVersion": "v1", "kind": kind, "metadata": {"name": f"app-{kind.lower()}"},
                  field: data}
                 for kind, field, data in (("ConfigMap", "data", configmap),
                                           ("Secret", "stringData", secret)) if data]
    if documents:
        (folder / "app.yaml").write_text(yaml.safe_dump_all(documents))
        sources.append(str(folder / "app.yaml"))
    return sources


def import_then_validate(project: Path, sources: list[str], schema: str) -> tuple[int, str]:
    """import --write; when it wrote, set each secret as the printed commands would and
    require validate to pass in every stack. Returns import's exit code and output."""
    before = files_text(project)
    args = ["billing", "--stack", "dev", "--app-schema", schema, "--owner", "@shop/billing",
            "--project-dir", str(project), "--write", "--format", "json"]
    for source in sources:
        args += ["--from", source]
    code, output = run(import_command, *args)
    assert "Traceback" not in output
    if code != 0:
        assert code == 1 and output.startswith("error: "), output
        assert files_text(project) == before  # nothing written
        return code, output
    for line in json.loads(output)["commands"]:
        consumer = shlex.split(line.split(" | ")[1])  # the stack: the service's shard's
        pulumi_config_set(project, consumer[consumer.index("--stack") + 1], consumer[4])
    for stack in STACKS:
        code_v, report = run(validate_command, "--stack", stack, "--project-dir", str(project),
                             "--format", "json")
        assert code_v == 0, (stack, report)
    return code, output


entries = st.dictionaries(keys, values, max_size=6)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schema=st.sampled_from(SCHEMAS), env=entries, configmap=entries, secret=entries)
def test_import_writes_only_what_validate_accepts(tmp_path_factory, schema, env, configmap, secret):
    root = tmp_path_factory.mktemp("import")
    project = copy_project(root / "project")
    sources = write_inputs(root / "inputs", env, configmap, secret)
    if not sources:
        return
    code, output = import_then_validate(project, sources, schema)
    if code == 1:
        for hint in SECRET_HINTS:  # a refusal quotes no value
            assert hint not in output


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
       password=st.text(string.ascii_letters + string.digits + "!$%&*+,;=@:/?#", min_size=12,
                        max_size=30),
       port=st.integers(1, 65535), level=st.sampled_from(["debug", "info", "warn", "error"]),
       extra=st.sets(st.sampled_from(sorted(EXTRA_SECRETS))))
def test_a_complete_service_imports_and_validates(tmp_path_factory, user, password, port, level,
                                                  extra):
    """What an http-api service's .env holds (a DATABASE_URL with its password, a Sentry DSN,
    API keys) imports cleanly: the URL becomes the database secret's `database` and password,
    the DSN a secret (the decision validate makes), and every stack validates."""
    from urllib.parse import quote

    root = tmp_path_factory.mktemp("complete")
    project = copy_project(root / "project")
    assume(password not in files_text(project))  # text the project holds already proves nothing
    url = f"postgres://{user}:{quote(password, safe='')}@db.internal:{port}/{user}"
    sources = write_inputs(root / "inputs", {"LOG_LEVEL": level, "PORT": "8080",
                                             "DATABASE_URL": url,
                                             **{k: EXTRA_SECRETS[k] for k in extra}}, {}, {})
    code, output = import_then_validate(project, sources, "http-api")
    assert code == 0, output
    document = json.loads(output)
    secrets = document["section"]["billing"]["secrets"]
    assert secrets["DATABASE_PASSWORD"]["database"] == {"username": user, "host": "db.internal",
                                                        "port": port, "dbname": user}
    assert sorted(secrets) == sorted({"DATABASE_PASSWORD", *extra})
    # the password piped into `pulumi config set` is the URL's, decoded
    producer = shlex.split(next(c for c in document["commands"] if "DATABASE_PASSWORD" in c
                                ).split(" | ")[0])
    emitted = run(import_command, *producer[2:])
    assert emitted == (0, password + "\n")
    assert password not in files_text(project)


# A service's own schema (services/<name>/schema.json): keys of its own, typed, and a key of
# its kind narrowed (CONCURRENCY is an integer of the kind, at most 32 for this service).
WORKER_SCHEMA = {"properties": {"BATCH_SIZE": {"type": "integer", "minimum": 1, "maximum": 500},
                                "DRY_RUN": {"type": "boolean"},
                                "REGION_LABEL": {"type": "string", "pattern": "^[a-z]+$"},
                                "CONCURRENCY": {"maximum": 32}}}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.integers(-2, 520), dry_run=st.sampled_from(["true", "false"]),
       region=st.sampled_from(["eu", "west", "north", "EU", "eu-1"]),
       concurrency=st.integers(0, 40))
@example(batch=10, dry_run="true", region="eu", concurrency=8)  # valid: written and typed
@example(batch=10, dry_run="false", region="eu", concurrency=33)  # the service's narrowing
def test_import_types_and_checks_keys_by_the_services_own_schema(tmp_path_factory, batch,
                                                                 dry_run, region, concurrency):
    """Importing into a service with its own schema: its keys are typed as that schema says
    (`BATCH_SIZE=10` is the integer 10, also for a kind key it narrows) and the import writes
    exactly when the values satisfy the kind and the service's schema together; when it
    writes, every stack validates."""
    root = tmp_path_factory.mktemp("own-schema")
    project = copy_project(root / "project")
    (project / "services/worker/schema.json").write_text(json.dumps(WORKER_SCHEMA))
    (project / "services/worker/dev.yaml").unlink()  # the import writes the dev overlay
    kind = json.loads((project / "schemas/services/worker.schema.json").read_text())
    bounds = kind["properties"]["CONCURRENCY"]
    valid = (1 <= batch <= 500 and region.isalpha() and region.islower()
             and bounds.get("minimum", concurrency) <= concurrency <= min(32, bounds.get(
                 "maximum", concurrency)))
    inputs = root / "worker.env"
    inputs.write_text(f"QUEUE_URL=https://sqs.eu-west-1.amazonaws.com/111111111111/q\n"
                      f"BATCH_SIZE={batch}\nDRY_RUN={dry_run}\nREGION_LABEL={region}\n"
                      f"CONCURRENCY={concurrency}\n")
    before = files_text(project)
    code, output = run(import_command, "worker", "--stack", "dev", "--from", str(inputs),
                       "--project-dir", str(project), "--write", "--format", "json")
    assert "Traceback" not in output
    assert code == (0 if valid else 1), output
    if not valid:
        assert files_text(project) == before
        return
    written = yaml.safe_load((project / "services/worker/dev.yaml").read_text())["config"]
    assert written["BATCH_SIZE"] == batch and written["DRY_RUN"] == (dry_run == "true")
    assert written.get("CONCURRENCY", 4) == concurrency  # 4: the base's, not repeated
    assert not any("not in app schema" in note for note in json.loads(output)["notes"])
    for stack in STACKS:
        code_v, report = run(validate_command, "--stack", stack, "--project-dir", str(project),
                             "--format", "json")
        assert code_v == 0, (stack, report)
