"""Environment parity: two stacks' services side by side, and which differences are expected.

What may differ between environments is declared once, in Pulumi.yaml:

    configplane:parity:
      value:
        expected_differences:
          - services.*.config.LOG_LEVEL
          - reason: the partner integration runs in prod only
            paths: [services.worker.secrets.PARTNER_WEBHOOK_TOKEN]

A pattern is a dotted path in the merged stack document; `*` stands for one key, and a pattern
also covers everything below it. Every other difference is unexpected and breaks parity.

Services are compared as components see them (built-in defaults filled in). Secrets are
compared by their spec (source, store, config_key, ref, ...): a value is never read, so two
stacks "agree" on a secret when it exists in both with the same spec.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configplane.inputs import NAMESPACE, PROJECT_FILE, read_project_file
from configplane.model import StackModel

PARITY_KEY = f"{NAMESPACE}:parity"
_ABSENT = object()


class ParityConfigError(Exception):
    """The `configplane:parity` block is malformed (message names the file, path and fix)."""


@dataclass(frozen=True)
class Expectation:
    pattern: str
    reason: str
    regex: re.Pattern[str]

    def covers(self, path: str) -> bool:
        return self.regex.match(path) is not None


def _compile(pattern: str) -> re.Pattern[str]:
    parts = [r"[^.]+" if part == "*" else re.escape(part) for part in pattern.split(".")]
    return re.compile(r"\.".join(parts) + r"(\..+)?\Z")


def load_expectations(project_dir: Path) -> list[Expectation]:
    """The declared expected differences (none when Pulumi.yaml has no parity block)."""
    block = read_project_file(project_dir).values.get(PARITY_KEY)
    if block is None:
        return []
    where = f"{PROJECT_FILE}: {PARITY_KEY}"
    items = block.get("expected_differences") if isinstance(block, Mapping) else None
    if not isinstance(items, list) or set(block) - {"expected_differences"}:
        raise ParityConfigError(f"{where}: expected `value: {{expected_differences: [...]}}`. "
                                "Fix: list the paths that may differ under expected_differences.")
    found = []
    patterns: list[Any]
    for n, item in enumerate(items):
        if isinstance(item, str):
            patterns, reason = [item], ""
        elif isinstance(item, Mapping) and isinstance(item.get("paths"), list):
            patterns, reason = item["paths"], str(item.get("reason", ""))
        else:
            patterns, reason = [None], ""  # an item of another shape: refused below
        for pattern in patterns:
            if (not isinstance(pattern, str) or not pattern.startswith("services.")
                    or "" in pattern.split(".") or len(pattern.split(".")) < 3):
                raise ParityConfigError(
                    f"{where}.expected_differences[{n}]: not a path pattern. Fix: use a dotted "
                    "path inside a service such as `services.*.config.LOG_LEVEL`, or "
                    "`{reason: ..., paths: [...]}`.")
            found.append(Expectation(pattern, reason, _compile(pattern)))
    return found


@dataclass(frozen=True)
class Row:
    service: str
    path: str  # relative to the service; "" for the service itself
    a: Any  # None: absent on that side (models never hold None: they are dumped without it)
    b: Any
    status: str  # same | expected | unexpected
    reason: str = ""


@dataclass
class Parity:
    stacks: tuple[str, str]
    rows: list[Row]
    declared: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return not any(r.status == "unexpected" for r in self.rows)

    def as_dict(self) -> dict[str, Any]:
        a, b = self.stacks
        counts = {s: sum(r.status == s for r in self.rows) for s in ("same", "expected", "unexpected")}
        services: dict[str, list[dict[str, Any]]] = {}
        for r in self.rows:
            row: dict[str, Any] = {"path": r.path, "status": r.status, a: r.a, b: r.b}
            if r.a is None or r.b is None:
                row["only_in"] = a if r.b is None else b
            if r.reason:
                row["reason"] = r.reason
            services.setdefault(r.service, []).append(row)
        return {"stacks": [a, b], "parity": self.holds, "summary": counts,
                "services": services, "notes": list(self.notes)}


def service_view(model: StackModel, name: str) -> dict[str, Any]:
    return model.services[name].spec.model_dump(exclude_none=True)


def compare(a: StackModel, b: StackModel, expectations: list[Expectation]) -> Parity:
    rows = []
    for name in sorted(set(a.services) | set(b.services)):
        if name not in a.services or name not in b.services:
            present = service_view(a if name in a.services else b, name)
            summary = f"service ({present['app_schema']})"
            rows.append(_row(name, "", summary if name in a.services else None,
                             summary if name in b.services else None, expectations))
            continue
        left, right = service_view(a, name), service_view(b, name)
        for path, x, y in _walk(left, right, ()):
            rows.append(_row(name, ".".join(path), x, y, expectations))
    notes = [] if expectations else [
        f"{PROJECT_FILE} declares no `{PARITY_KEY}`: every difference is unexpected."]
    return Parity((a.stack, b.stack), rows, len(expectations), notes)


def _walk(a: Any, b: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    if isinstance(a, Mapping) and isinstance(b, Mapping) and (a or b):
        for key in sorted(set(a) | set(b), key=str):
            yield from _walk(a.get(key, _ABSENT), b.get(key, _ABSENT), (*path, str(key)))
    else:
        yield path, None if a is _ABSENT else a, None if b is _ABSENT else b


def _row(service: str, path: str, a: Any, b: Any, expectations: list[Expectation]) -> Row:
    if _canonical(a) == _canonical(b):
        return Row(service, path, a, b, "same")
    full = f"services.{service}" + (f".{path}" if path else "")
    for expectation in expectations:
        if expectation.covers(full):
            return Row(service, path, a, b, "expected", expectation.reason or expectation.pattern)
    return Row(service, path, a, b, "unexpected")


def _canonical(value: Any) -> str:
    # 1 and 1.0 and True are different configuration values; JSON with types tells them apart.
    return json.dumps(value, sort_keys=True) + type(value).__name__
