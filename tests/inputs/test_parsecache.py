"""Parsed catalog files kept on disk (configplane/inputs/parsecache.py).

The invariants: a read through the cache gives what a read without it gives (the stack's
inputs and the redactor's inventory of its secrets, whatever the files hold); a second run
parses no unchanged file and a changed one again; no secret value of any catalog file is ever
written to the cache; a damaged, foreign or unsafe cache means no cache, never an error; and
concurrent runs leave one whole bundle.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configplane.inputs import Layer, YamlError, keeping_parses, layerfiles, read_inputs
from configplane.inputs.parsecache import ENTRY_FORMAT, ParseCache, holding_secrets, unpack
from configplane.redaction import Redactor, detector_for, layer_secrets, stack_secrets
from configplane.redaction.redactor import catalog_secrets
from tests.projects import copy_project

# values the redactor holds secret in a catalog file, each in another way
SECRETS = {
    "spec-value": "Pw-cachecanary-1-x9Q",        # a secret spec's non-metadata field
    "pasted-spec": "sk_live_cachecanary2AbCdEfGh12",  # a spec pasted as a string
    "flagged-config": "ghp_cachecanary30123456789abcdefghij",  # the detector flags it
}


class Counting:
    """layerfiles.parse, counting the files it parses."""

    def __init__(self) -> None:
        self.files: list[str] = []

    def __call__(self, name: str, data: bytes, prefix: tuple[str, ...]):
        self.files.append(name)
        return layerfiles.parse(name, data, prefix)


def catalog_read(project: Path, cache_home: Path, stack: str = "dev",
                 parser: Counting | None = None,
                 secrets: Redactor | None = None) -> tuple[dict, bool]:
    """Every catalog file of the stack read through a fresh cache, as one command (a new
    run) reads it, `secrets` its redactor: the layers by file, and whether anything was
    parsed."""
    from configplane.inputs import catalog

    options = {"parser": parser} if parser is not None else {}
    layers = {}
    with keeping_parses(secrets or Redactor(detector=detector_for(project))):
        cache = ParseCache.for_project(project, {"XDG_CACHE_HOME": str(cache_home)}, **options)
        assert cache is not None
        for name in catalog.catalog_services(project):
            found: list = []
            read = catalog._catalog_layers(project, name, stack, {stack}, found, cache)
            for layer in read or ():
                layers[layer.file] = layer
    return layers, bool(parser and parser.files)


def plant_secrets(project: Path) -> None:
    api = project / "services" / "api" / "service.yaml"
    document = yaml.safe_load(api.read_text())
    document["secrets"]["DATABASE_PASSWORD"]["password"] = SECRETS["spec-value"]
    document["secrets"]["STRIPE_KEY"] = SECRETS["pasted-spec"]
    api.write_text(yaml.safe_dump(document, sort_keys=False))
    worker = project / "services" / "worker" / "dev.yaml"
    overlay = yaml.safe_load(worker.read_text()) if worker.is_file() else {}
    overlay.setdefault("config", {})["PARTNER_TOKEN"] = SECRETS["flagged-config"]
    worker.write_text(yaml.safe_dump(overlay, sort_keys=False))


def bundle_bytes(cache_home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((cache_home / "configplane").glob("parse-*")))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project", policies=True)


def test_a_second_run_parses_nothing_and_reads_the_same(project: Path, tmp_path: Path) -> None:
    cold, parsed = catalog_read(project, tmp_path / "cache", parser=Counting())
    assert parsed
    counting = Counting()
    warm, _ = catalog_read(project, tmp_path / "cache", parser=counting)
    assert counting.files == []
    assert {f: (layer.document, dict(layer.lines)) for f, layer in warm.items()} == \
        {f: (layer.document, dict(layer.lines)) for f, layer in cold.items()}
    assert all(layer.secret_free_under for layer in warm.values())
    # a changed file is parsed again, and only it
    path = project / "services" / "api" / "service.yaml"
    path.write_text(path.read_text() + "# changed\n")
    counting = Counting()
    catalog_read(project, tmp_path / "cache", parser=counting)
    assert counting.files == ["services/api/service.yaml"]


def test_no_secret_is_written_and_secret_files_are_always_judged(project: Path,
                                                                tmp_path: Path) -> None:
    plant_secrets(project)
    for _ in range(2):  # cold, then warm
        layers, _ = catalog_read(project, tmp_path / "cache")
        written = bundle_bytes(tmp_path / "cache")
        assert written  # the other files were kept
        for value in SECRETS.values():
            assert value.encode() not in written
        for file in ("services/api/service.yaml", "services/worker/dev.yaml"):
            assert layers[file].secret_free_under == ""  # never skipped by the redactor
    detector = detector_for(project)
    kept = [layer for layer in layers.values() if layer.secret_free_under]
    assert kept and all(layer_secrets(layer.document, detector) == set() for layer in kept)


def test_a_value_secret_elsewhere_is_not_written(project: Path, tmp_path: Path) -> None:
    """A file that holds no secret by itself, but a value the command knows is secret (another
    shard's `secure` value, pasted): its parse is not kept."""
    pasted = "v1:pastedcanary:AbCdEfGh0123456789+/=="
    path = project / "services" / "web" / "dev.yaml"
    path.write_text(path.read_text() + f"description_note: see {pasted} here\n")
    counting = Counting()
    layers, _ = catalog_read(project, tmp_path / "cache", parser=counting,
                             secrets=Redactor([pasted], detector=detector_for(project)))
    assert layers["services/web/dev.yaml"].secret_free_under  # clean by itself: not judged again
    written = bundle_bytes(tmp_path / "cache")
    assert written and pasted.encode() not in written and b"pastedcanary" not in written
    counting = Counting()
    catalog_read(project, tmp_path / "cache", parser=counting)
    assert counting.files == ["services/web/dev.yaml"]  # the only file not kept


def test_a_secret_under_a_key_written_twice_is_not_written(project: Path,
                                                           tmp_path: Path) -> None:
    """YAML keeps the second of two equal keys: a known secret under the first is in no value
    of the document, only in the parse's key lines. Not written either."""
    pasted = "v1:dupcanary:AbCdEfGh0123456789+/=="
    path = project / "services" / "web" / "dev.yaml"
    path.write_text(path.read_text() + f"notes:\n  {pasted}: 1\nnotes:\n  other: 2\n")
    layers, _ = catalog_read(project, tmp_path / "cache",
                             secrets=Redactor([pasted], detector=detector_for(project)))
    assert pasted not in repr(layers["services/web/dev.yaml"].document)
    written = bundle_bytes(tmp_path / "cache")
    assert written and b"dupcanary" not in written


_WORDS = st.text("abcxyz-", min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(values=st.dictionaries(st.integers(0, 30), st.recursive(
           st.none() | st.booleans() | st.integers(-50, 50) | _WORDS,
           lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
           | st.dictionaries(_WORDS | st.tuples(_WORDS, _WORDS), inner, max_size=3),
           max_leaves=10), max_size=6),
       secrets=st.lists(_WORDS | st.integers(-50, 50).map(str), max_size=3))
def test_the_entries_holding_a_secret_are_those_a_search_of_each_finds(values, secrets) -> None:
    """`holding_secrets` (one pass over every entry's strings, then per entry) names exactly
    the entries with a key or scalar that is a known secret, or that contains one as long
    as the redactor looks for inside other text."""
    from configplane.redaction.redactor import MIN_SECRET_LEN

    def texts(value):
        if isinstance(value, dict):
            return [t for k, v in value.items() for t in (*texts(k), *texts(v))]
        if isinstance(value, list | tuple):
            return [t for v in value for t in texts(v)]
        return [] if value is None or isinstance(value, bool) else [str(value)]

    def held(value) -> bool:
        return any(t == s or (len(s) >= MIN_SECRET_LEN and s in t)
                   for t in texts(value) for s in secrets if s)

    found = holding_secrets(values, Redactor(secrets))
    assert found == {key for key, value in values.items() if held(value)}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_redactors_inventory_is_the_same_with_the_cache(project: Path, tmp_path: Path,
                                                            monkeypatch, stack: str) -> None:
    plant_secrets(project)
    monkeypatch.setenv("CONFIGPLANE_NO_CACHE", "1")
    detector = detector_for(project)
    without = stack_secrets(read_inputs(project, stack), detector)
    monkeypatch.delenv("CONFIGPLANE_NO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for _ in range(2):  # the run that fills the cache, the run that reads it
        with keeping_parses(Redactor(detector=detector)):
            inputs = read_inputs(project, stack)
        assert stack_secrets(inputs, detector) == without
    assert any(layer.secret_free_under for layers in inputs.service_layers.values()
               for layer in layers)
    if stack == "dev":
        assert set(SECRETS.values()) <= without


def test_a_layer_is_skipped_only_under_the_detector_that_judged_it(project: Path) -> None:
    detector = detector_for(project)
    document = {"api": {"secrets": {"STRIPE_KEY": SECRETS["pasted-spec"]}}}
    judged = {"": {SECRETS["pasted-spec"]}, "another detector": {SECRETS["pasted-spec"]},
              detector.identity: set()}
    for identity, found in judged.items():
        layer = Layer("service", "services/api/service.yaml", document,
                      secret_free_under=identity)
        assert catalog_secrets([layer], detector) == found


@pytest.mark.parametrize("damage", ["truncated", "flipped", "foreign", "garbage", "shape"])
def test_a_damaged_bundle_is_no_cache(project: Path, tmp_path: Path, damage: str) -> None:
    cold, _ = catalog_read(project, tmp_path / "cache")
    bundle = next((tmp_path / "cache" / "configplane").glob("parse-*"))
    data = bundle.read_bytes()
    head, digest, payload = data.split(b"\n", 2)
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped":
        data = data[:-10] + bytes([data[-10] ^ 1]) + data[-9:]
    elif damage == "foreign":
        data = b"something else 1\n" + digest + b"\n" + payload
    elif damage == "garbage":
        import hashlib
        junk = b"\x00\xffnot marshal"
        data = head + b"\n" + hashlib.sha256(junk).hexdigest().encode() + b"\n" + junk
    else:  # a whole bundle of ours whose entries are not entries
        import hashlib
        import marshal
        junk = marshal.dumps({"k": ("document", "not lines", [], False), 5: 6})
        data = head + b"\n" + hashlib.sha256(junk).hexdigest().encode() + b"\n" + junk
    bundle.write_bytes(data)
    assert unpack(data) == {}
    counting = Counting()
    again, _ = catalog_read(project, tmp_path / "cache", parser=counting)
    assert len(counting.files) == len(cold)  # everything parsed again
    assert ({f: layer.document for f, layer in again.items()}
            == {f: layer.document for f, layer in cold.items()})
    assert unpack(bundle.read_bytes())  # and the bundle whole again


def test_an_entry_for_other_bytes_is_never_used(project: Path, tmp_path: Path) -> None:
    """A bundle holding another file's parse under this file's name: the key is the bytes."""
    catalog_read(project, tmp_path / "cache")
    path = project / "services" / "api" / "service.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["LOG_LEVEL"] = "error"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    layers, _ = catalog_read(project, tmp_path / "cache")
    assert layers["services/api/service.yaml"].document["api"]["config"]["LOG_LEVEL"] == "error"


def test_an_unsafe_or_disabled_directory_is_not_used(project: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / "configplane").mkdir(parents=True)
    os.chmod(shared / "configplane", 0o777)  # the unsafe directory under test
    counting = Counting()
    catalog_read(project, shared, parser=counting)
    catalog_read(project, shared, parser=counting)
    assert len(counting.files) == 2 * len(set(counting.files))  # parsed both times
    assert list((shared / "configplane").iterdir()) == []
    assert ParseCache.for_project(project, {"XDG_CACHE_HOME": str(tmp_path),
                                            "CONFIGPLANE_NO_CACHE": "1"}) is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3),
                    max_leaves=12))
def test_any_document_reads_back_as_parsed(tmp_path_factory, value) -> None:
    """Whatever a service file holds: through the cache (cold and warm) it reads as the
    loader reads it, in the same order, lines and duplicates included."""
    root = tmp_path_factory.mktemp("doc")
    (root / "services" / "svc").mkdir(parents=True)
    text = yaml.safe_dump({"config": value, "extra": 1}, sort_keys=False, allow_unicode=True)
    (root / "services" / "svc" / "service.yaml").write_text(text + "extra: 2\n")
    rel = "services/svc/service.yaml"
    try:
        expected = layerfiles.load(root, rel, ("svc",))
    except YamlError as exc:  # refused alike, with the same message
        cache = ParseCache(root / "cache", lambda document: True, "identity")
        with pytest.raises(YamlError, match=re.escape(str(exc))):
            cache.load(root, rel, ("svc",), lambda document: {"svc": document})
        return
    for _ in range(2):  # the run that keeps it, the run that reads it back
        with keeping_parses(Redactor(detector=detector_for(root))):
            cache = ParseCache(root / "cache", lambda document: True, "identity")
            loaded, clean = cache.load(root, rel, ("svc",), lambda document: {"svc": document})
        assert clean
        assert (loaded.document, list(loaded.lines.items()), loaded.duplicates,
                loaded.explicit_null) == (expected.document, list(expected.lines.items()),
                                          expected.duplicates, expected.explicit_null)
        assert repr(loaded.document) == repr(expected.document)  # order and types too
    assert unpack(next((root / "cache").glob("parse-*")).read_bytes())


def test_stacks_read_in_one_command_keep_each_others_entries(project: Path,
                                                             tmp_path: Path) -> None:
    """`validate` of every stack reads three catalogs in one command: all three are kept."""
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    stacks = ("dev", "staging", "prod")
    with keeping_parses(Redactor(detector=detector_for(project))):
        caches = [ParseCache.for_project(project, env) for _ in stacks]
        for stack, cache in zip(stacks, caches, strict=True):
            cache.load(project, f"services/api/{stack}.yaml", ("api",),
                       lambda document: {"api": document})
    counting = Counting()
    cache = ParseCache.for_project(project, env, parser=counting)
    for stack in stacks:
        _, clean = cache.load(project, f"services/api/{stack}.yaml", ("api",),
                              lambda document: {"api": document})
        assert clean
    assert counting.files == []


def test_concurrent_runs_leave_one_whole_bundle(project: Path, tmp_path: Path) -> None:
    script = ("import sys\nfrom pathlib import Path\n"
              "from configplane.inputs import keeping_parses, read_inputs\n"
              "from configplane.redaction import Redactor\n"
              "with keeping_parses(Redactor()):\n    read_inputs(Path(sys.argv[1]), 'dev')\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("CONFIGPLANE_NO_CACHE", None)
    runs = [subprocess.Popen([sys.executable, "-c", script, str(project)], env=env,
                             stderr=subprocess.PIPE) for _ in range(4)]
    assert [r.wait(timeout=120) for r in runs] == [0] * 4, [r.stderr.read() for r in runs]
    bundles = list((tmp_path / "cache" / "configplane").glob("parse-*"))
    assert len(bundles) == 1
    data = bundles[0].read_bytes()
    assert data.startswith(ENTRY_FORMAT + b"\n") and unpack(data)
    counting = Counting()
    catalog_read(project, tmp_path / "cache", parser=counting)
    assert counting.files == []

