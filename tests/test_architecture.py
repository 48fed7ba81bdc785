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
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO

PROVIDER_SDKS = {"pulumi_kubernetes", "pulumi_vault", "pulumi_aws", "pulumi_random"}
# components/ turn the frozen model into resources: they read the model and the shared facts,
# never the readers, the checks, the offline run, the operations or the shell.
ABOVE_THE_MODEL = {"configplane.inputs", "configplane.validation", "configplane.offline",
                   "configplane.ops", "configplane.cli", "configplane.redaction"}
FORBIDDEN = {
    "configplane": {"components", "policies", *PROVIDER_SDKS},
    "components": {*ABOVE_THE_MODEL, "policies"},
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
             if not {"venv", "schemas"} & set(p.relative_to(REPO).parts) and not p.is_symlink()]
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
    "policies/ownership.py": "../configplane/ownership.py",  # who owns what; derived names
    "policies/schema_messages.py": "../configplane/schema_messages.py",  # value-free messages
    "policies/service_schema.py": "../configplane/service_schema.py",  # a service's own schema
}


@pytest.mark.parametrize("link", sorted(SHARED_WITH_THE_PACK))
def test_the_pack_shares_facts_through_links(link: str) -> None:
    path = REPO / link
    assert path.is_symlink() and os.readlink(path) == SHARED_WITH_THE_PACK[link]
    if path.suffix == ".py":  # stdlib only: the pack's environment has none of ours
        allowed = set(sys.stdlib_module_names) | {"__future__"}
        assert {m.split(".")[0] for m in imported_modules(path)} <= allowed


# configplane/ is a few subpackages, one per layer (docs/architecture.md); import-linter's
# contracts in pyproject.toml say which way they import, and these tests run them.
def lint_imports(project: Path) -> tuple[int, str]:
    run = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
                         cwd=project, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(project)})
    return run.returncode, run.stdout + run.stderr


def test_the_subpackages_import_one_way() -> None:
    code, report = lint_imports(REPO)
    assert code == 0, report


@pytest.mark.parametrize("module, upward", [
    ("configplane/model/stackmodel.py", "from configplane.validation import load_stack"),
    ("configplane/inputs/catalog.py", "from configplane.model import ServiceModel"),
    ("configplane/ops/explain.py", "from configplane.offline import run_plan"),  # siblings
    ("configplane/offline/results.py", "from configplane.offline.session import PolicyPackSession"),
])
def test_an_upward_import_breaks_the_layers(tmp_path: Path, module: str, upward: str) -> None:
    shutil.copytree(REPO / "configplane", tmp_path / "configplane",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    path = tmp_path / module
    path.write_text(path.read_text() + f"\n{upward}  # upward\n")
    code, report = lint_imports(tmp_path)
    assert code != 0 and "BROKEN" in report, report


def documented_layers() -> list[tuple[str, set[str]]]:
    """docs/architecture.md's layer table: (layer, the modules it names), highest first."""
    text = (REPO / "docs" / "architecture.md").read_text()
    table = text.split("| Layer (highest first) | Modules |", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines()[2:]:
        layer, modules = line.strip("|").split("|", 1)
        modules = re.sub(r"\([^)]*\)", "", modules)  # what a module does, in brackets
        names = set(re.findall(r"`([a-z_]+)/?`", modules))
        rows.append((layer.strip().strip("`"), names))
    return rows


def contract_layers() -> list[set[str]]:
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in contracts["contracts"] if c["id"] == "layers")["layers"]
    return [{name.strip() for name in layer.split("|")} for layer in layers]


def test_the_architecture_doc_names_every_module_in_its_layer() -> None:
    documented = documented_layers()
    expected: list[tuple[str, set[str]]] = []
    for layer in contract_layers():
        if all((REPO / (m.replace(".", "/") + ".py")).is_file() for m in layer):  # the facts
            expected.append(("facts (stdlib only)", {m.split(".")[1] for m in layer}))
            continue
        order = [row[0] for row in documented]
        for package in sorted(layer, key=lambda p: order.index(p) if p in order else len(order)):
            folder = REPO / package.replace(".", "/")
            modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
            modules |= {p.name for p in folder.iterdir() if (p / "__init__.py").is_file()}
            expected.append((package, modules))
    assert documented == expected
    top = {p.stem for p in (REPO / "configplane").glob("*.py")} - {"__init__", "__main__"}
    assert top == expected[-1][1], "a top-level module that is not a stdlib-only fact"


# Suites about a concern that spans the layers (docs/testing.md lists them); every other
# folder of tests/ mirrors a layer of configplane/.
CONCERN_SUITES = {"fixtures", "lifecycle", "pki", "policies", "program", "rotation", "security",
                  "snapshots", "vault"}


def test_a_modules_tests_are_found_by_its_path() -> None:
    """tests/<layer>/test_<module>[_<aspect>].py tests configplane/<layer>/<module>; a test at
    the top of tests/ tests a top-level module or the repository as a whole."""
    misplaced = []
    for folder in sorted(p for p in (REPO / "tests").iterdir() if p.is_dir()):
        if folder.name in CONCERN_SUITES or folder.name == "__pycache__":
            continue
        layer = REPO / "configplane" / folder.name
        assert layer.is_dir(), f"tests/{folder.name}/ mirrors no layer of configplane/"
        modules = {p.stem for p in layer.rglob("*.py")} | {p.name for p in layer.iterdir()
                                                         if (p / "__init__.py").is_file()}
        for test in sorted(folder.glob("test_*.py")):
            name = test.stem.removeprefix("test_")
            if not any(name == m or name.startswith(f"{m}_") for m in modules):
                misplaced.append(f"tests/{folder.name}/{test.name}")
    assert misplaced == []
