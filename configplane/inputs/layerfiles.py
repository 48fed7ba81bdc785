"""One YAML file of a stack's layers, read once: its document, the line of every key and the
keys it sets twice. Shared by the Pulumi config reader (configplane.inputs.pulumiconfig) and the
service catalog reader (configplane.inputs.catalog).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from configplane.inputs.yamlload import MAX_BYTES, KeyPath, Loaded, YamlError, load_bytes
from configplane.projectfiles import ProjectFileError, read_bytes

Problem = tuple  # (key path, file, message[, line])


@lru_cache(maxsize=16384)
def parse(name: str, data: bytes, prefix: KeyPath) -> Loaded:
    """Parsed once per content: validating three stacks reads each service.yaml once."""
    return load_bytes(data, name, prefix)


def load(project_dir: Path | str, rel: str, prefix: KeyPath = ()) -> Loaded:
    """The project's file `rel` (contained, its size checked before it is read), parsed; a
    YamlError names `rel`."""
    try:
        data = read_bytes(project_dir, rel, limit=MAX_BYTES)
    except ProjectFileError as exc:
        raise YamlError(exc.path, exc.problem) from None
    except FileNotFoundError:
        where = (Path(project_dir) / rel).parent.resolve()
        raise YamlError(rel, f"file not found in {where}") from None
    except OSError as exc:
        raise YamlError(rel, f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    return parse(rel, data, prefix)


def duplicates(loaded: Loaded, file: str, prefix: KeyPath = ()) -> list[Problem]:
    problems = []
    for key, line in loaded.duplicates:
        full = ".".join((*prefix, key))
        problems.append((full, file, f"key `{full}` appears twice (again at line {line}); "
                         "YAML keeps only the last one. Fix: remove one of them.", line))
    return problems


def subtree_lines(lines: Mapping[KeyPath, int], prefix: KeyPath) -> dict[KeyPath, int]:
    n = len(prefix)
    return {p[n:]: line for p, line in lines.items() if p[:n] == prefix and len(p) > n}


def lines_by_child(lines: Mapping[KeyPath, int], prefix: KeyPath) -> dict[str, dict[KeyPath, int]]:
    """Lines below prefix.<child>, grouped by child, relative to prefix (one pass)."""
    n = len(prefix)
    grouped: dict[str, dict[KeyPath, int]] = {}
    for p, line in lines.items():
        if len(p) > n and p[:n] == prefix:
            grouped.setdefault(p[n], {})[p[n:]] = line
    return grouped
