"""One run of configplane: what a command (or one run of the program) works on, created once
and passed explicitly; no module global carries any of it.

It lives in `configplane.inputs`, the lowest layer that knows all of its parts: the project
directory and the catalog selection are what the catalog reader reads, the detector and the
redactor come from `configplane.redaction` below; every layer above may then receive it.

The program (`__main__.py`) gets its selection through Pulumi config, never through a global:
the offline plan sets `configplane-run:selection` (its own namespace, so it cannot collide
with the stack's `configplane:*` keys such as the legacy `configplane:services`), a JSON
object whose fields are the filters (`services`; `one_stack`, the layout before a split). A
shard is chosen by the stack itself (`<env>-<shard>`: configplane.model.topology).
A project or stack file may not set it (configplane.inputs.catalog refuses it): under
`pulumi up` the program always reads the whole catalog.

Caches keyed by content (parsed YAML files, compiled schema validators, the detector's
verdicts per pack) are memos of pure functions, shared by every run in the process. The one
cache scoped otherwise is a read-only command's catalog and what is computed from it once
(configplane.inputs.catalog.reading_once: each stack's validation): held while the command
runs, gone after it.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configplane.redaction import Detector, Redactor, detector_for

RUN_NAMESPACE = "configplane-run"
SELECTION_KEY = f"{RUN_NAMESPACE}:selection"


@dataclass(frozen=True)
class Selection:
    """Which catalog services a run reads; `services` None: every one. `one_stack`: plan a
    sharded environment as the one stack it was before its split (what `shard plan` moves
    resources from: docs/fleet.md); never set under `pulumi up`."""

    services: frozenset[str] | None = None
    one_stack: bool = False

    @classmethod
    def of(cls, services: Iterable[str] | None, one_stack: bool = False) -> Selection:
        """`--service` as given: nothing (or None) selects every service."""
        chosen = frozenset(services or ())
        return cls(chosen or None, one_stack)

    @property
    def everything(self) -> bool:
        return self.services is None

    def admits(self, name: str) -> bool:
        return self.services is None or name in self.services

    def as_config(self) -> dict[str, str]:
        """The Pulumi config entries that hand this selection to the program (none for all)."""
        document: dict[str, Any] = {}
        if not self.everything:
            document["services"] = sorted(self.services or ())
        if self.one_stack:
            document["one_stack"] = True
        return {SELECTION_KEY: json.dumps(document)} if document else {}

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> Selection:
        """The selection in a run's config values (raw strings or parsed `StackValue`s)."""
        raw = values.get(SELECTION_KEY)
        raw = getattr(raw, "value", raw)
        if raw is None:
            return cls()
        document = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(document, Mapping) or set(document) - {"services", "one_stack"}:
            raise ValueError(f"{SELECTION_KEY} must be an object with `services`, `one_stack`")
        one_stack = document.get("one_stack", False)
        if not isinstance(one_stack, bool):
            raise ValueError(f"{SELECTION_KEY}.one_stack must be true or false")
        services = document.get("services")
        if services is None:
            return cls(None, one_stack)
        if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
            raise ValueError(f"{SELECTION_KEY}.services must be a list of service names")
        return cls.of(services, one_stack)


@dataclass(frozen=True)
class RunContext:
    """What one run works on: its project, its selection, its detector and its redactor."""

    project_dir: Path
    selection: Selection = Selection()
    redactor: Redactor = field(default_factory=Redactor, compare=False)

    @classmethod
    def create(cls, project_dir: Path | str = Path("."),
               services: Iterable[str] | None = None) -> RunContext:
        """A fresh run: the project's own pack judges secrets, and a new redactor, which
        knows nothing another run protected."""
        project = Path(project_dir)
        return cls(project, Selection.of(services), Redactor(detector=detector_for(project)))

    @property
    def detector(self) -> Detector:
        return self.redactor.detector


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused for the block (nested blocks: the outermost
    decides). The SDK's futures and callbacks keep it busy for most of a large plan (1000
    services: 75 s with it, 29 s without, 6 % more peak memory); and once the plan exists,
    its millions of live objects make every full collection scan them all, so a command that
    goes on to analyse and print the plan keeps the collector paused to the end (500
    services: the output phase 21 % of the command with it, 5 % without: docs/benchmarks.md).
    Plain garbage is still freed at once by reference counting. Validation pauses it too: its
    hundreds of thousands of small objects made each full pass walk the whole process (a
    quarter of validating 500 services: docs/benchmarks.md)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.freeze()  # what the block allocated goes to the oldest generation, so that
            gc.unfreeze()  # re-enabling does not scan it all at once (300 services: -1.5 s)
            gc.enable()
