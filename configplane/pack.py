"""Access to the CrossGuard pack's own modules, so the CLI uses exactly what the pack uses."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

PACK_DIR = Path(__file__).resolve().parents[1] / "policies"


@cache
def load_detector() -> ModuleType:
    """The pack's plaintext-secret detector (policies/secret_detector.py), loaded once.

    The pack directory is not a package (the Pulumi CLI runs it as its working directory),
    so the module is imported by file location under a private name.
    """
    name = "_configplane_pack_secret_detector"
    spec = importlib.util.spec_from_file_location(name, PACK_DIR / "secret_detector.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
