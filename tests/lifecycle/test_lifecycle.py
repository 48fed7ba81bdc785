"""The production life cycle end to end: plan → deliver to the pod → log in → rotate → log in.

Real parts: the program (`__main__.py`, run by the offline plan harness on a copy of the
project whose prod database points at a throwaway PostgreSQL server), the rotation handler
in lambdas/rotation/ (alternating users), PostgreSQL, pg8000 as the app's driver.
Stand-ins, and for what:
- moto's Secrets Manager for AWS's (the stores are filled from the plan: each planned
  Secret's name and tags, and its SecretVersion's write-only value, exactly as planned; the
  KMS key is left out, moto does not encrypt);
- a dict for Vault's KV v2 (filled from the planned SecretV2's write-only `data_json_wo`);
- tests/lifecycle/eso.py for the External Secrets Operator: it checks the planned
  ExternalSecret against ESO's own CRD schema and evaluates the fields we use as ESO does;
- the pod's environment is the planned ConfigMap's data plus that Secret's data (`envFrom`
  both), checked against the service's app schema;
- rotate_secret is moto's, with the handler called in-process for each step (the rotation
  fixtures of tests/rotation), and the Lambda's environment taken from the planned function.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema
import pg8000.native
import pytest
from rotation_helpers import STEPS, canary

from configplane.offline import run_plan
from configplane.redaction import is_secret_wrapper
from tests.catalog_compat import edit_stack
from tests.lifecycle import eso
from tests.projects import sample_plan

ident, literal = pg8000.native.identifier, pg8000.native.literal
SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "services" / "http-api.schema.json"
CRD_SHA256 = "5044be5a610ca90a075f34f03ed20b462695c43387ba9410db7f4250e47b1e2f"


def unwrap(value: Any) -> Any:
    if is_secret_wrapper(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


class World:
    """The planned prod stack, deployed into moto, the KV stand-in and PostgreSQL."""

    def __init__(self, aws, pg, project: Path, monkeypatch):
        self.aws, self.pg = aws, pg
        suffix = uuid.uuid4().hex[:8]
        self.user, self.master, self.dbname = f"api_{suffix}", f"master_{suffix}", f"shop_{suffix}"
        self.clone = self.user + "_clone"
        self.initial = canary("INITIAL")
        master_password = canary("MASTER")
        conn = pg.admin()
        conn.run(f"CREATE ROLE {ident(self.master)} LOGIN CREATEROLE "
                 f"PASSWORD {literal(master_password)}")
        conn.run(f"CREATE ROLE {ident(self.user)} LOGIN PASSWORD {literal(self.initial)}")
        conn.run(f"GRANT {ident(self.user)} TO {ident(self.master)} WITH ADMIN OPTION")
        conn.run(f"CREATE DATABASE {ident(self.dbname)} OWNER {ident(self.user)}")
        conn.close()
        conn = pg8000.native.Connection(user=self.user, password=self.initial, host=pg.host,
                                        port=pg.port, database=self.dbname, ssl_context=False)
        conn.run("CREATE TABLE orders (id int)")  # the app's data: the clone must read it too
        conn.close()
        master_arn = aws.create_secret(json.dumps({
            "engine": "postgres", "host": pg.host, "port": pg.port, "username": self.master,
            "password": master_password}))

        def point_at_the_server(config: dict) -> None:  # services/api/prod.yaml
            db_secret = config["configplane:services"]["api"]["secrets"]["DATABASE_PASSWORD"]
            db_secret["database"] = {"host": pg.host, "port": pg.port, "dbname": self.dbname,
                                     "username": self.user}
            assert db_secret["rotation"]["strategy"] == "postgres-alternating-users"
            db_secret["rotation"]["master_secret_arn"] = master_arn

        edit_stack(project, "prod", point_at_the_server)

        plan = run_plan(project, "prod", one_stack=True,
                        secure_values={"configplane:apiDbPassword": self.initial})
        assert plan.violations == []
        self.resources = {r.name: unwrap(r.inputs) for r in plan.resources}
        by_type: dict[str, list[dict]] = {}
        for r in plan.resources:
            by_type.setdefault(r.type, []).append(unwrap(r.inputs))
        self.by_type = by_type

        # Deploy what the plan declares, as the providers would write it.
        arns = {}
        for secret in by_type["aws:secretsmanager/secret:Secret"]:
            arns[secret["name"]] = aws.sm.create_secret(
                Name=secret["name"], Description=secret["description"],
                Tags=[{"Key": k, "Value": v} for k, v in secret["tags"].items()])["ARN"]
        for version in by_type["aws:secretsmanager/secretVersion:SecretVersion"]:
            value = version["secretStringWo"]
            aws.leaks.add(value)
            # the planned ARN is `…:secret:<name>-<six random characters>`, as AWS builds it
            name = version["secretId"].split(":secret:", 1)[1].rsplit("-", 1)[0]
            aws.sm.put_secret_value(SecretId=arns[name], SecretString=value)
        self.arn = arns["configplane/prod/api/DATABASE_PASSWORD"]
        self.vault = eso.VaultKV()
        for kv in by_type["vault:kv/secretV2:SecretV2"]:
            self.vault.write(kv["mount"], kv["name"], json.loads(kv["dataJsonWo"]))
        stores = [*by_type.get("kubernetes:external-secrets.io/v1:ClusterSecretStore", []),
                  *by_type.get("kubernetes:external-secrets.io/v1:SecretStore", [])]
        self.stores = eso.Stores(stores, aws.sm, self.vault)
        (function,) = by_type["aws:lambda/function:Function"]
        for name, value in ((function.get("environment") or {}).get("variables") or {}).items():
            monkeypatch.setenv(name, value)
        self.external_secret = next(
            {k: es[k] for k in ("apiVersion", "kind", "metadata", "spec")}
            for es in by_type["kubernetes:external-secrets.io/v1:ExternalSecret"]
            if es["metadata"]["name"] == "api")
        self.configmap = self.resources["api-config-config"]["data"]

    def pod_env(self) -> dict[str, str]:
        """What the api pod gets now: its ConfigMap and its Secret, both by envFrom."""
        secret = eso.materialise(self.external_secret, self.stores)
        assert not set(secret.data) & set(self.configmap), "one key from two places"
        for key in ("DATABASE_PASSWORD", "DATABASE_URL", "SESSION_SIGNING_KEY"):
            self.aws.leaks.add(secret.data[key])  # the user, host and dbname are no secrets
        return {**self.configmap, **secret.data}


@pytest.fixture
def world(aws, pg, project, monkeypatch):
    return World(aws, pg, project, monkeypatch)


def check_schema(env: dict[str, str]) -> None:
    """The pod's environment satisfies the app schema, which governs config and the keys it
    takes from secrets (env values are strings; integers typed as the schema says). The
    service's own plain secrets (SESSION_SIGNING_KEY) are outside any kind's schema."""
    schema = json.loads(SCHEMA.read_text())
    governed = {k: v for k, v in env.items() if k != "SESSION_SIGNING_KEY"}
    typed = {k: int(v) if schema["properties"].get(k, {}).get("type") == "integer" else v
             for k, v in governed.items()}
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(typed)]
    assert len(errors) == 0, f"{len(errors)} schema errors (values not shown)"


def app_login(pg, env: dict[str, str]) -> str:
    """Log in as the app does (its DATABASE_URL), check the fields agree with it, and read
    the app's table; returns the role that logged in. Raises if the database refuses."""
    url = urlsplit(env["DATABASE_URL"])
    user, password = unquote(url.username or ""), unquote(url.password or "")
    assert (user, password, url.hostname, str(url.port), unquote(url.path[1:])) == (
        env["DATABASE_USER"], env["DATABASE_PASSWORD"], env["DATABASE_HOST"],
        env["DATABASE_PORT"], env["DATABASE_NAME"])
    conn = pg8000.native.Connection(user=user, password=password, host=url.hostname,
                                    port=url.port, database=unquote(url.path[1:]),
                                    ssl_context=False, timeout=5)
    try:
        assert conn.run("SELECT count(*) FROM orders") == [[0]]
        return conn.run("SELECT session_user")[0][0]
    finally:
        conn.close()


def refused(pg, env: dict[str, str]) -> bool:
    try:
        app_login(pg, env)
    except pg8000.native.DatabaseError as exc:
        return exc.args[0].get("C") == "28P01"  # invalid_password
    return False


# --- the CRD and the interpreter ------------------------------------------------------------


def test_vendored_crd_is_the_pinned_one_and_serves_v1_only():
    assert hashlib.sha256(eso.CRD.read_bytes()).hexdigest() == CRD_SHA256
    assert (eso.crd_served("v1"), eso.crd_served("v1beta1")) == (True, False)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_planned_external_secret_is_admitted_by_the_crd(stack):
    plan = sample_plan(stack)
    planned = [unwrap(r.inputs) for r in plan.resources
               if r.type == "kubernetes:external-secrets.io/v1:ExternalSecret"]
    # one per service with static secrets, one per dynamic login
    assert sorted(es["metadata"]["name"] for es in planned) == [
        "api", "api-dynamic-reporting-db-password", "web", "worker"]
    for es in planned:
        obj = {k: es[k] for k in ("apiVersion", "kind", "metadata", "spec")}
        assert eso.crd_errors(obj) == []


def test_the_crd_check_can_fail():
    obj = {"apiVersion": eso.API_VERSION, "kind": "ExternalSecret",
           "metadata": {"name": "x", "namespace": "x"},
           "spec": {"target": {"template": {"mergePolicy": "Overwrite"}},
                    "data": [{"remoteRef": {"key": "k"}}]}}
    assert eso.crd_errors(obj) == [
        "spec.data.0: 'secretKey' is a required property",
        "spec.target.template.mergePolicy: 'Overwrite' is not one of ['Replace', 'Merge']",
    ]


def test_templates_render_as_go_does():
    values = {"U": "a b+c/d%:@?#&=~_.-", "P": "x"}
    # Go: url.QueryEscape("a b+c/d%:@?#&=~_.-") == "a+b%2Bc%2Fd%25%3A%40%3F%23%26%3D~_.-"
    assert eso.render("{{ .U | urlquery }}|{{.P}}|{{- .P -}}", values) == \
        "a+b%2Bc%2Fd%25%3A%40%3F%23%26%3D~_.-|x|x"
    with pytest.raises(eso.TemplateError, match='no entry for key "Q"'):
        eso.render("{{ .Q }}", values)
    with pytest.raises(eso.Unsupported):
        eso.render("{{ .U | b64enc }}", values)
    assert eso._go_replacement("K_$1") == "K_\\g<1>"


def test_fields_outside_the_subset_are_refused(world):
    es = json.loads(json.dumps(world.external_secret))
    es["spec"]["dataFrom"][0]["extract"]["version"] = "AWSPREVIOUS"
    with pytest.raises(eso.Unsupported):
        eso.materialise(es, world.stores)


# --- the life cycle -------------------------------------------------------------------------


def test_the_pod_gets_every_field_whole_and_logs_in(world, pg):
    env = world.pod_env()
    check_schema(env)
    assert {k: env[k] for k in ("DATABASE_USER", "DATABASE_HOST", "DATABASE_PORT",
                                "DATABASE_NAME")} == {
        "DATABASE_USER": world.user, "DATABASE_HOST": pg.host, "DATABASE_PORT": str(pg.port),
        "DATABASE_NAME": world.dbname}
    assert env["DATABASE_PASSWORD"] == world.initial
    # exactly the declared keys: nothing else of the secret's JSON (engine, masterarn)
    assert set(env) - set(world.configmap) == {
        "DATABASE_HOST", "DATABASE_NAME", "DATABASE_PASSWORD", "DATABASE_PORT", "DATABASE_URL",
        "DATABASE_USER", "SESSION_SIGNING_KEY"}
    assert env["SESSION_SIGNING_KEY"] == "[generated:api-secret-values-session-signing-key]"
    assert app_login(pg, env) == world.user


def test_two_alternating_rotations_reach_the_pod_whole(world, aws, pg):
    env0 = world.pod_env()
    aws.rotate(world.arn)
    assert aws.errors == []
    env1 = world.pod_env()
    check_schema(env1)
    assert (env1["DATABASE_USER"], app_login(pg, env1)) == (world.clone, world.clone)
    assert app_login(pg, env0) == world.user  # a pod not yet refreshed keeps working

    # The defect this replaces: the old user with the new password.
    torn = {**env0, "DATABASE_PASSWORD": env1["DATABASE_PASSWORD"],
            "DATABASE_URL": env0["DATABASE_URL"].replace(
                env0["DATABASE_URL"].split(":")[2].split("@")[0],
                env1["DATABASE_URL"].split(":")[2].split("@")[0])}
    assert refused(pg, torn)

    aws.rotate(world.arn)
    assert aws.errors == []
    env2 = world.pod_env()
    assert (env2["DATABASE_USER"], app_login(pg, env2)) == (world.user, world.user)
    assert env2["DATABASE_PASSWORD"] not in (env0["DATABASE_PASSWORD"], env1["DATABASE_PASSWORD"])
    assert app_login(pg, env1) == world.clone  # the previous generation still works
    assert refused(pg, env0)  # two rotations back: its password was changed


# where the fault hits: (label, the step it hits, whether that step's work was done)
FAULTS = [
    ("after createSecret", "createSecret", True),
    ("after setSecret", "setSecret", True),
    ("during testSecret", "testSecret", False),
    ("before finishSecret", "finishSecret", False),
]


@pytest.mark.parametrize("rotation", [1, 2], ids=["api-to-clone", "clone-to-api"])
@pytest.mark.parametrize(("fault", "failing", "run_first"), FAULTS, ids=[f[0] for f in FAULTS])
def test_a_fault_at_any_step_never_locks_the_app_out(world, aws, pg, leaks,
                                                     rotation, fault, failing, run_first):
    if rotation == 2:
        aws.rotate(world.arn)
        assert aws.errors == []
    before = world.pod_env()
    current_user = before["DATABASE_USER"]
    other_user = world.clone if current_user == world.user else world.user
    token = aws.start(world.arn)
    for step in STEPS:
        if step == failing:
            # The function dies in this step, after its work or before it: Secrets Manager
            # sees the invocation fail, and the rotation stops there until it retries.
            if run_first:
                aws.step(world.arn, token, step)
            # What ESO delivers now is still the current version, whole, and it logs in.
            now = world.pod_env()
            assert now == before
            assert app_login(pg, now) == current_user
            break
        aws.step(world.arn, token, step)
        assert world.pod_env() == before  # nothing reaches the pod before finishSecret
        assert app_login(pg, before) == current_user

    aws.run_steps(world.arn, token)  # Secrets Manager retries the whole rotation
    after = world.pod_env()
    assert aws.current_version(world.arn) == token
    assert (after["DATABASE_USER"], app_login(pg, after)) == (other_user, other_user)
    assert app_login(pg, before) == current_user  # AWSPREVIOUS: pods not yet refreshed
