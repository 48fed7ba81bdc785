"""The import rules that keep the architecture visible (docs/architecture.md).

- `configplane/` is plain Python: no component and no provider SDK (it may drive the Pulumi SDK's
  mocks, which is how the offline plan runs the real program);
- `components/` may use `configplane/`, never the CLI;
- `policies/` is self-contained (the Pulumi CLI runs it from its own directory and venv);
- `lambdas/rotation/` runs in AWS Lambda: none of the project's packages, no Pulumi.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PROVIDER_SDKS = {"pulumi_kubernetes", "pulumi_vault", "pulumi_aws", "pulumi_random"}
FORBIDDEN = {
    "configplane": {"components", "policies", *PROVIDER_SDKS},
    "components": {"configplane.cli", "configplane.commands", "policies"},
    "policies": {"configplane", "components", "lambdas"},
    "lambdas": {"configplane", "components", "policies", "pulumi", *PROVIDER_SDKS},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _violates(module: str, forbidden: set[str]) -> bool:
    return any(module == f or module.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_rules(package: str) -> None:
    files = [p for p in (REPO / package).rglob("*.py")
             if "venv" not in p.parts and not p.is_symlink() and "schemas" not in p.parts]
    assert files, f"no Python files under {package}/"
    broken = {
        f"{p.relative_to(REPO)} imports {m}"
        for p in files for m in imported_modules(p) if _violates(m, FORBIDDEN[package])
    }
    assert not broken, sorted(broken)


def test_the_rule_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import pulumi_aws.iam\nfrom components.vault import VaultService\n")
    assert {m for m in imported_modules(bad) if _violates(m, FORBIDDEN["configplane"])} == {
        "pulumi_aws.iam", "components.vault"}


# Facts the pack shares with the program reach it through symlinks into the project (the pack
# imports nothing of the project's packages): one file, two importers.
SHARED_WITH_THE_PACK = {
    "policies/schemas": "../schemas",
    "policies/hashing.py": "../configplane/hashing.py",  # kustomize's ConfigMap hash
    "policies/refs.py": "../configplane/refs.py",  # names, refs and ARNs
    "policies/contract.py": "../configplane/contract.py",  # labels, annotations, limits, tags
    "policies/schema_messages.py": "../configplane/schema_messages.py",  # value-free messages
}


@pytest.mark.parametrize("link", sorted(SHARED_WITH_THE_PACK))
def test_the_pack_shares_facts_through_links(link: str) -> None:
    path = REPO / link
    assert path.is_symlink() and os.readlink(path) == SHARED_WITH_THE_PACK[link]
    if path.suffix == ".py":  # stdlib only: the pack's environment has none of ours
        allowed = set(sys.stdlib_module_names) | {"__future__"}
        assert {m.split(".")[0] for m in imported_modules(path)} <= allowed


# The offline pack run is layered one way: what a run is given and reports (analysis), the
# protocol's values (marshal), the policy config and the pack process sit below the gRPC
# session (analyzer), which only the plan, the reference and the tests drive. The CLI's shared
# options import no command.
LOWER_THAN = {
    "configplane/analysis.py": {"configplane.analyzer", "configplane.marshal",
                                "configplane.policyconfig", "configplane.packprocess"},
    "configplane/marshal.py": {"configplane.analyzer", "configplane.policyconfig",
                               "configplane.packprocess"},
    "configplane/policyconfig.py": {"configplane.analyzer", "configplane.marshal",
                                    "configplane.packprocess"},
    "configplane/packprocess.py": {"configplane.analyzer", "configplane.marshal",
                                   "configplane.policyconfig"},
    "configplane/planchecks.py": {"configplane.analyzer", "configplane.commands"},
    "configplane/stackload.py": {"configplane.commands", "configplane.cli"},
    "configplane/commands/options.py": {"configplane.commands", "configplane.cli"},
}


@pytest.mark.parametrize("module", sorted(LOWER_THAN))
def test_layers_of_the_offline_run_import_one_way(module: str) -> None:
    found = {m for m in imported_modules(REPO / module)
             if any(m == f or m.startswith(f + ".") for f in LOWER_THAN[module])}
    assert found == set()
