"""The secret detector's "not secret" verdicts kept on disk between runs (issue 19).

Every command judges what it prints with the pack's detector (configplane.redaction): loading
it (detect-secrets' plugins, the gitleaks rules) and judging a shard's names were about a
quarter of a second of each `plan --shard`, for the strings the run before judged alike. A
verdict is a pure function of the (key, value) pair and the detector's identity (its pack
files and libraries: `Detector.identity`), so one kept from an earlier run under the same
identity is the verdict this run would reach (`Detector.keep`).

What is kept, and what never is: only "this pair is not secret", as a 16-byte BLAKE2b digest
keyed by the detector's identity (`Detector.digest`): never a value, never a secret verdict (a
pair the detector flags is judged again each run). A pair holding a string the command's
redactor knows by its end (a `secure` value, a value flagged elsewhere, a key declared
secret) is not kept either: its digest would let whoever reads the cache test guesses of a
secret. The same place and rules as the parse cache (configplane.inputs.parsecache): the
user's own private cache directory, one marshal bundle checked by its SHA-256 before it is
read, written through the project's atomic writer when the command ends and only when it
judged something new; the digests of the last few detector identities (a pack upgraded, two
projects), each bounded. A damaged bundle is no cache; the cache is never a reason to fail.
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from configplane.inputs.parsecache import holding_secrets, sealed, unsealed
from configplane.inputs.schemacache import cache_directory, private_directory
from configplane.projectfiles import ProjectFileError, read_bytes, write_files

if TYPE_CHECKING:
    from configplane.redaction import Detector, Redactor

BUNDLE_FORMAT = b"configplane-verdicts 1"
BUNDLE_NAME = "verdicts.bin"
MAX_DIGESTS = 200_000  # per identity (~4 MB): the strings of a few fleet-sized environments
MAX_IDENTITIES = 4
MAX_BUNDLE_BYTES = MAX_IDENTITIES * MAX_DIGESTS * 24 + 4096


@contextmanager
def keeping_verdicts(secrets: Redactor, environ: Mapping[str, str] | None = None
                     ) -> Iterator[None]:
    """Within it, the command's detector takes the kept verdicts of its identity; at its end
    the pairs it judged not secret are kept, without any that holds a string `secrets` (the
    command's redactor) knows as secret by then."""
    directory = cache_directory(os.environ if environ is None else environ)
    if directory is None:
        yield
        return
    detector = secrets.detector
    cache = VerdictCache(directory, detector)
    detector.keep(cache.digests)
    try:
        yield
    finally:
        detector.keep(None)
        # never a reason to fail, nor to hide an error
        with suppress(Exception):
            cache.save(detector.take_clean(), secrets)


class VerdictCache:
    """The kept verdicts of one detector, in one cache directory."""

    def __init__(self, directory: Path, detector: Detector):
        self.directory = directory
        self.detector = detector
        self._bundle: dict[str, frozenset[bytes]] | None = None

    def digests(self) -> frozenset[bytes]:
        """This detector's kept digests (read when first asked for)."""
        return self._read().get(self.detector.identity, frozenset())

    def save(self, clean: list[tuple[str, str]], secrets: Redactor) -> None:
        if not clean:  # judged nothing new: the bundle is neither read nor written
            return
        kept = self.digests()
        secret = holding_secrets(dict(enumerate(clean)), secrets)
        new = {self.detector.digest(key, value) for n, (key, value) in enumerate(clean)
               if n not in secret} - kept
        if not new:
            return
        directory = private_directory(self.directory, create=True)
        if directory is None:
            return
        self._bundle = None  # read again: another process may have written meanwhile
        others = self._read()
        mine = list(new) + list(others.get(self.detector.identity, kept) - new)
        bundle = {self.detector.identity: mine[:MAX_DIGESTS]}
        for identity, digests in others.items():
            if len(bundle) < MAX_IDENTITIES and identity not in bundle:
                bundle[identity] = list(digests)
        try:
            write_files(directory, {BUNDLE_NAME: sealed(BUNDLE_FORMAT, marshal.dumps(bundle))})
        except (OSError, ProjectFileError):  # read-only, full, locked for a minute: no cache
            return

    def _read(self) -> dict[str, frozenset[bytes]]:
        if self._bundle is None:
            self._bundle = _unpack(self._bytes())
        return self._bundle

    def _bytes(self) -> bytes:
        directory = private_directory(self.directory)
        if directory is None:
            return b""
        try:
            return read_bytes(directory, BUNDLE_NAME, limit=MAX_BUNDLE_BYTES)
        except (OSError, ProjectFileError):
            return b""


def _unpack(data: bytes) -> dict[str, frozenset[bytes]]:
    """A bundle's digests per identity; nothing when it is not one whole bundle of ours."""
    return {identity: frozenset(d for d in digests if isinstance(d, bytes) and len(d) == 16)
            for identity, digests in unsealed(BUNDLE_FORMAT, data).items()
            if isinstance(identity, str) and isinstance(digests, list)}
