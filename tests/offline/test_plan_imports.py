"""The program imports its own `components` package from its project directory, and the run
leaves sys.path and the caller's `components` modules as it found them."""

from __future__ import annotations

import importlib
import sys
import types
from contextlib import nullcontext
from pathlib import Path

import pytest

from configplane.offline import project_imports


def _project(root: Path, marker: str) -> Path:
    (root / "components").mkdir(parents=True)
    (root / "components" / "__init__.py").write_text(f"MARKER = {marker!r}\n")
    (root / "components" / "part.py").write_text("PART = 'of the project'\n")
    return root


@pytest.mark.parametrize("fails", [False, True])
def test_project_components_are_scoped_to_the_run(tmp_path: Path, monkeypatch, fails: bool):
    theirs = types.ModuleType("components")
    theirs.MARKER = "the caller's"
    monkeypatch.setitem(sys.modules, "components", theirs)
    path_before = list(sys.path)
    project = _project(tmp_path / "a", "project a")

    class Boom(Exception):
        pass

    with pytest.raises(Boom) if fails else nullcontext(), project_imports(project):
        components = importlib.import_module("components")
        part = importlib.import_module("components.part")
        assert (components.MARKER, part.PART) == ("project a", "of the project")
        assert sys.path[0] == str(project)
        if fails:
            raise Boom
    assert sys.modules["components"] is theirs
    assert "components.part" not in sys.modules
    assert sys.path == path_before


def test_a_second_project_gets_its_own_components(tmp_path: Path):
    seen = []
    for name in ("a", "b"):
        with project_imports(_project(tmp_path / name, f"project {name}")):
            seen.append(importlib.import_module("components").MARKER)
    assert seen == ["project a", "project b"]

