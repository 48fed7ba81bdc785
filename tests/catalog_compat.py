"""Edit a project's services as if they were still in Pulumi config.

Tests written against the layout before the catalog change `config["configplane:services"]`
(stack file) or `configplane:defaults.value.services` (Pulumi.yaml). These helpers show the
catalog in that shape, apply the change, and write it back to services/<name>/: so a test
states its case once, and the files it lands in are the catalog's. `catalog_file` maps the
file such a test expects an error in to the catalog file that now holds the value.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

SERVICES_KEY = "configplane:services"
DEFAULTS_KEY = "configplane:defaults"


def _read(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _write(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))


def _catalog(project: Path, file_name: str) -> dict[str, Any]:
    found = {}
    for directory in sorted((project / "services").glob("*/")):
        path = directory / file_name
        if path.is_file():
            found[directory.name] = _read(path)
    return found


def _write_back(project: Path, file_name: str, before: dict[str, Any], after: Any) -> None:
    after = after if isinstance(after, dict) else {}
    for name in set(before) | set(after):
        path = project / "services" / name / file_name
        if name not in after:
            path.unlink(missing_ok=True)
        elif name not in before or before[name] != after[name]:
            if after[name] is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("null\n")
            else:
                _write(path, after[name])


def edit_stack(project: Path, stack: str, change: Callable[[dict], Any]) -> None:
    """`change(config)` on Pulumi.<stack>.yaml's config, services shown under
    `configplane:services` (every catalog service, {} where it has no overlay)."""
    path = project / f"Pulumi.{stack}.yaml"
    document = _read(path)
    overlays = _catalog(project, f"{stack}.yaml")
    names = {d.name for d in (project / "services").glob("*/")}
    view = {name: overlays.get(name, {}) for name in sorted(names)}
    before = {k: yaml.safe_load(yaml.safe_dump(v)) for k, v in view.items()}
    config = document["config"]
    config[SERVICES_KEY] = view
    change(config)
    services = config.pop(SERVICES_KEY, None)
    # Unchanged empty overlays stay absent.
    after = {k: v for k, v in (services or {}).items() if not (v == {} and k not in overlays)}
    _write_back(project, f"{stack}.yaml", {k: v for k, v in before.items() if k in overlays},
                after)
    _write(path, document)


def edit_project(project: Path, change: Callable[[dict], Any]) -> None:
    """`change(config)` on Pulumi.yaml's config, with each service's base shown under
    `configplane:defaults.value.services`."""
    path = project / "Pulumi.yaml"
    document = _read(path)
    config = document["config"]
    bases = _catalog(project, "service.yaml")
    spec = config.setdefault(DEFAULTS_KEY, {"value": {}})
    spec["value"]["services"] = bases
    before = yaml.safe_load(yaml.safe_dump(bases))
    change(config)
    services = config[DEFAULTS_KEY]["value"].pop("services", None)
    _write_back(project, "service.yaml", before, services)
    _write(path, document)


def catalog_file(old_file: str, path: str, stack: str = "dev") -> str:
    """Where a value expected in `old_file` at `path` lives now."""
    parts = path.split(".")
    if parts[0] != "services" or len(parts) < 2:
        return old_file
    if old_file == "Pulumi.yaml":
        return f"services/{parts[1]}/service.yaml"
    if old_file == f"Pulumi.{stack}.yaml":
        return f"services/{parts[1]}/{stack}.yaml"
    return old_file


def to_legacy(project: Path) -> None:
    """Fold the catalog back into Pulumi config: the layout before it (for migration tests)."""
    bases = _catalog(project, "service.yaml")
    project_doc = _read(project / "Pulumi.yaml")
    project_doc["config"][DEFAULTS_KEY]["value"]["services"] = bases
    _write(project / "Pulumi.yaml", project_doc)
    for stack_file in sorted(project.glob("Pulumi.*.yaml")):
        stack = stack_file.name[len("Pulumi."):-len(".yaml")]
        overlays = _catalog(project, f"{stack}.yaml")
        if overlays:
            document = _read(stack_file)
            document["config"][SERVICES_KEY] = overlays
            _write(stack_file, document)
    shutil.rmtree(project / "services")
