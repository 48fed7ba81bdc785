"""The model is built once, by configplane.model.builder; everything else reads it."""

from __future__ import annotations

import ast
import dataclasses
from datetime import date
from pathlib import Path

import pytest

from configplane.inputs import read_stack_files
from configplane.model import ServiceModel, StackModel
from configplane.offline import run_plan
from configplane.validation import load_stack
from tests.conftest import REPO, STACKS

BUILDER = REPO / "configplane/model/builder.py"
# What only the builder derives; the program and explain read the model's fields instead.
DERIVATIONS = {"tls_model", "dynamic_models", "service_versions", "rotated_secrets",
               "render_configmap", "render_flags_configmap", "build_service", "ServiceModel"}
READERS = [REPO / "__main__.py", *sorted((REPO / "configplane/ops").glob("explain*.py")),
           *sorted((REPO / "components").glob("*.py"))]


def _called(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.id if isinstance(func, ast.Name) else getattr(func, "attr", ""))
    return names


@pytest.mark.parametrize("path", READERS, ids=lambda p: str(p.relative_to(REPO)))
def test_the_program_components_and_explain_derive_nothing(path):
    assert not _called(path) & DERIVATIONS


def test_only_the_builder_makes_a_service_model():
    makers = [p.relative_to(REPO) for p in sorted((REPO / "configplane").rglob("*.py"))
              if "ServiceModel" in _called(p)]
    assert makers == [BUILDER.relative_to(REPO)]


def _model(stack: str, today: date | None = None) -> StackModel:
    return load_stack(read_stack_files(REPO, stack), today=today)


@pytest.mark.parametrize("stack", STACKS)
def test_the_model_holds_everything_derived_and_is_frozen(stack):
    model = _model(stack)
    assert model.services
    for svc in model.services.values():
        secrets = svc.spec.secrets
        assert (svc.tls is not None) == (svc.spec.tls is not None and model.platform.pki is not None)
        assert [d.key for d in svc.dynamic] == sorted(k for k, s in secrets.items()
                                                      if s.source == "dynamic")
        assert set(svc.versions.secrets) == set(secrets)
        assert set(svc.rotated) <= {k for k, s in secrets.items() if s.store == "aws"}
        assert all(s.rotation for k, s in secrets.items() if k in svc.rotated)
        assert svc.vault_mount == model.vault_mount
        with pytest.raises(dataclasses.FrozenInstanceError):
            svc.tls = None  # type: ignore[misc]


def test_the_runs_day_dates_generated_secrets_and_nothing_else():
    early, late = _model("prod", date(2020, 1, 1)), _model("prod", date(2031, 6, 1))
    changed = set()
    for name, svc in early.services.items():
        for key, version in svc.versions.secrets.items():
            if version != late.services[name].versions.secrets[key]:
                changed.add((name, key))
                assert svc.spec.secrets[key].source == "generated"
                assert not svc.spec.secrets[key].rotation
    assert changed  # the sample stacks do have scheduled generated secrets
    assert {n: s.config for n, s in early.services.items()} == {
        n: s.config for n, s in late.services.items()}


def test_external_secrets_roles_and_stores_follow_the_models_decision():
    model = _model("prod")
    plan = run_plan(REPO, "prod", one_stack=True, policy=False)

    def declared(type_: str, suffix: str) -> set[str]:
        return {r.name.removesuffix(suffix) for r in plan.resources
                if r.type == type_ and r.name.endswith(suffix)}

    services = set(model.services)
    assert declared("configplane:externalsecrets:ServiceExternalSecret", "-external-secret") == {
        n for n in services if model.services[n].external_secret}
    assert declared("configplane:identity:SecretReaderRole", "-identity") == {
        n for n in services if model.services[n].aws_identity}
    stores = declared("kubernetes:external-secrets.io/v1:SecretStore", "-secret-stores-aws")
    assert stores == {n for n in services if model.services[n].aws_identity}
    assert any(s.aws_identity for s in model.services.values())
    assert isinstance(next(iter(model.services.values())), ServiceModel)
