"""What a verb needs beyond the base install: the optional extras declared in pyproject.toml
(`plan`: the Pulumi program's SDKs). A missing one is named with the command that installs it,
before anything imports it (where it would be an internal error)."""

from __future__ import annotations

import re
from importlib import metadata

from configplane.cli.boundary import UserError

DISTRIBUTION = "configplane"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def extra_requirements(extra: str, requires: list[str]) -> list[str]:
    """The distribution names of one extra, from Requires-Dist lines (`pulumi; extra == "plan"`)."""
    marker = re.compile(r"""\bextra\s*==\s*["']""" + re.escape(extra) + """["']""")
    return [match.group(0) for line in requires
            if ";" in line and marker.search(line.split(";", 1)[1])
            and (match := _NAME.match(line.strip()))]


def missing(names: list[str]) -> list[str]:
    absent = []
    for name in names:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            absent.append(name)
    return absent


def require_extra(extra: str, verb: str) -> None:
    """Refuse to run `verb` without the distributions of `configplane[extra]`."""
    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return
    absent = missing(extra_requirements(extra, requires))
    if absent:
        raise UserError(
            f"`configplane {verb}` needs the Pulumi SDKs (the `{extra}` extra), and these are not installed: "
            f"{', '.join(absent)}. Fix: pip install 'configplane[{extra}]' (in a checkout of "
            "the project: `pip install -r requirements.txt`, the versions the program pins).")
