"""Parsed catalog files kept on disk between runs, keyed by their bytes (issue 19).

A fleet's catalog is thousands of small YAML files; every command that covers an environment
(`plan --shard`, `validate`) parses all of them, and the redactor then walks every one for
secret values. At 2,000 services that was about a second per command. A file whose bytes are
unchanged since a previous run gives the same parse, so the parse is kept, together with the
redactor's verdict on it. When a run finds many files not kept (a fresh checkout, a new
configplane), it parses them ahead, half of them in a forked copy of itself (`parse_ahead`).

What is kept, and what never is: an entry holds the parse of one file (document, key lines,
duplicate keys) and stands for one fact, "these bytes, read as this service's layer, parse to
this and hold no secret value for this detector" (configplane.redaction.layer_secrets, judged
with the run's detector). A layer read from the cache carries that verdict
(`Layer.secret_free_under`, the detector's identity), and `stack_secrets` skips it only under
the same detector. Nothing secret is written to the cache, in plaintext or otherwise, whatever
the cache directory's permissions:
- a file whose own layer holds any secret value (a pasted password, a spec's value field, a
  value the detector flags) is never kept;
- a file that holds none by itself may still hold a value that is secret elsewhere (another
  shard's `secure` value pasted into a config value, another service's spec value): entries
  are written only at the end of a command (`keeping_parses`, entered by every CLI verb), and
  one holding any string its redactor knows by then (every secret of the environment, for
  `plan`/`validate`: configplane.cli.boundary.protect_stack) is dropped. Outside a command
  (the program under `pulumi up`, library calls) the cache is only read.

Keys: SHA-256 over the entry format, the code the verdict and the parse come from (the loader,
the redactor, the detector's identity: its pack files and libraries; the interpreter's
version, as marshal is version-specific), the file's name and key prefix, and its bytes. A
changed file, loader, detector or interpreter gives a new key, never a stale entry.

Where and how: one bundle per code and detector identity in the schema cache's directory
(`$XDG_CACHE_HOME/configplane`, configplane.inputs.schemacache; `CONFIGPLANE_NO_CACHE=1`
turns both off), shared by every project (its entries are keyed by content, so copies of a
project share them; its size is bounded, the latest run's entries kept first; the
MAX_BUNDLES written last are kept, so an upgrade's leftovers are neither read nor kept),
used only when that directory is the user's own and writable by no one else. The bundle is
`marshal` data (no code runs when it is read) after a header holding the SHA-256 of the
payload, checked before it is read; a damaged, truncated or foreign bundle, or an entry of
the wrong shape, counts as no cache. It is rewritten only when a run parsed something new,
through the project's atomic writer (temp file, fsync, rename, under the directory's lock):
concurrent runs see a whole bundle or none, and the last writer's is kept. The cache is never
a reason to fail.
"""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from configplane.forking import ForkedCall, may_fork
from configplane.inputs.layerfiles import load, parse
from configplane.inputs.schemacache import cache_directory, private_directory
from configplane.inputs.yamlload import KeyPath, Loaded
from configplane.projectfiles import MAX_FILE_BYTES, ProjectFileError, read_bytes, write_files

if TYPE_CHECKING:
    from configplane.redaction import Detector, Redactor

ENTRY_FORMAT = b"configplane-parse-cache 1"
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
BUNDLE_PREFIX, BUNDLE_SUFFIX = "parse-", ".bin"
MAX_BUNDLES = 4  # bundles kept, one per code and detector identity: the latest written
# A bundle is rewritten when its run parsed at least 1/REWRITE_SHARE of the files it read:
# a pull request's few files parse in milliseconds, a fleet's bundle takes ~0.1 s to write
REWRITE_SHARE = 100
MAX_ENTRIES = 20_000  # entries kept (the latest run's first): a few files per service

# (document, lines, duplicates, explicit_null): a Loaded, in types marshal keeps exactly
_Entry = tuple[Any, dict[KeyPath, int], list[tuple[str, int]], bool]
Layering = Callable[[Any], Mapping[str, Any]]  # a file's document -> the layer it makes
_Pending = tuple[str, KeyPath, Layering, bytes, str]  # rel, prefix, layering, bytes, key
FORK_FROM = 256  # files not kept, from which a second process parses half of them
_PARSING = ("parsing catalog files", "run the command again")
K = TypeVar("K")
V = TypeVar("V")


@cache
def code_identity() -> str:
    """The code a parse and its verdict come from: the loader's modules, the redaction
    package, the shared contract, PyYAML and whether libyaml parses, the interpreter
    (marshal's format is its own)."""
    import configplane.redaction

    package = Path(__file__).parent
    redaction = Path(str(configplane.redaction.__file__)).parent
    files = [package / "yamlload.py", package / "layerfiles.py", Path(__file__),
             package.parent / "contract.py", *sorted(redaction.glob("*.py"))]
    digest = hashlib.sha256()
    for part in (ENTRY_FORMAT, yaml.__version__.encode(),
                 str(hasattr(yaml, "CSafeLoader")).encode(), sys.version.encode(),
                 importlib.util.MAGIC_NUMBER, *(f.read_bytes() for f in files)):
        digest.update(b"%d:" % len(part) + part)
    return digest.hexdigest()


# the caches of the running command's catalog reads, written when it ends (`keeping_parses`)
_KEEPING: ContextVar[list[ParseCache] | None] = ContextVar("configplane_parse_caches",
                                                            default=None)


@contextmanager
def keeping_parses(secrets: Redactor) -> Iterator[None]:
    """Within it, catalog reads keep their new parses; at its end they are written, without
    any entry that holds a string `secrets` (the command's redactor) knows as secret."""
    caches: list[ParseCache] = []
    token = _KEEPING.set(caches)
    try:
        yield
    finally:
        _KEEPING.reset(token)
        for parse_cache in caches:
            try:
                parse_cache.save(lambda entries: holding_secrets(entries, secrets, _entry_strings))
            except Exception:  # noqa: BLE001 - never a reason to fail, nor to hide an error
                continue


def _strings(value: Any) -> set[str]:
    """Every mapping key and scalar in `value`, as text (iterative: a kept parse is as deep
    as its file; the exact types first, as a parse holds only those)."""
    found: set[str] = set()
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str:
            found.add(item)
        elif kind is dict or isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif kind is list or kind is tuple or isinstance(item, list | tuple):
            pending.extend(item)
        elif not (item is None or kind is bool):
            found.add(str(item))
    return found


def holding_secrets(values: Mapping[K, V], secrets: Redactor,
                    strings_of: Callable[[V], set[str]] = _strings) -> set[K]:
    """The keys of `values` whose value holds a string `secrets` knows (as a mapping key or a
    scalar, or within one; `strings_of` gives a value's strings, default every key and
    scalar): one pass over the strings of all of them, and one per value only when that pass
    finds a secret (rare: what a cache keeps was judged to hold none already, by the
    detector)."""
    strings = {key: strings_of(value) for key, value in values.items()}
    if not strings or not _holds(set().union(*strings.values()), secrets):
        return set()
    return {key for key, found in strings.items() if _holds(found, secrets)}


def _holds(texts: set[str], secrets: Redactor) -> bool:
    """One redaction pass over `texts` (the separator ends every secret's match)."""
    if secrets.knows(texts):
        return True
    joined = _APART.join(texts)
    return secrets.text(joined) != joined


_APART = "\n\x00\n"


def _entry_strings(entry: _Entry) -> set[str]:
    """A kept parse's strings: its document's, and the names in its key paths and duplicate
    keys (a key written twice is in no value of the document, and what was under its first
    occurrence is only in the paths). Line numbers are positions, not content."""
    document, lines, duplicates, _ = entry
    found = _strings(document)
    found.update(*lines)
    found.update(path for path, _ in duplicates)
    return found


class ParseCache:
    """The kept parses of catalog files, for one run's reading of one catalog. `verdict(document)`:
    whether a layer document holds no secret (`layer_secrets(...)` is empty, with the run's
    detector); `detector_identity`: that detector's; `parser`: what parses a file that is
    not kept (configplane.inputs.layerfiles.parse)."""

    def __init__(self, directory: Path,
                 verdict: Callable[[Mapping[str, Any]], bool], detector_identity: str,
                 parser: Callable[[str, bytes, KeyPath], Loaded] = parse, *,
                 detector: Detector | None = None, fork_from: int = FORK_FROM):
        # a directory that is there but not private to the user: no cache at all; one that
        # is not there yet is made (private) when the first entry is written
        usable = not directory.exists() or private_directory(directory) is not None
        self.directory: Path | None = directory if usable else None
        self.name = bundle_name(detector_identity)
        self.verdict = verdict
        self.parser = parser  # tests pass one that counts its calls
        self.detector_identity = detector_identity
        self.detector = detector  # the verdict's, when it has one: a fork's verdicts join it
        self.fork_from = fork_from
        self._stored: dict[str, _Entry] | None = None
        self._used: dict[str, _Entry] = {}
        self._new: set[str] = set()  # keys parsed in this run, to be written
        self._ahead: dict[str, tuple[KeyPath, bytes, str]] = {}  # rel -> (prefix, bytes, key)
        keeping = _KEEPING.get()
        self.keeping = keeping is not None  # outside a command: read only
        if keeping is not None:
            keeping.append(self)

    @classmethod
    def for_project(cls, project_dir: Path, environ: Mapping[str, str] | None = None,
                    **options: Any) -> ParseCache | None:
        """The cache of the project under the environment's cache directory (None: turned
        off or not usable): its verdicts judged with the project's own detector."""
        from configplane.redaction import detector_for, layer_secrets

        directory = cache_directory(os.environ if environ is None else environ)
        if directory is None:
            return None
        try:
            code_identity()
        except OSError:  # the loader's own files unreadable (an unusual install): no cache
            return None
        detector = detector_for(project_dir)
        return cls(directory, lambda document: not layer_secrets(document, detector),
                   detector.identity, detector=detector, **options)

    def key(self, rel: str, prefix: KeyPath, data: bytes) -> str:
        digest = hashlib.sha256()
        for part in (code_identity().encode(), self.detector_identity.encode(),
                     rel.encode("utf-8", "surrogateescape"),
                     "\0".join(prefix).encode("utf-8", "surrogateescape"), data):
            digest.update(b"%d:" % len(part) + part)
        return digest.hexdigest()

    def load(self, project_dir: Path, rel: str, prefix: KeyPath,
             layer: Layering) -> tuple[Loaded, bool]:
        """The file `rel` parsed (YamlError as `layerfiles.load` raises it) and whether its
        layer (`layer(document)`, as the catalog builds it) holds no secret: from the cache
        when these bytes were kept, else parsed, judged and kept when it holds none."""
        ahead = self._ahead.pop(rel, None)
        if ahead is not None and ahead[0] == prefix:
            _, data, key = ahead
        else:
            try:
                data = read_bytes(project_dir, rel, limit=MAX_FILE_BYTES)
            except (OSError, ProjectFileError):
                return load(project_dir, rel, prefix), False  # the loader's own message
            key = self.key(rel, prefix, data)
        entry = self._used.get(key) or self._entries().get(key)
        if entry is not None:
            self._used[key] = entry
            return Loaded(entry[0], dict(entry[1]), list(entry[2]), entry[3]), True
        return self._parse(rel, prefix, layer, data, key)

    def parse_ahead(self, project_dir: Path, files: Iterable[tuple[str, KeyPath, Layering]]
                    ) -> None:
        """Read `files` ((rel, prefix, layer), as `load` takes them) now; when at least
        `fork_from` of them are not kept (a fresh checkout, a new configplane), parse and
        judge them before `load` asks for each, half of them in a forked copy of this
        process meanwhile (configplane.forking: another core). Nothing is reported here: a
        file that cannot be read, parsed or kept is left to `load`, which says why."""
        if not self.keeping or self.directory is None:
            return
        stored = self._entries()
        missing: list[_Pending] = []
        for rel, prefix, layer in files:
            try:
                data = read_bytes(project_dir, rel, limit=MAX_FILE_BYTES)
            except (OSError, ProjectFileError):
                continue
            key = self.key(rel, prefix, data)
            self._ahead[rel] = (prefix, data, key)
            if key not in stored:
                missing.append((rel, prefix, layer, data, key))
        if len(missing) < max(self.fork_from, 2) or not may_fork():
            return  # parsed by `load`, one by one, as the catalog is read
        half = len(missing) // 2
        try:
            elsewhere = ForkedCall(self._parsed_here, missing[half:], doing=_PARSING)
        except OSError:  # no process to be had: `load` parses them
            return
        try:
            self._parse_each(missing[:half])
        except BaseException:  # interrupted: no waiting for the other half
            elsewhere.cancel()
            raise
        try:
            kept, verdicts = elsewhere.result()
        except Exception:  # noqa: BLE001 - that half is parsed by `load`, which reports
            return
        for key, entry in kept.items():
            self._used[key] = entry
            self._new.add(key)
        if self.detector is not None:
            self.detector.learn(verdicts)

    def _parsed_here(self, pending: list[_Pending]) -> tuple[dict[str, _Entry], dict[Any, Any]]:
        """`pending` parsed and judged (in a forked process): the entries to keep, and the
        detector's verdicts, for the process that forked it to take."""
        recording: AbstractContextManager[dict[Any, Any]] = (
            self.detector.recording() if self.detector else nullcontext({}))
        with recording as verdicts:
            self._parse_each(pending)
        return {key: self._used[key] for *_, key in pending if key in self._new}, verdicts

    def _parse_each(self, pending: list[_Pending]) -> None:
        for rel, prefix, layer, data, key in pending:
            with suppress(Exception):  # reported by `load`, which parses it again
                self._parse(rel, prefix, layer, data, key)

    def _parse(self, rel: str, prefix: KeyPath, layer: Layering, data: bytes,
               key: str) -> tuple[Loaded, bool]:
        loaded = self.parser(rel, data, prefix)
        if (not self.keeping or self.directory is None
                or not isinstance(loaded.document, dict | None)):
            return loaded, False  # not kept (read only, or not a layer the catalog builds)
        try:
            clean = self.verdict(layer(loaded.document))
        except Exception:  # noqa: BLE001 - no detector to judge with (no pack): keep nothing
            return loaded, False
        if clean:
            entry = (loaded.document, loaded.lines, loaded.duplicates, loaded.explicit_null)
            try:
                marshal.dumps(entry)
            except ValueError:  # a date or another type marshal cannot keep: parse each time
                return loaded, True
            self._used[key] = entry
            self._new.add(key)
        return loaded, clean

    def save(self, secret: Callable[[Mapping[str, _Entry]], set[str]] = lambda entries: set()
             ) -> None:
        """Write the bundle when this run parsed something new (at least 1/REWRITE_SHARE of
        what it read): this run's entries first, then the earlier ones, up to MAX_ENTRIES;
        the new entries `secret` names (those that hold a secret value: `keeping_parses`
        passes the command's redactor) are left out."""
        for key in secret({k: self._used[k] for k in self._new}):
            self._new.discard(key)
            del self._used[key]
        if len(self._new) * REWRITE_SHARE < len(self._used) or not self._new:
            return  # a few changed files: parsed again next time, cheaper than a new bundle
        directory = private_directory(self.directory, create=True)
        if directory is None:
            return
        kept = dict(self._used)
        # read again: another cache of this command (another stack's catalog) or another
        # process may have written since this one read
        for key, entry in self._read().items():
            if len(kept) >= MAX_ENTRIES:
                break
            kept.setdefault(key, entry)
        payload = marshal.dumps(kept)
        if len(payload) > MAX_BUNDLE_BYTES:
            payload = marshal.dumps(self._used)
        try:
            write_files(directory, {self.name: sealed(ENTRY_FORMAT, payload)})
        except (OSError, ProjectFileError):  # read-only, full, locked for a minute: no cache
            return
        self._new.clear()
        _drop_old_bundles(directory, self.name)

    def _entries(self) -> dict[str, _Entry]:
        if self._stored is None:
            self._stored = self._read()
        return self._stored

    def _read(self) -> dict[str, _Entry]:
        directory = private_directory(self.directory)  # checked again: it may be new
        if directory is None:
            return {}
        try:
            data = read_bytes(directory, self.name, limit=MAX_BUNDLE_BYTES + 4096)
        except (OSError, ProjectFileError):
            return {}
        return unpack(data)


def bundle_name(detector_identity: str) -> str:
    """The bundle of one code and detector identity: another configplane's or another pack's
    entries, which this run could never use, are neither read nor written with it."""
    digest = hashlib.sha256(f"{code_identity()}\0{detector_identity}".encode()).hexdigest()
    return f"{BUNDLE_PREFIX}{digest[:32]}{BUNDLE_SUFFIX}"


def _drop_old_bundles(directory: Path, current: str) -> None:
    """Keep the MAX_BUNDLES bundles written last (`current` among them): a configplane
    upgraded, or a pack changed, leaves its earlier bundles unread."""
    written = []
    with suppress(OSError), os.scandir(directory) as listing:
        for entry in listing:
            if entry.name.startswith(BUNDLE_PREFIX) and entry.name.endswith(BUNDLE_SUFFIX):
                with suppress(OSError):
                    written.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name))
    for _, name in sorted(written, reverse=True)[MAX_BUNDLES:]:
        if name != current:
            with suppress(OSError):
                (directory / name).unlink()


def unpack(data: bytes) -> dict[str, _Entry]:
    """A bundle's entries, or none when it is not one whole bundle of ours; entries of the
    wrong shape are left out. The entries of the last bundle unpacked are kept with its
    bytes: each stack of a command (and each `ParseCache` of a process) reads the same
    bundle, and checking and unmarshalling it again was most of the cache's cost. Callers
    only read them (a layer's document is never changed: configplane.inputs.catalog.
    reading_once)."""
    if data == _LAST_UNPACKED[0]:  # these very bytes: the same answer
        return _LAST_UNPACKED[1]
    entries = {key: entry for key, entry in unsealed(ENTRY_FORMAT, data).items()
               if _well_formed(key, entry)}
    _LAST_UNPACKED[:] = [data, entries]
    return entries


def sealed(bundle_format: bytes, payload: bytes) -> bytes:
    """A cache bundle: its format and the SHA-256 of its (marshal) payload, then the payload."""
    return bundle_format + b"\n" + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def unsealed(bundle_format: bytes, data: bytes) -> dict[Any, Any]:
    """The mapping one whole `sealed` bundle of this format holds, else {} (damaged,
    truncated, foreign, not a mapping); the caller checks its entries' shape."""
    view = memoryview(data)  # slices of a bundle of megabytes, without copying it
    first = data.find(b"\n")
    second = data.find(b"\n", first + 1) if first >= 0 else -1
    payload = view[second + 1:]
    if not (second >= 0 and view[:first] == bundle_format
            and view[first + 1:second] == hashlib.sha256(payload).hexdigest().encode()):
        return {}
    try:
        value = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


# (bytes, entries) of the last bundle unpacked: a memo of a pure function of the bytes
_LAST_UNPACKED: list[Any] = [None, {}]


def _well_formed(key: Any, entry: Any) -> bool:
    return (isinstance(key, str) and isinstance(entry, tuple) and len(entry) == 4
            and isinstance(entry[1], dict) and isinstance(entry[2], list)
            and isinstance(entry[3], bool))
