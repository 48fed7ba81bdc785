"""The CrossGuard pack's plaintext-secret detector, so the CLI judges exactly as the pack does.

Which pack is the project's: a run names its project directory (configplane.inputs.RunContext)
and gets that project's detector from `detector_for`; nothing here remembers a project.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache, cached_property, lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

SOURCE_PACK_DIR = Path(__file__).resolve().parents[2] / "policies"  # a source checkout
SCAN_CACHE = 65536  # (key, value) verdicts kept per detector: config values repeat a lot
Verdict = tuple[bool, tuple[str, ...]]  # secret or not, and the rules that fired
CLEAN: Verdict = (False, ())


def pack_dir(project_dir: Path | None = None) -> Path:
    """The pack beside the project (`--project-dir`, else the working directory), else the
    source checkout this package runs from. An installed wheel has no pack of its own: the
    pack is the project's, as the Pulumi CLI runs it."""
    candidates = [p / "policies" for p in (project_dir, Path.cwd()) if p is not None]
    for candidate in [*candidates, SOURCE_PACK_DIR]:
        if (candidate / "secret_detector.py").is_file():
            return candidate
    return candidates[0] if candidates else SOURCE_PACK_DIR


class Detector:
    """One pack's detector (policies/secret_detector.py) with its verdicts cached: what a run
    judges plaintext secrets with. The module is loaded when first used (a command that judges
    nothing runs without a pack); its own API (`scan`, `scan_many`, `explain`) is reachable
    on the detector as on the module."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._module: ModuleType | None = None
        self._verdict = lru_cache(maxsize=SCAN_CACHE)(self._judge)
        self._learned: dict[tuple[str, str], Verdict] = {}
        self._records: list[dict[tuple[str, str], Verdict]] = []
        self._kept: Callable[[], frozenset[bytes]] | None = None  # `keep`
        self._clean: list[tuple[str, str]] = []  # judged not secret since `take_clean`,
        # while a verdict cache is kept (outside a command nothing is recorded)

    @cached_property
    def identity(self) -> str:
        """What this detector's verdicts depend on, hashed: every file at the top of its pack
        directory (the module and the rule and vocabulary files it reads; a policy module
        changing too only costs a cache miss) and the libraries its rules come from. Equal
        identities judge alike: a verdict kept across runs (the parse cache's "this catalog
        file holds no secret") is only used under the identity it was made with."""
        digest = hashlib.sha256()
        for dist in ("detect-secrets", "google-re2"):
            try:
                version = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                version = "-"
            digest.update(f"{dist}={version}\n".encode())
        try:
            files = sorted(p for p in self.directory.iterdir() if p.is_file())
        except OSError:
            files = []
        for path in files:
            try:
                data = path.read_bytes()
            except OSError:
                data = b"\0unreadable"
            digest.update(b"%d:%s %d:" % (len(path.name), path.name.encode(), len(data)) + data)
        return digest.hexdigest()

    @property
    def module(self) -> ModuleType:
        if self._module is None:
            self._module = _load_module(self.directory)
        return self._module

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.module, name)

    def _judge(self, key: str, value: str) -> Verdict:
        verdict = self._learned.get((key, value))
        if verdict is None:
            if self._kept is not None and self.digest(key, value) in self._kept():
                verdict = CLEAN  # judged so by a run before, under this very identity
            else:
                found = self.module.scan(key, value)
                verdict = bool(found.secret), tuple(found.rules)
                if verdict == CLEAN and self._kept is not None:
                    self._clean.append((key, value))
            for record in self._records:
                record[key, value] = verdict
        return verdict

    def digest(self, key: str, value: str) -> bytes:
        """A (key, value) pair as a verdict cache keeps it: a BLAKE2b digest keyed by this
        detector's identity, so it stands for a verdict of this detector only."""
        data = [part.encode("utf-8", "surrogatepass") for part in (key, value)]
        return hashlib.blake2b(b"%d:" % len(data[0]) + data[0] + data[1], digest_size=16,
                               key=self.identity.encode()[:64]).digest()

    def keep(self, kept: Callable[[], frozenset[bytes]] | None) -> None:
        """Take the digests `kept()` returns (read when first needed) as pairs judged not
        secret by this detector in earlier runs (configplane.inputs.verdictcache): they
        are not judged again, and the module is not loaded for them. None: no such cache."""
        self._kept = kept

    def take_clean(self) -> list[tuple[str, str]]:
        """The pairs judged not secret (or learned so) since the last call, for a verdict
        cache to keep: each is a verdict a later run need not reach again."""
        clean, self._clean = self._clean, []
        return clean

    @contextmanager
    def recording(self) -> Iterator[dict[tuple[str, str], Verdict]]:
        """Every verdict this detector reaches meanwhile ((key, value) -> verdict), those it
        already had aside: what a forked copy of this process judged, for `learn`."""
        record: dict[tuple[str, str], Verdict] = {}
        self._records.append(record)
        try:
            yield record
        finally:
            self._records.remove(record)

    def learn(self, verdicts: Mapping[tuple[str, str], Verdict]) -> None:
        """Take the verdicts this very detector reached in a forked copy of this process
        (`recording`) as its own: a verdict is a pure function of key, value and the pack's
        module, which the fork shares."""
        self._learned.update(verdicts)
        if self._kept is not None:  # the fork's verdicts are this run's, to keep as well
            self._clean.extend(pair for pair, verdict in verdicts.items() if verdict == CLEAN)

    def rules(self, key: str, value: Any) -> tuple[str, ...]:
        """The rules that fire on this key/value pair (empty: not a secret)."""
        if isinstance(value, str):  # the common case first: no ABC check per value
            text = value
        elif isinstance(value, bool) or value is None or isinstance(value, Mapping | list):
            return ()
        else:
            text = str(value)
        if not text.strip():  # any length: the detector is linear in the value
            return ()
        secret, rules = self._verdict(str(key), text)
        return rules if secret else ()


def detector_for(project_dir: Path | str | None = None) -> Detector:
    """The detector of the project's pack (see `pack_dir`); one per pack directory."""
    return _detector(pack_dir(Path(project_dir) if project_dir is not None else None).resolve())


def load_detector(project_dir: Path | None = None) -> ModuleType:
    """The pack's detector module itself (policies/secret_detector.py), loaded once per pack."""
    return detector_for(project_dir).module


@cache
def _detector(directory: Path) -> Detector:
    return Detector(directory)


def _load_module(directory: Path) -> ModuleType:
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
