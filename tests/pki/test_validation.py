"""Bad `tls:`, `source: dynamic`, platform.pki and platform.database: exit 1, one message per
problem naming the file, the key path and the fix, never a traceback or a value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from configplane.cli.commands.validate import command as validate
from tests.catalog_compat import SERVICES_KEY, catalog_file, edit_stack


def run_validate(project: Path, stack: str) -> tuple[int, dict]:
    result = CliRunner().invoke(
        validate, ["--stack", stack, "--project-dir", str(project), "--format", "json"])
    return result.exit_code, json.loads(result.output)


def edit(project: Path, stack: str, change) -> None:
    """`change(config, services, platform)` on the stack: services are the catalog's overlays
    for this stack (services/<name>/<stack>.yaml), platform is Pulumi.<stack>.yaml's."""
    edit_stack(project, stack, lambda config: change(
        config, config[SERVICES_KEY], config["configplane:platform"]))


def api_tls(services: dict, **tls) -> None:
    services["api"]["tls"] = tls


def reporting(services: dict, **dynamic) -> None:
    """Replace the api's dynamic secret's `dynamic` block in this stack."""
    base = {"connection": "shop", "grants": [
        {"schema": "app", "tables": ["orders"], "privileges": ["SELECT"]}]}
    services["api"].setdefault("secrets", {})["REPORTING_DB_PASSWORD"] = {
        "dynamic": {**base, **dynamic}}


DUR = "Pulumi.dev.yaml"
CASES = {
    "wildcard-in-prod": ("prod", lambda c, s, p: api_tls(s, extra_dns_names=["*.shop.example.com"]),
                         "services.api.tls.extra_dns_names.0", "Pulumi.prod.yaml",
                         "wildcard names are not allowed in prod. Fix: list each name the "
                         "service answers to."),
    "wildcard-not-allowed": ("dev", lambda c, s, p: api_tls(s, extra_dns_names=["*.dev.shop"]),
                             "services.api.tls.extra_dns_names.0", DUR,
                             "wildcard names need platform.pki.allow_wildcard_names (never in "
                             "prod). Fix: list each name instead, or allow them for this "
                             "environment."),
    "wildcard-switch-in-prod": ("prod", lambda c, s, p: p["pki"].update(allow_wildcard_names=True),
                                "platform.pki.allow_wildcard_names", "Pulumi.prod.yaml",
                                "wildcard certificates are not allowed in prod: a stolen "
                                "wildcard key impersonates every name below it. Fix: set it to "
                                "false and list each name in extra_dns_names."),
    "bad-dns-name": ("dev", lambda c, s, p: api_tls(s, extra_dns_names=["Api_Internal"]),
                     "services.api.tls.extra_dns_names.0", DUR,
                     "not a DNS name (lowercase labels separated by dots, at least two, an "
                     "optional leading `*.`). Fix: correct it."),
    "too-long": ("dev", lambda c, s, p: api_tls(s, duration="4000h"),
                 "services.api.tls.duration", DUR,
                 "4000h exceeds the PKI's leaf_max_ttl 2160h: Vault would shorten the "
                 "certificate and cert-manager renew it early. Fix: shorten it."),
    "too-short": ("dev", lambda c, s, p: api_tls(s, duration="30m", renew_before="10m"),
                  "services.api.tls.duration", DUR,
                  "cert-manager's minimum duration is 1h. Fix: lengthen it."),
    "renew-after-expiry": ("dev", lambda c, s, p: api_tls(s, duration="24h", renew_before="24h"),
                           "services.api.tls.renew_before", DUR,
                           "renew_before must be shorter than duration (cert-manager refuses "
                           "it). Fix: use about a third of the duration."),
    "key-size": ("dev", lambda c, s, p: api_tls(s, key_algorithm="RSA", key_size=1024),
                 "services.api.tls.key_size", DUR,
                 "RSA keys may be 2048, 4096, 8192 bits (what cert-manager accepts). Fix: use "
                 "one of those."),
    "ec-key-encipherment": ("dev", lambda c, s, p: api_tls(
        s, usages=["digital signature", "key encipherment", "server auth"]),
        "services.api.tls.usages", DUR,
        "key encipherment is an RSA key-transport usage; an ECDSA key cannot do it. Fix: "
        "remove it."),
    "tls-without-pki": ("dev", lambda c, s, p: p.pop("pki"), "services.api.tls",
                        "Pulumi.yaml", "a certificate needs the environment's PKI. Fix: add "
                        "platform.pki (parent: root or external) or remove `tls`."),
    "root-with-certificate": ("dev", lambda c, s, p: p["pki"].update(
        intermediate_certificate="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"),
        "platform.pki.intermediate_certificate", DUR,
        "with parent: root Vault signs the intermediate itself. Fix: remove "
        "intermediate_certificate, or set parent: external."),
    "not-pem": ("prod", lambda c, s, p: p["pki"].update(intermediate_certificate="MIIB..."),
                "platform.pki.intermediate_certificate", "Pulumi.prod.yaml",
                "not a PEM certificate. Fix: paste the certificate the offline root signed "
                "(-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----, chain allowed)."),
    "leaf-outlives-ca": ("dev", lambda c, s, p: p["pki"].update(leaf_max_ttl="30000h"),
                         "platform.pki.leaf_max_ttl", DUR,
                         "leaf_max_ttl 30000h is not shorter than the CA's max_ttl 26280h: "
                         "certificates would outlive their issuer. Fix: shorten it."),
    "superuser-privilege": ("dev", lambda c, s, p: reporting(s, grants=[
        {"schema": "app", "tables": ["orders"], "privileges": ["SUPERUSER"]}]),
        "services.api.secrets.REPORTING_DB_PASSWORD.dynamic.grants.0.privileges.0", DUR,
        "value not allowed. Fix: use one of SELECT, INSERT, UPDATE, DELETE."),
    "quoted-table": ("dev", lambda c, s, p: reporting(s, grants=[
        {"schema": "app", "tables": ['orders"; DROP TABLE x; --'], "privileges": ["SELECT"]}]),
        "services.api.secrets.REPORTING_DB_PASSWORD.dynamic.grants.0.tables.0", DUR,
        "value does not match pattern ^[a-z_][a-z0-9_]{0,62}$. Fix: correct the value."),
    "unknown-connection": ("dev", lambda c, s, p: reporting(s, connection="billing"),
                           "services.api.secrets.REPORTING_DB_PASSWORD.dynamic.connection", DUR,
                           "unknown connection `billing`. Fix: use one of shop or add it to "
                           "platform.database.connections."),
    "username-key-clash": ("dev", lambda c, s, p: reporting(s, username_key="DATABASE_PASSWORD"),
                           "services.api.secrets.REPORTING_DB_PASSWORD.dynamic.username_key",
                           DUR, "`DATABASE_PASSWORD` is already used by this service. Fix: "
                           "choose another key."),
    "dynamic-in-aws": ("dev", lambda c, s, p: s["api"]["secrets"].update(
        REPORTING_DB_PASSWORD={"store": "aws"}),
        "services.api.secrets.REPORTING_DB_PASSWORD.store", DUR,
        "dynamic logins come from Vault's database engine. Fix: set store: vault."),
    "dynamic-rotated": ("dev", lambda c, s, p: s["api"]["secrets"].update(
        REPORTING_DB_PASSWORD={"rotation": {"strategy": "random"}}),
        "services.api.secrets.REPORTING_DB_PASSWORD.rotation", DUR,
        "`rotation` is for static passwords rotated in Secrets Manager; a dynamic login is "
        "never rotated, it expires. Fix: remove it."),
    "no-engine": ("dev", lambda c, s, p: p.pop("database"),
                  "services.api.secrets.REPORTING_DB_PASSWORD.dynamic.connection", "Pulumi.yaml",
                  "this environment has no database engine. Fix: add platform.database with "
                  "the connection, or use another source here."),
    "ttl-order": ("dev", lambda c, s, p: p["database"].update(default_ttl="48h"),
                  "platform.database.default_ttl", DUR,
                  "default_ttl 48h exceeds max_ttl 24h. Fix: shorten it."),
    "ttl-too-short": ("dev", lambda c, s, p: p["database"].update(default_ttl="1m"),
                      "platform.database.default_ttl", DUR,
                      "under 5m a login expires before pods can use it. Fix: use at least 5m "
                      "(1h is usual)."),
    "ttl-forever": ("dev", lambda c, s, p: p["database"].update(max_ttl="8760h"),
                    "platform.database.max_ttl", DUR,
                    "longer than Vault's system maximum (768h); a login this long-lived is a "
                    "static password. Fix: shorten it."),
    "slow-refresh": ("dev", lambda c, s, p: p["database"].update(refresh_interval="30m"),
                     "platform.database.refresh_interval", DUR,
                     "refresh_interval 30m is not under half of default_ttl 1h: pods would hold "
                     "logins about to expire. Fix: shorten it or remove it (default: a third of "
                     "default_ttl)."),
    "root-password-plaintext-key": ("dev", lambda c, s, p: p["database"]["connections"][
        "shop"].update(password_config_key="nope"),
        "platform.database.connections.shop.password_config_key", "Pulumi.yaml",
        "`configplane:nope` must be declared in Pulumi.yaml with `type: string` and "
        "`secret: true` (then the Pulumi CLI refuses plaintext). Fix: add `config: "
        "{configplane:nope: {type: string, secret: true}}`."),
}
RENAME = ("(a name has one owner). Fix: rename the service (or the tenant, secret or namespace "
          "that derives the name).")
CASES["role-collision"] = (
    "dev", lambda c, s, p: s.update({"api-pki": {"app_schema": "worker", "config": {
        "LOG_LEVEL": "info", "CONCURRENCY": 1, "RATE_LIMIT_RPS": 1,
        "PAYMENTS_API_BASE_URL": "https://x.example.com", "VISIBILITY_TIMEOUT_SECONDS": 1}}}),
    "services.api-pki", "Pulumi.dev.yaml",
    "its Vault Kubernetes auth role would be `api-pki`, the same as for services.api.tls: one "
    f"would overwrite the other and get its access {RENAME}")
CASES["db-role-collision"] = (
    "dev", lambda c, s, p: s["api"]["secrets"].update({"REPORTING.DB_PASSWORD": {
        "source": "dynamic", "store": "vault", "dynamic": {"connection": "shop",
        "username_key": "OTHER_USERNAME", "grants": [
            {"schema": "app", "tables": ["orders"], "privileges": ["SELECT"]}]}}}),
    "services.api.secrets.REPORTING_DB_PASSWORD", "Pulumi.yaml",
    "its Vault database role would be `api-reporting-db-password`, the same as for "
    f"services.api.secrets.REPORTING.DB_PASSWORD: one would overwrite the other and get its "
    f"access {RENAME}")

LONG_KEY = "R" * 233 + "_DB_PASSWORD"  # api-dynamic-<key>: 12 + 244 = 256 characters
CASES["secret-name-too-long"] = (
    "dev", lambda c, s, p: s["api"]["secrets"].update({LONG_KEY: {
        "source": "dynamic", "store": "vault", "dynamic": {"connection": "shop",
        "username_key": "LONG_USERNAME", "grants": [
            {"schema": "app", "tables": ["orders"], "privileges": ["SELECT"]}]}}}),
    f"services.api.secrets.{LONG_KEY}", "Pulumi.dev.yaml",
    "the Secret name would exceed 253 characters. Fix: shorten the key.")

# A second, independent message for the same key (the value is missing too).
ALSO = {"root-password-plaintext-key": {
    "path": "platform.database.connections.shop.password_config_key", "file": DUR,
    "message": "`configplane:nope` has no value in this stack. Fix: run `pulumi config set "
               "--secret configplane:nope --stack dev`."}}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_problem_is_one_clear_error(project, case):
    stack, change, path, file, message = CASES[case]
    edit(project, stack, change)
    code, report = run_validate(project, stack)
    assert code == 1
    mine = [without_line(project, e) for e in report["errors"] if e["path"] == path]
    expected = [{"path": path, "file": catalog_file(file, path, stack), "message": message}]
    assert mine == expected + ([ALSO[case]] if case in ALSO else []), report["errors"]


def without_line(project: Path, error: dict) -> dict:
    """The error less its `line` (which the catalog's loader adds), once that line is
    checked to be one of the named file's lines (None: nothing in the file to point at, as
    for a declaration that is missing)."""
    error = dict(error)
    line = error.pop("line")
    if line is not None:
        lines = (project / error["file"]).read_text().splitlines()
        assert isinstance(line, int) and 1 <= line <= len(lines), (error, line)
    return error


def test_all_problems_at_once_and_no_value_echoed(project):
    secret_looking = "-----BEGIN CERTIFICATE-----\nQ2FuYXJ5N2YzZTljUTJ3\n-----END CERTIFICATE"
    edit(project, "prod", lambda c, s, p: (
        api_tls(s, extra_dns_names=["*.shop.example.com"], key_size=300),
        p["pki"].update(intermediate_certificate=secret_looking),
        p["database"].update(default_ttl="25h")))
    code, report = run_validate(project, "prod")
    assert code == 1
    assert sorted(e["path"] for e in report["errors"]) == [
        "platform.database.default_ttl",
        "platform.pki.intermediate_certificate",
        "services.api.tls.extra_dns_names.0",
        "services.api.tls.key_size",
    ]
    assert "Q2FuYXJ5N2YzZTljUTJ3" not in json.dumps(report)


def test_pulumi_program_refuses_to_declare_anything(project):
    from configplane.offline import run_plan

    edit(project, "prod", lambda c, s, p: api_tls(s, extra_dns_names=["*.shop.example.com"]))
    from configplane.model import InvalidStack
    with pytest.raises(InvalidStack) as info:
        run_plan(project, "prod", one_stack=True)
    assert "services.api.tls.extra_dns_names.0: wildcard names are not allowed in prod" in str(
        info.value)
