"""Compiled schema checks kept on disk between runs, keyed by what they were compiled from.

fastjsonschema turns a schema into Python source (the stack schema: about 430 KB) that
Python then compiles; on every run that cost more than checking the documents. An entry holds
that compiled code (`marshal`), under a key hashed from everything the code depends on: the
schema as compiled, the format names it checks, the fastjsonschema version and the
interpreter's bytecode magic (plus what the caller adds: a schema file's text). A changed
schema or an upgrade gives a new key, never a stale entry.

Where: `$XDG_CACHE_HOME/configplane` (`~/.cache/configplane` when unset or not absolute, as the
XDG base directory spec says); `CONFIGPLANE_NO_CACHE=1` turns it off. The cache is never a
reason to fail: a directory that is missing and cannot be made, read-only, not the user's own
or writable by others, and an entry that is truncated, corrupted or from another version, all
mean "compile as if there were no cache". Entries are written through the project's one
atomic writer (configplane.projectfiles: temp file, fsync, rename, under the directory's lock),
so concurrent runs see a whole entry or none; each entry carries the SHA-256 of its payload,
checked before `marshal` reads it (marshal is not meant for damaged data).
"""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import CodeType
from typing import Any

from configplane.projectfiles import ProjectFileError, read_bytes, write_files

ENTRY_FORMAT = b"configplane-schema-cache 1"
NO_CACHE_VARIABLE = "CONFIGPLANE_NO_CACHE"
MAX_ENTRY_BYTES = 16 * 1024 * 1024
_ROOT_FUNCTION = re.compile(r"^def (\w+)\(data, custom_formats", re.M)

Compiler = Callable[..., str]  # fastjsonschema.compile_to_code's signature


def cache_directory(environ: Mapping[str, str]) -> Path | None:
    """Where entries live for this environment, or None when the cache is turned off."""
    if environ.get(NO_CACHE_VARIABLE, "").strip() not in ("", "0"):
        return None
    base = environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the spec: a relative path is invalid and ignored
        home = environ.get("HOME", "")
        # a home that is not there (a service account's `/nonexistent`) is not made for a cache
        if not os.path.isabs(home) or not os.path.isdir(home):
            return None
        base = os.path.join(home, ".cache")
    return Path(base) / "configplane"


@dataclass(frozen=True, eq=False)
class SchemaCache:
    """Compiled checks of one cache directory (None: compile every time, store nothing).
    `compiler` makes the source (fastjsonschema.compile_to_code when None); tests pass one
    that counts its calls. Compared by identity: each instance is its own memo key."""

    directory: Path | None
    compiler: Compiler | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SchemaCache:
        return _shared(cache_directory(os.environ if environ is None else environ))

    def key(self, schema: Any, formats: Mapping[str, Any], *identity: str) -> str:
        import fastjsonschema

        parts = [ENTRY_FORMAT.decode(), fastjsonschema.VERSION, importlib.util.MAGIC_NUMBER.hex(),
                 repr(schema), ",".join(sorted(formats)), *identity]
        digest = hashlib.sha256()
        for part in parts:  # length-prefixed: no two lists of parts hash alike
            data = part.encode("utf-8", "surrogatepass")
            digest.update(b"%d:" % len(data) + data)
        return digest.hexdigest()

    def load(self, key: str, formats: Mapping[str, Any]) -> Callable[[Any], Any] | None:
        """The check stored under `key`, or None (no entry, or one that cannot be used)."""
        directory = self._usable()
        if directory is None:
            return None
        try:
            data = read_bytes(directory, _entry_name(key), limit=MAX_ENTRY_BYTES)
        except (OSError, ProjectFileError):
            return None
        entry = _unpack(data)
        if entry is None:
            return None
        try:
            return _bound(*entry, formats)
        except Exception:  # noqa: BLE001 - an entry that does not run (an import gone): no cache
            return None

    def build(self, key: str, schema: Any, formats: Mapping[str, Any],
              handlers: Mapping[str, Callable[[str], Any]] | None = None) -> Callable[[Any], Any]:
        """Compile `schema` (fastjsonschema's exceptions propagate) and store it under `key`."""
        compiler = self.compiler or _compile_to_code()
        source = compiler(schema, handlers=dict(handlers or {}), formats=dict(formats),
                          use_default=False)
        found = _ROOT_FUNCTION.search(source)  # the schema's own function is generated first
        if found is None:
            raise ValueError("fastjsonschema generated no validation function")
        code = compile(source, f"<compiled schema {key[:12]}>", "exec")
        self._store(key, found.group(1), code)
        return _bound(found.group(1), code, formats)

    def _store(self, key: str, root: str, code: CodeType) -> None:
        directory = self._usable(create=True)
        if directory is None:
            return
        payload = marshal.dumps((root, code))
        header = ENTRY_FORMAT + b"\n" + hashlib.sha256(payload).hexdigest().encode() + b"\n"
        try:
            write_files(directory, {_entry_name(key): header + payload})
        except (OSError, ProjectFileError):  # read-only, full, locked for a minute: no cache
            return

    def _usable(self, *, create: bool = False) -> Path | None:
        return private_directory(self.directory, create=create)


def private_directory(directory: Path | None, *, create: bool = False) -> Path | None:
    """`directory` if it is safe to read cache entries from (the user's own, writable by no
    one else); with `create`, made first (private to the user) when missing. None otherwise."""
    if directory is None:
        return None
    try:
        if create:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        return None
    return directory


def _shared(directory: Path | None) -> SchemaCache:
    """One instance per directory, so the in-process memo of compiled validators is shared."""
    return _INSTANCES.setdefault(directory, SchemaCache(directory))


_INSTANCES: dict[Path | None, SchemaCache] = {}


def _compile_to_code() -> Compiler:
    import fastjsonschema

    return fastjsonschema.compile_to_code


def _entry_name(key: str) -> str:
    return f"schema-{key}.bin"


def _unpack(data: bytes) -> tuple[str, CodeType] | None:
    """An entry's (root function name, code), or None if it is not one whole entry of ours."""
    head, _, rest = data.partition(b"\n")
    digest, _, payload = rest.partition(b"\n")
    if head != ENTRY_FORMAT or digest != hashlib.sha256(payload).hexdigest().encode():
        return None
    try:
        root, code = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    if not isinstance(root, str) or not isinstance(code, CodeType):
        return None
    return root, code


def _bound(root: str, code: CodeType, formats: Mapping[str, Any]) -> Callable[[Any], Any]:
    """The check: the generated module run, as fastjsonschema.compile runs it, its root
    function given the format checkers."""
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    function = namespace[root]
    return partial(function, custom_formats=dict(formats)) if formats else function
