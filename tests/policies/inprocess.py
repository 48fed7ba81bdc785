"""The policy pack in this process: its modules imported, its policies behind pulumi_policy's
own Analyzer servicer, called directly.

That servicer is what `python -m pulumi.policy` serves in the pack's process: it builds the
`ResourceValidationArgs` / `StackValidationArgs` each validator gets and turns reports into
diagnostics. Called here (`PolicyPackSession(..., analyzer=InProcessAnalyzer(...))`), a test
sends the same requests and reads the same answers without a process and a gRPC round trip.
One suite keeps the real process and protocol (tests/policies/test_stacks.py, and the
protocol's own tests in tests/offline/test_session.py).

The pack is assembled as its __main__.py assembles it: that file's `PolicyPack(...)` call is
read (not run: it would serve forever) and its arguments evaluated with the file's own imports.
"""

from __future__ import annotations

import ast
import contextvars
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import settings
from pulumi.runtime.proto import engine_pb2
from pulumi_policy.policy import _PolicyAnalyzerServicer


@contextmanager
def _pack_on_path(pack_dir: Path) -> Iterator[None]:
    """Import the pack's modules by their own top-level names (as its process does), then
    take them out of sys.modules again: the policies keep them, nothing else sees them."""
    before = set(sys.modules)
    sys.path.insert(0, str(pack_dir))
    try:
        yield
    finally:
        sys.path.remove(str(pack_dir))
        for name in set(sys.modules) - before:
            module = sys.modules[name]
            if str(pack_dir) in str(getattr(module, "__file__", "") or ""):
                del sys.modules[name]


def _assembly(pack_dir: Path) -> dict[str, Any]:
    """The keyword arguments of __main__.py's PolicyPack(...) call, evaluated."""
    tree = ast.parse((pack_dir / "__main__.py").read_text(), "__main__.py")
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Name) and n.func.id == "PolicyPack")
    namespace: dict[str, Any] = {}
    imports = ast.Module([n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)], [])
    with _pack_on_path(pack_dir):
        exec(compile(imports, str(pack_dir / "__main__.py"), "exec"), namespace)
    return {k.arg: eval(compile(ast.Expression(k.value), "__main__.py", "eval"), namespace)
            for k in call.keywords if k.arg}


class _Engine:
    """The engine's Log service as the pack's process reaches it (pulumi.log.* calls)."""

    def __init__(self, logs: list[str]):
        self.logs = logs

    def Log(self, request: Any) -> None:  # noqa: N802 (the engine's method name)
        self.logs.append(f"{engine_pb2.LogSeverity.Name(request.severity).lower()}: "
                         f"{request.message}")


class InProcessAnalyzer:
    """The Analyzer service of one pack, as `PolicyPackSession` calls its gRPC stub."""

    def __init__(self, pack_dir: Path, *, project: str, stack: str, dry_run: bool = True,
                 servicer: type[_PolicyAnalyzerServicer] = _PolicyAnalyzerServicer):
        pack = _assembly(pack_dir)
        # What PolicyPack() hands its servicer (pulumi_policy/policy.py).
        self._servicer = servicer(
            pack["name"], "0.0.1", pack["policies"], pack["enforcement_level"],
            pack.get("initial_config"), pack.get("description"), pack.get("display_name"),
            pack.get("readme"), pack.get("provider"), pack.get("tags"), pack.get("repository"))
        self.logs: list[str] = []  # what the pack logs through the engine, as the CLI shows it
        self._settings = {"project": project, "stack": stack, "dry_run": dry_run,
                          "organization": "organization", "engine": _Engine(self.logs)}

    def __getattr__(self, method: str) -> Callable[..., Any]:
        served = getattr(self._servicer, method)

        def in_the_packs_settings(request: Any) -> Any:
            # The pack's process runs with its stack's settings (PULUMI_STACK, ...). They are
            # context variables: set in a copied context, they stay there.
            pulumi.runtime.configure(settings.Settings(**self._settings))
            return served(request, None)

        def call(request: Any, timeout: float | None = None) -> Any:
            return contextvars.copy_context().run(in_the_packs_settings, request)

        return call
