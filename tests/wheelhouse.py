"""A wheelhouse for an offline install: the wheels of what a wheel declares, repacked from the
distributions installed in the test venv (the same versions, nothing downloaded).

Only what the wheel's own Requires-Dist reaches (with the extras asked for, markers evaluated
for this interpreter) goes in, so `pip install --no-index --find-links` from it can install
nothing the wheel does not declare: a requirements file cannot fill a gap unseen.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Written by the installer, not part of a wheel (RECORD is rewritten).
_INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def wheel_requirements(wheel: Path) -> list[str]:
    """The Requires-Dist lines of a built wheel."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(name).decode())
    return message.get_all("Requires-Dist") or []


def closure(requires: list[str], extras: tuple[str, ...] = ()) -> dict[str, metadata.Distribution]:
    """Every installed distribution `requires` reaches (with `extras` of the top level)."""
    found: dict[str, metadata.Distribution] = {}
    pending = [(line, extras) for line in requires]
    while pending:
        line, wanted = pending.pop()
        requirement = Requirement(line)
        environments = [{"extra": e} for e in wanted] or [{"extra": ""}]
        if requirement.marker and not any(requirement.marker.evaluate(env) for env in environments):
            continue
        key = canonicalize_name(requirement.name)
        dist = metadata.distribution(requirement.name)  # not installed: the test venv is broken
        if key in found:
            continue
        found[key] = dist
        pending += [(r, tuple(requirement.extras)) for r in dist.requires or ()]
    return found


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def repack(dist: metadata.Distribution, out: Path) -> Path:
    """A wheel of an installed distribution: its files inside site-packages (scripts are
    regenerated from entry_points.txt by the installer), its metadata, a fresh RECORD."""
    files = [f for f in dist.files or () if f.parts[0] != ".." and "__pycache__" not in f.parts]
    info = next(f.parts[0] for f in files if f.parts[0].endswith(".dist-info"))
    wheel_meta = Parser().parsestr(dist.read_text("WHEEL") or "")
    tag = wheel_meta.get_all("Tag")[0]
    name = canonicalize_name(dist.metadata["Name"]).replace("-", "_")
    target = out / f"{name}-{dist.version}-{tag}.whl"
    records = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for file in files:
            if file.parts[0] == info and file.name in _INSTALLER_FILES:
                continue
            data = Path(dist.locate_file(file)).read_bytes()
            archive.writestr(file.as_posix(), data)
            records.append(_record_line(file.as_posix(), data))
        records.append(f"{info}/RECORD,,")
        archive.writestr(f"{info}/RECORD", "\n".join(records) + "\n")
    return target


def wheelhouse(wheel: Path, out: Path, extras: tuple[str, ...] = ()) -> list[str]:
    """Repack into `out` what `wheel` declares; the canonical names of what went in."""
    dists = closure(wheel_requirements(wheel), extras)
    for dist in dists.values():
        repack(dist, out)
    return sorted(dists)
