"""The detector's "not secret" verdicts kept on disk (configplane/inputs/verdictcache.py).

The invariants: a kept verdict is the one the detector reaches (so whatever a run prints is
what it would print without the cache); a run whose pairs were all judged before loads no
detector module; nothing secret is kept (no pair the detector flags, none holding a string
the command's redactor knows, nothing in plaintext); a damaged, foreign or unsafe bundle, or
a detector of another identity, means no cache, never an error.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from configplane.inputs import keeping_verdicts
from configplane.inputs.verdictcache import BUNDLE_NAME, VerdictCache
from configplane.redaction import Detector, Redactor
from configplane.redaction.detector import pack_dir

TOKEN = "ghp_" + "Zq81LmNp0XrAbCdEf0123456789AbCdEf0123"  # flagged by its vendor's shape
DECLARED = "plain-looking-declared-value-7"  # not flagged: secret because the stack says so
CLEAN = [("LOG_LEVEL", "info"), ("name", "api-config-hf678c7m2b"), ("replicas", "3"),
         ("url", "https://api.example.com/v1"), ("owners", "@shop/web-team")]


def environ(home: Path) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(home)}


def judge(home: Path, pairs: list[tuple[str, str]], known: tuple[str, ...] = ()
          ) -> tuple[Detector, list[tuple[str, ...]]]:
    """One command's judging of `pairs` with a fresh detector (a new process), its redactor
    knowing `known`: the detector, and the rules that fired per pair."""
    detector = Detector(pack_dir())
    secrets = Redactor(known, detector=detector)
    with keeping_verdicts(secrets, environ(home)):
        verdicts = [detector.rules(key, value) for key, value in pairs]
    return detector, verdicts


def kept(home: Path) -> frozenset[bytes]:
    return VerdictCache(home / "configplane", Detector(pack_dir())).digests()


def test_a_second_run_reaches_the_same_verdicts_without_loading_the_detector(tmp_path):
    pairs = [*CLEAN, ("token", TOKEN)]
    first, verdicts = judge(tmp_path, pairs)
    assert verdicts[-1] and not any(verdicts[:-1])
    again, clean_verdicts = judge(tmp_path, CLEAN)
    assert clean_verdicts == verdicts[:-1]
    assert again._module is None  # every pair was judged before: nothing to load
    _, with_token = judge(tmp_path, pairs)
    assert with_token == verdicts  # a secret verdict is reached again, never kept


def test_nothing_secret_is_kept(tmp_path):
    detector, _ = judge(tmp_path, [*CLEAN, ("token", TOKEN), ("password_hint", DECLARED),
                                   ("note", f"see {DECLARED} here")], known=(DECLARED,))
    digests = kept(tmp_path)
    assert {detector.digest(k, v) for k, v in CLEAN} <= digests
    for pair in [("token", TOKEN), ("password_hint", DECLARED), ("note", f"see {DECLARED} here")]:
        assert detector.digest(*pair) not in digests
    data = (tmp_path / "configplane" / BUNDLE_NAME).read_bytes()
    assert b"info" not in data and DECLARED.encode() not in data and TOKEN.encode() not in data


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["name", "password", "LOG_LEVEL", "api_key", "url"]),
                          st.text(max_size=30) | st.sampled_from([TOKEN, "AKIAQ7RZ5M2XK9P4W3NB"])),
                max_size=8))
def test_kept_verdicts_are_the_detectors_own(tmp_path_factory, pairs):
    home = tmp_path_factory.mktemp("cache")
    plain = Detector(pack_dir())  # no cache at all
    _, first = judge(home, pairs)
    _, second = judge(home, pairs)
    assert first == second == [plain.rules(key, value) for key, value in pairs]


def test_another_identity_takes_nothing(tmp_path):
    judge(tmp_path, CLEAN)
    changed = tmp_path / "pack"  # the pack's files, one of them changed: another identity
    changed.mkdir()
    for file in pack_dir().iterdir():
        if file.is_file():
            shutil.copy(file, changed / file.name)
    with (changed / "secret_detector.py").open("a") as module:
        module.write("# a rule changed\n")
    other = Detector(changed)
    assert other.identity != Detector(pack_dir()).identity
    assert VerdictCache(tmp_path / "configplane", other).digests() == frozenset()


@pytest.mark.parametrize("damage", ["truncate", "flip", "foreign", "empty"])
def test_a_damaged_bundle_is_no_cache(tmp_path, damage):
    judge(tmp_path, CLEAN)
    path = tmp_path / "configplane" / BUNDLE_NAME
    data = path.read_bytes()
    path.write_bytes({"truncate": data[:-7], "flip": data[:-1] + bytes([data[-1] ^ 1]),
                      "foreign": b"something else\n" + data, "empty": b""}[damage])
    assert kept(tmp_path) == frozenset()
    detector, verdicts = judge(tmp_path, CLEAN)  # judged again, and kept again
    assert not any(verdicts) and detector._module is not None
    assert kept(tmp_path) == {detector.digest(k, v) for k, v in CLEAN}


def test_an_unsafe_or_turned_off_cache_is_neither_read_nor_written(tmp_path):
    judge(tmp_path, CLEAN)
    directory = tmp_path / "configplane"
    os.chmod(directory, 0o777)
    detector, _ = judge(tmp_path, CLEAN)
    assert detector._module is not None  # the bundle of a directory others may write: unread
    os.chmod(directory, 0o700)
    off = tmp_path / "off"
    detector = Detector(pack_dir())
    with keeping_verdicts(Redactor(detector=detector), {"XDG_CACHE_HOME": str(off),
                                                         "CONFIGPLANE_NO_CACHE": "1"}):
        detector.rules("LOG_LEVEL", "info")
    assert not off.exists()
