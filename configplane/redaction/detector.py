"""Access to the CrossGuard pack's own modules, so the CLI uses exactly what the pack uses."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

SOURCE_PACK_DIR = Path(__file__).resolve().parents[2] / "policies"  # a source checkout
_project_dir: Path | None = None


def use_project_dir(project_dir: Path) -> None:
    """The project the command works on (`--project-dir`): its `policies/` is the pack."""
    global _project_dir
    _project_dir = Path(project_dir)


def pack_dir() -> Path:
    """The pack beside the project (`--project-dir`, else the working directory), else the
    source checkout this package runs from. An installed wheel has no pack of its own: the
    pack is the project's, as the Pulumi CLI runs it."""
    candidates = [p / "policies" for p in (_project_dir, Path.cwd()) if p is not None]
    for candidate in [*candidates, SOURCE_PACK_DIR]:
        if (candidate / "secret_detector.py").is_file():
            return candidate
    return candidates[0] if candidates else SOURCE_PACK_DIR


def load_detector() -> ModuleType:
    """The pack's plaintext-secret detector (policies/secret_detector.py), loaded once per pack."""
    return _load_detector(pack_dir())


@cache
def _load_detector(directory: Path) -> ModuleType:
    """The pack directory is not a package (the Pulumi CLI runs it as its working directory),
    so the module is imported by file location under a private name."""
    name = "_configplane_pack_secret_detector"
    spec = importlib.util.spec_from_file_location(name, directory / "secret_detector.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
