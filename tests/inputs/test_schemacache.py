"""Compiled schema checks kept on disk (configplane/inputs/schemacache.py).

A second run does not compile again (compilations counted through the cache's `compiler`
parameter; a new SchemaCache instance is a new run: the in-process memo is per instance), an
entry is keyed by what the code was compiled from, a damaged entry is ignored and replaced,
a directory that cannot be used means no cache and never an error, concurrent runs leave whole
entries, and the CLI finds the cache under $XDG_CACHE_HOME/configplane unless it is turned off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import fastjsonschema
import jsonschema
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from configplane.cli import main
from configplane.inputs import FAST, SCHEMAS_DIR, SchemaCache, load_validator
from configplane.inputs.schemacache import cache_directory
from configplane.model import FLAGD_FLAGS_URI, flagd_fast_check
from tests.conftest import REPO
from tests.projects import copy_project

# A schema with what the fast path must get right: a `$`-anchored pattern, a format, a
# `$ref`, required keys and closed objects.
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"},
        "contact": {"type": "string", "format": "email"},
        "port": {"$ref": "#/$defs/port"},
    },
    "$defs": {"port": {"type": "integer", "minimum": 1, "maximum": 65535}},
}
DOCUMENTS = [{"name": "api"}, {"name": "api\n"}, {"name": "API"}, {}, {"name": "a", "port": 0},
             {"name": "a", "port": 8080, "contact": "a@b.example"}, {"name": "a", "x": 1},
             {"name": "a", "contact": "not an address"}, [], "api"]


class Counting:
    """fastjsonschema.compile_to_code, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args, **kwargs) -> str:
        self.calls += 1
        return fastjsonschema.compile_to_code(*args, **kwargs)


def run(directory: Path | None, schema: Path) -> tuple[Counting, object]:
    """One run: a fresh cache instance over `directory` (so nothing is remembered in
    memory), the schema file's validator and how often it was compiled."""
    counting = Counting()
    validator = load_validator(schema, SchemaCache(directory, counting))
    return counting, validator


def decides_like_jsonschema(validator) -> None:
    fast = FAST[id(validator)]
    reference = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    for document in DOCUMENTS:
        try:
            fast(document)
            valid = True
        except Exception:  # noqa: BLE001
            valid = False
        # "api\n" fails ECMA's `$`; the reference (Python's `$`) would accept it
        expected = reference.is_valid(document) and document != {"name": "api\n"}
        assert valid == expected, document


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    path = tmp_path / "schemas" / "thing.schema.json"
    path.parent.mkdir()
    path.write_text(json.dumps(SCHEMA, indent=2))
    return path


def entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("schema-*.bin"))


def test_a_second_run_does_not_compile_again(tmp_path, schema_file):
    cache = tmp_path / "cache"
    first, validator = run(cache, schema_file)
    assert first.calls == 1 and len(entries(cache)) == 1
    decides_like_jsonschema(validator)
    second, validator = run(cache, schema_file)
    assert second.calls == 0
    decides_like_jsonschema(validator)


def test_the_shipped_schemas_and_flagd_come_from_the_cache_on_a_second_run(tmp_path):
    schemas = [SCHEMAS_DIR / "stack.schema.json", *sorted((SCHEMAS_DIR / "services").glob("*.json"))]
    for expected in (len(schemas), 0):
        counting = Counting()
        cache = SchemaCache(tmp_path, counting)
        for schema in schemas:
            assert id(load_validator(schema, cache)) in FAST
        assert counting.calls == expected
    for expected in (1, 0):
        counting = Counting()
        assert flagd_fast_check(FLAGD_FLAGS_URI, SCHEMAS_DIR, SchemaCache(tmp_path, counting))
        assert counting.calls == expected


def test_an_edited_schema_is_compiled_afresh_and_both_stay(tmp_path, schema_file):
    cache = tmp_path / "cache"
    run(cache, schema_file)
    schema_file.write_text(json.dumps({**SCHEMA, "required": ["name", "port"]}))
    counting, validator = run(cache, schema_file)
    assert counting.calls == 1 and len(entries(cache)) == 2
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        FAST[id(validator)]({"name": "api"})  # the new schema's check, not the old entry's


@settings(max_examples=40, deadline=None)
@given(parts=st.lists(st.text(max_size=5), min_size=1, max_size=4),
       other=st.lists(st.text(max_size=5), min_size=1, max_size=4))
def test_keys_differ_when_anything_compiled_from_differs(parts, other):
    cache = SchemaCache(None)
    same = cache.key(SCHEMA, {"email": None}, *parts) == cache.key(SCHEMA, {"email": None}, *other)
    assert same == (parts == other)
    assert cache.key(SCHEMA, {}, *parts) != cache.key(SCHEMA, {"email": None}, *parts)
    assert cache.key(SCHEMA, {}, *parts) != cache.key({**SCHEMA, "required": []}, {}, *parts)


def test_the_compilers_version_is_part_of_the_key(monkeypatch):
    before = SchemaCache(None).key(SCHEMA, {})
    monkeypatch.setattr(fastjsonschema, "VERSION", "0.0.0-another")
    assert SchemaCache(None).key(SCHEMA, {}) != before


def corruptions(entry: bytes) -> dict[str, bytes]:
    head, digest, payload = entry.split(b"\n", 2)
    flipped = bytearray(payload)
    flipped[len(flipped) // 2] ^= 0x40
    return {
        "empty": b"",
        "truncated": entry[: len(entry) // 2],
        "a byte flipped": head + b"\n" + digest + b"\n" + bytes(flipped),
        "another format": b"configplane-schema-cache 0\n" + digest + b"\n" + payload,
        "not ours": os.urandom(256),
        # whole and signed, but not a (name, code) pair: a digest alone proves no meaning
        "wrong content": _signed(b"configplane-schema-cache 1", b"\xe9\x00\x00\x00\x00"),
        "code that fails": _signed(head, __import__("marshal").dumps(
            ("validate", compile("raise ImportError('gone')", "x", "exec")))),
    }


def _signed(head: bytes, payload: bytes) -> bytes:
    import hashlib

    return head + b"\n" + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


@pytest.mark.parametrize("damage", list(corruptions(b"h\nd\npayload")))
def test_a_damaged_entry_is_ignored_and_replaced(tmp_path, schema_file, damage):
    cache = tmp_path / "cache"
    run(cache, schema_file)
    [entry] = entries(cache)
    entry.write_bytes(corruptions(entry.read_bytes())[damage])
    counting, validator = run(cache, schema_file)
    assert counting.calls == 1
    decides_like_jsonschema(validator)
    assert run(cache, schema_file)[0].calls == 0  # rewritten whole


def test_an_entry_that_is_not_a_regular_file_is_ignored(tmp_path, schema_file):
    cache = tmp_path / "cache"
    run(cache, schema_file)
    [entry] = entries(cache)
    entry.unlink()
    os.mkfifo(entry)  # reading it would block forever
    counting, validator = run(cache, schema_file)
    assert counting.calls == 1
    decides_like_jsonschema(validator)


def unusable(tmp_path: Path) -> dict[str, Path]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could plant code there
    found = {"under a file": a_file / "configplane", "in /proc": Path("/proc/self/configplane"),
             "writable by others": shared}
    if os.geteuid() == 0:
        found["another user's"] = tmp_path / "foreign"
        found["another user's"].mkdir(mode=0o700)
        os.chown(found["another user's"], 65534, 65534)
    return found


@pytest.mark.parametrize("case", ["under a file", "in /proc", "writable by others",
                                  "another user's"])
def test_an_unusable_directory_means_no_cache_and_no_error(tmp_path, schema_file, case):
    places = unusable(tmp_path)
    if case not in places:
        pytest.skip("only root can give a directory to another user")  # run as root here
    directory = places[case]
    for _ in range(2):
        counting, validator = run(directory, schema_file)
        assert counting.calls == 1  # compiled every time, never taken from there
        decides_like_jsonschema(validator)
    assert not (directory.is_dir() and entries(directory))


def test_a_read_only_directory_means_no_cache_and_no_error(tmp_path, schema_file):
    """Read-only for the process that runs: root ignores modes, so as root the run goes
    without the capabilities that let it (setpriv, util-linux)."""
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o555)
    unprivileged = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] \
        if os.geteuid() == 0 else []
    script = ("import sys; from pathlib import Path; sys.path[:0] = [sys.argv[1]];"
              "from tests.inputs.test_schemacache import run, decides_like_jsonschema;"
              "c, v = run(Path(sys.argv[2]), Path(sys.argv[3])); decides_like_jsonschema(v);"
              "print(c.calls)")
    for _ in range(2):
        done = subprocess.run([*unprivileged, sys.executable, "-c", script, str(REPO),
                               str(cache), str(schema_file)], capture_output=True, text=True)
        assert (done.returncode, done.stdout.strip()) == (0, "1"), done.stderr[-2000:]
    assert os.listdir(cache) == []


def test_concurrent_first_runs_leave_whole_entries(tmp_path, schema_file):
    cache = tmp_path / "cache"
    script = ("import sys; from pathlib import Path; sys.path[:0] = [sys.argv[1]];"
              "from tests.inputs.test_schemacache import run, decides_like_jsonschema;"
              "c, v = run(Path(sys.argv[2]), Path(sys.argv[3])); decides_like_jsonschema(v)")
    runs = [subprocess.Popen([sys.executable, "-c", script, str(REPO), str(cache),
                              str(schema_file)], stderr=subprocess.PIPE, text=True)
            for _ in range(6)]
    for process in runs:
        assert process.wait(timeout=120) == 0, process.stderr.read()[-2000:]
    assert [p.name for p in cache.iterdir() if not p.name.startswith("schema-")] == []
    assert len(entries(cache)) == 1  # one key, written whole (each writer renames a whole file)
    assert run(cache, schema_file)[0].calls == 0


def test_the_location_follows_xdg_and_can_be_turned_off(tmp_path):
    home = str(tmp_path)
    assert cache_directory({"XDG_CACHE_HOME": "/c", "HOME": home}) == Path("/c/configplane")
    # the spec: a relative XDG_CACHE_HOME is ignored
    assert cache_directory({"XDG_CACHE_HOME": "rel", "HOME": home}) == tmp_path / ".cache/configplane"
    assert cache_directory({"HOME": home}) == tmp_path / ".cache/configplane"
    assert cache_directory({}) is None
    assert cache_directory({"HOME": home, "CONFIGPLANE_NO_CACHE": "1"}) is None
    assert cache_directory({"HOME": home, "CONFIGPLANE_NO_CACHE": "0"}) is not None


def test_a_home_that_is_not_there_is_not_made_for_a_cache(tmp_path, monkeypatch):
    """A service account's HOME (`/nonexistent`), run as a user who could create it: no cache,
    and nothing created, whatever the command."""
    missing = tmp_path / "nonexistent"
    assert cache_directory({"HOME": str(missing)}) is None
    monkeypatch.setenv("HOME", str(missing))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("CONFIGPLANE_NO_CACHE", raising=False)
    result = CliRunner().invoke(main, ["validate", "--stack", "dev", "--project-dir", str(REPO)])
    assert result.exit_code == 0, result.output
    assert not missing.exists()


def test_the_cli_keeps_its_cache_under_xdg_cache_home(tmp_path):
    """Two runs of `configplane validate`: the first writes the entries, the second reads
    them and writes nothing (same files, same inodes and times); turned off, none at all."""
    project = copy_project(tmp_path / "project")
    configplane = str(Path(sys.executable).parent / "configplane")

    def validate(**env: str) -> None:
        done = subprocess.run([configplane, "validate", "--stack", "prod"], cwd=project,
                              capture_output=True, text=True, env={**os.environ, **env})
        assert done.returncode == 0, done.stderr[-2000:]

    def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
        return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in directory.iterdir()}

    validate(XDG_CACHE_HOME=str(tmp_path / "xdg"))
    first = snapshot(tmp_path / "xdg" / "configplane")
    assert len([name for name in first if name.startswith("schema-")]) >= 2  # stack + apps
    validate(XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert snapshot(tmp_path / "xdg" / "configplane") == first
    validate(XDG_CACHE_HOME=str(tmp_path / "off"), CONFIGPLANE_NO_CACHE="1")
    assert not (tmp_path / "off").exists()
