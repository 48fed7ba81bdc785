"""The real program's plans through the real pack, with each environment's policy config: the
pack in its own process, over the Analyzer protocol, as the Pulumi CLI runs it (every other
test of tests/policies/ calls it in-process)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import pytest

from configplane.hashing import configmap_hash
from configplane.model import InvalidStack
from configplane.offline import (
    AnalyzedResource,
    PolicyConfigError,
    analyzed_resources,
    run_plan,
    run_policy_pack,
)
from tests.catalog_compat import edit_stack
from tests.policies.builders import CANARY, pack_module
from tests.policies.conftest import PACK, PROJECT, found
from tests.projects import copy_project, sample_plan

STACKS = ("dev", "staging", "prod")
STRICT_IN_DEV = {"no-plaintext-secret-in-config", "no-secret-in-stack-outputs",
                 "vault-least-privilege", "environment-isolation", "iam-least-privilege",
                 "flags-configmap-live", "secret-stores-per-service",
                 "no-identity-spans-services", "pki-least-privilege", "pki-names-owned",
                 "dynamic-credential-statements", "database-creds-least-privilege",
                 "backup-bucket-protected"}
ALL_POLICIES = STRICT_IN_DEV | {
    "kubernetes-secret-from-external-store", "secrets-manager-rotation", "vault-audit-enabled",
    "configmap-hygiene", "configmap-schema", "rotation-lambda-hardening",
    "certificate-lifetime", "certificate-private-key", "certificate-names",
    "dynamic-credential-ttl", "dynamic-credential-refresh", "secrets-manager-replicas"}


@pytest.mark.parametrize("stack", STACKS)
def test_sample_stack_has_no_violations(pack_process_for, stack):
    plan = sample_plan(stack)
    report = pack_process_for(stack, stack).run(analyzed_resources(plan))
    assert found(report) == []
    levels = {p.name: p.enforcement_level for p in report.policies}
    assert levels == {name: "mandatory" if stack != "dev" or name in STRICT_IN_DEV else "advisory"
                      for name in ALL_POLICIES}


AWS_KEY_ID = "AKIAZ7Q3M5X2K9R4T6WB"
ORIGIN_URL = f"https://shop:{CANARY}@shop.example.com"


@pytest.fixture(scope="module")
def leaky_project(tmp_path_factory):
    """The project with credentials pasted into config values the app schemas accept."""
    target = copy_project(tmp_path_factory.mktemp("leaky") / "project")

    def paste(config):
        services = config["configplane:services"]
        services["api"]["config"]["CORS_ALLOWED_ORIGINS"] = ORIGIN_URL
        services["web"]["config"]["SESSION_COOKIE_NAME"] = AWS_KEY_ID

    edit_stack(target, "prod", paste)
    return target


def test_validate_refuses_the_leaky_stack_first(leaky_project):
    with pytest.raises(InvalidStack) as e:
        run_plan(leaky_project, "prod", one_stack=True)
    assert sorted((i.path, i.file) for i in e.value.issues) == [
        ("services.api.config.CORS_ALLOWED_ORIGINS", "services/api/prod.yaml"),
        ("services.web.config.SESSION_COOKIE_NAME", "services/web/prod.yaml")]
    assert CANARY not in str(e.value) and AWS_KEY_ID not in str(e.value)


def pasted(resource: AnalyzedResource, key: str, value: str) -> AnalyzedResource:
    """A planned ConfigMap with `key: value` in its data (and its name hashed anew, as the
    program names it): what a program that skipped validate's content check would declare."""
    def paste(properties: Mapping[str, Any]) -> dict[str, Any]:
        data = {**properties["data"], key: value}
        base = properties["metadata"]["name"].rsplit("-", 1)[0]
        return {**properties, "data": data,
                "metadata": {**properties["metadata"], "name": f"{base}-{configmap_hash(data)}"}}
    return dataclasses.replace(resource, inputs=paste(resource.inputs),
                               outputs=paste(resource.outputs))


def test_credential_in_service_config_is_refused(pack_process_for, detector_rules):
    # The pack is the second line: validate refuses the leaky stack first (above); a program
    # that skipped that check would plan these ConfigMaps, and the pack refuses them.
    pastes = {"api-config-config": ("CORS_ALLOWED_ORIGINS", ORIGIN_URL),
              "web-config-config": ("SESSION_COOKIE_NAME", AWS_KEY_ID)}
    resources = [pasted(r, *pastes[r.urn_name]) if r.urn_name in pastes else r
                 for r in analyzed_resources(sample_plan("prod"))]
    report = pack_process_for("prod", "prod").run(resources)
    secrets = pack_module("plaintext_secrets")
    why = (f"Why: {secrets.WHY_CONFIGMAP}. Fix: {secrets.FIX_CONFIGMAP}, "
           f"{secrets.ROTATE_OR_PLACEHOLDER}")
    # sorted: resources register in the order their inputs resolve, not in program order
    assert sorted(found(report)) == [
        ("no-plaintext-secret-in-config", "api-config-config", "mandatory",
         'ConfigMap "api-config-config": data.CORS_ALLOWED_ORIGINS holds what looks like a '
         f"credential ({detector_rules('CORS_ALLOWED_ORIGINS', ORIGIN_URL)}). {why}"),
        ("no-plaintext-secret-in-config", "web-config-config", "mandatory",
         'ConfigMap "web-config-config": data.SESSION_COOKIE_NAME holds what looks like a '
         f"credential ({detector_rules('SESSION_COOKIE_NAME', AWS_KEY_ID)}). {why}"),
    ]
    assert not report.passed
    text = json.dumps([v.message for v in report.violations] + list(report.logs))
    assert CANARY not in text and AWS_KEY_ID not in text


def test_config_files_are_valid_and_exceptions_are_checked(tmp_path):
    config = json.loads((PACK / "config" / "prod.json").read_text())
    config["secrets-manager-rotation"]["exceptions"] = [
        {"resource": "api-aws-database-password", "ticket": "sec 1", "expires": "soon",
         "reason": "because"}]
    path = tmp_path / "prod.json"
    path.write_text(json.dumps(config))
    with pytest.raises(PolicyConfigError) as e:
        run_policy_pack(PACK, project=PROJECT, stack="prod", policy_config_file=path,
                        resources=[])
    header, *lines = str(e.value).split("\n")
    assert header == f"invalid policy config ({path}):"
    assert sorted(lines) == [
        "  secrets-manager-rotation: exceptions.0.expires: 'soon' does not match "
        "'^[0-9]{4}-[0-9]{2}-[0-9]{2}$'",
        "  secrets-manager-rotation: exceptions.0.reason: 'because' is too short",
        "  secrets-manager-rotation: exceptions.0.ticket: 'sec 1' does not match "
        "'^[A-Z][A-Z0-9]+-[0-9]+$'"]
