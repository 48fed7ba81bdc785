"""Parsed catalog files kept on disk (configplane/inputs/parsecache.py).

The invariants: a read through the cache gives what a read without it gives (the stack's
inputs and the redactor's inventory of its secrets, whatever the files hold); a second run
parses no unchanged file and a changed one again; no secret value of any catalog file is ever
written to the cache; a damaged, foreign or unsafe cache means no cache, never an error; and
concurrent runs leave one whole bundle.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configplane.inputs import Layer, YamlError, keeping_parses, layerfiles, read_inputs
from configplane.inputs.parsecache import (
    ENTRY_FORMAT,
    MAX_BUNDLES,
    REWRITE_SHARE,
    ParseCache,
    bundle_name,
    holding_secrets,
    unpack,
)
from configplane.redaction import Redactor, detector_for, layer_secrets, stack_secrets
from configplane.redaction.redactor import catalog_secrets
from tests.projects import REPO, copy_project

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
                 parser: Any = None, secrets: Redactor | None = None,
                 fork_from: int | None = None, problems: list | None = None
                 ) -> tuple[dict, bool]:
    """Every catalog file of the stack read through a fresh cache, as one command (a new
    run) reads it, `secrets` its redactor: the layers by file, and whether anything was
    parsed. `fork_from`: the files are parsed ahead first, as the catalog reader does, in two
    processes from that many files not kept; `problems` gets those reading them found."""
    from configplane.inputs import catalog

    options: dict[str, Any] = {"parser": parser} if parser is not None else {}
    if fork_from is not None:
        options["fork_from"] = fork_from
    layers = {}
    with keeping_parses(secrets or Redactor(detector=detector_for(project))):
        cache = ParseCache.for_project(project, {"XDG_CACHE_HOME": str(cache_home)}, **options)
        assert cache is not None
        names = catalog.catalog_services(project)
        if fork_from is not None:
            cache.parse_ahead(project, [(f"services/{name}/{file}", (name,),
                                         partial(catalog._layer_of, name))
                                        for name in names for file in ("service.yaml",
                                                                       f"{stack}.yaml")])
        for name in names:
            found: list = []
            read = catalog._catalog_layers(project, name, stack, {stack}, found, cache)
            for layer in read or ():
                layers[layer.file] = layer
            if problems is not None:
                problems.extend(found)
    return layers, bool(getattr(parser, "files", None))


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


class InProcesses:
    """layerfiles.parse, writing each file it parses and the process that parsed it to
    `log`; with `die`, a process other than the one that made it ends at its first file
    (saying so in the log)."""

    def __init__(self, log: Path, die: bool = False):
        self.log, self.die, self.parent = log, die, os.getpid()

    def __call__(self, name: str, data: bytes, prefix: tuple[str, ...]):
        dying = self.die and os.getpid() != self.parent
        with self.log.open("a") as log:
            log.write(f"{os.getpid()} {'died' if dying else name}\n")
        if dying:
            os._exit(3)
        return layerfiles.parse(name, data, prefix)

    def parsed(self) -> dict[int, list[str]]:
        found: dict[int, list[str]] = {}
        for line in self.log.read_text().splitlines() if self.log.exists() else ():
            pid, name = line.split(" ", 1)
            found.setdefault(int(pid), []).append(name)
        return found


def read_ahead_in_two_processes(project: str, work: str, die: str) -> None:
    """A fresh cache read with files parsed ahead from the first one (`fork_from=1`), the
    forked process dying at once with `die`; then the same read, plain, and a later run's.
    Run in a fresh interpreter (`in_a_fresh_process`): a fork needs a process with no other
    thread (configplane.forking.may_fork), which a test session need not be."""
    from configplane.inputs import keeping_verdicts
    from configplane.inputs.verdictcache import VerdictCache

    root, tmp = Path(project), Path(work)
    for name in ("aaa-broken", "zzz-broken"):  # a file that does not parse, in each half
        (root / "services" / name).mkdir()
        (root / "services" / name / "service.yaml").write_text("config: [unclosed\n")
    parser = InProcesses(tmp / "parsed.log", die=die == "die")
    problems: list = []
    secrets = Redactor(detector=detector_for(root))  # its first verdicts are these
    with keeping_verdicts(secrets, {"XDG_CACHE_HOME": str(tmp / "cache")}):
        ahead, _ = catalog_read(root, tmp / "cache", parser=parser, fork_from=1,
                                problems=problems, secrets=secrets)
    plain_problems: list = []
    plain, _ = catalog_read(root, tmp / "plain", problems=plain_problems)
    counting = Counting()
    catalog_read(root, tmp / "cache", parser=counting)
    detector = detector_for(root)
    kept = VerdictCache(tmp / "cache" / "configplane", detector).digests()
    forked = {name for pid, names in parser.parsed().items() if pid != os.getpid()
              for name in names}
    pairs = [(str(k), v) for name in forked if name in ahead
             for document in ahead[name].document.values()
             for k, v in (document.get("config") or {}).items() if isinstance(v, str)]
    print(json.dumps({
        "same_layers": {f: (layer.document, layer.secret_free_under)
                        for f, layer in ahead.items()}
        == {f: (layer.document, layer.secret_free_under) for f, layer in plain.items()},
        "same_lines": all(dict(ahead[f].lines) == dict(plain[f].lines) for f in plain),
        "same_problems": problems == plain_problems,
        "unparsable": sum("not valid YAML" in problem[2] for problem in problems),
        "by_process": {"here" if pid == os.getpid() else "forked": names
                       for pid, names in parser.parsed().items()},
        "parsed_later": sorted(counting.files),
        "forked_verdicts": len(pairs),
        "forked_verdicts_kept": sum(detector.digest(k, v) in kept for k, v in pairs),
    }))


def in_a_fresh_process(tmp_path: Path, project: Path, die: bool = False) -> dict[str, Any]:
    script = ("import sys; from tests.inputs.test_parsecache import read_ahead_in_two_processes"
              " as run; run(*sys.argv[1:])")
    done = subprocess.run([sys.executable, "-c", script, str(project), str(tmp_path),
                           "die" if die else "live"], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_files_parsed_ahead_by_two_processes_read_as_one_by_one(project: Path,
                                                                 tmp_path: Path) -> None:
    """A fresh cache with many files: half of them parsed in a forked process. The layers,
    their verdicts and the problems are those one process reading file by file finds; the
    forked half is kept (the next run parses nothing), and its detector's verdicts too."""
    run = in_a_fresh_process(tmp_path, project)
    assert run["same_layers"] and run["same_lines"] and run["same_problems"]
    assert run["unparsable"] == 2
    assert set(run["by_process"]) == {"here", "forked"}  # two processes, each with its half
    broken = {"services/aaa-broken/service.yaml", "services/zzz-broken/service.yaml"}
    # each file parsed by one of them; one that does not parse again, by the reader, to say why
    assert set(run["by_process"]["here"]) & set(run["by_process"]["forked"]) <= broken
    assert set(run["parsed_later"]) == broken  # all else was kept
    assert run["forked_verdicts"] and run["forked_verdicts_kept"] == run["forked_verdicts"]


def test_a_forked_half_that_dies_is_parsed_by_the_reader(project: Path, tmp_path: Path) -> None:
    run = in_a_fresh_process(tmp_path, project, die=True)
    assert run["by_process"]["forked"] == ["died"]
    assert run["same_layers"] and run["same_lines"] and run["same_problems"]
    assert run["unparsable"] == 2
    assert run["parsed_later"] == ["services/aaa-broken/service.yaml",
                                   "services/zzz-broken/service.yaml"]


def test_each_identity_has_its_own_bundle_and_the_last_ones_written_are_kept(
        project: Path, tmp_path: Path) -> None:
    """Another configplane (or pack) neither reads nor rewrites an earlier one's entries: each
    identity has a bundle of its own, holding only its entries, and the MAX_BUNDLES written
    last are kept (an upgrade's leftovers are dropped, never the bundle just written)."""
    from configplane.inputs import catalog

    files = [f"services/{name}/service.yaml" for name in catalog.catalog_services(project)]
    directory = tmp_path / "cache"

    def run(identity: str) -> list[str]:
        counting = Counting()
        with keeping_parses(Redactor(detector=detector_for(project))):
            cache = ParseCache(directory, lambda document: True, identity, parser=counting)
            for rel in files:
                cache.load(project, rel, (rel.split("/")[1],), lambda document: {"s": document})
        return counting.files

    assert run("identity-0") == files
    assert run("identity-0") == []  # its own entries, kept
    for n in range(1, 7):
        os.utime(directory / bundle_name(f"identity-{n - 1}"), ns=(n * 10**9, n * 10**9))
        assert run(f"identity-{n}") == files  # nothing of another identity
        bundle = directory / bundle_name(f"identity-{n}")
        assert len(unpack(bundle.read_bytes())) == len(files)  # its entries only
        kept = sorted(p.name for p in directory.glob("parse-*"))
        assert bundle.name in kept and len(kept) == min(n + 1, MAX_BUNDLES)
    assert sorted(p.name for p in directory.glob("parse-*")) == sorted(
        bundle_name(f"identity-{n}") for n in range(7 - MAX_BUNDLES, 7))


def test_a_few_changed_files_do_not_rewrite_a_large_bundle(tmp_path: Path) -> None:
    """A run that parsed under 1/REWRITE_SHARE of the files it read leaves the bundle as it
    was (those files are parsed again next time); one that parsed more rewrites it."""
    files = []
    for n in range(2 * REWRITE_SHARE):
        (tmp_path / "services" / f"s{n}").mkdir(parents=True)
        (tmp_path / "services" / f"s{n}" / "service.yaml").write_text(f"config:\n  N: {n}\n")
        files.append(f"services/s{n}/service.yaml")
    directory = tmp_path / "cache"

    def run() -> list[str]:
        counting = Counting()
        with keeping_parses(Redactor()):
            cache = ParseCache(directory, lambda document: True, "identity", parser=counting)
            for rel in files:
                cache.load(tmp_path, rel, (rel.split("/")[1],), lambda document: {"s": document})
        return counting.files

    def change(*numbers: int) -> None:
        for n in numbers:
            path = tmp_path / files[n]
            path.write_text(path.read_text() + "# changed\n")

    assert len(run()) == len(files)
    bundle = directory / bundle_name("identity")
    written = bundle.read_bytes()
    change(7)
    assert run() == [files[7]] and run() == [files[7]]  # parsed each time, not written
    assert bundle.read_bytes() == written
    change(1, 2)  # with file 7: 3 of 200, over 1 in 100
    assert sorted(run()) == sorted([files[1], files[2], files[7]])
    assert bundle.read_bytes() != written and run() == []


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



def test_a_hostile_fleet_validates_alike_without_the_cache_cold_and_warm(tmp_path: Path) -> None:
    """`configplane validate` of a catalog large enough to be parsed in two processes, with
    files that cannot be read, parsed or kept in each half: the same output and exit code
    without the cache, with it empty and with it filled; no secret in any output or kept file."""
    from benchmarks.fleet import generate

    project = generate(tmp_path / "project", 150, teams=3)  # 300 files for prod: forked
    names = sorted(p.name for p in (project / "services").iterdir() if p.is_dir())
    canary = "Pw-hostilecanary-9f8e7d6c5b"

    def put(index: int, file: str, text: bytes) -> None:
        path = project / "services" / names[index] / file
        path.unlink(missing_ok=True)
        path.write_bytes(text)

    fifo = project / "services" / names[0] / "prod.yaml"
    fifo.unlink()
    os.mkfifo(fifo)  # a read would block: refused before it
    (project / "services" / names[40] / "prod.yaml").unlink()
    (project / "services" / names[40] / "prod.yaml").symlink_to("/etc/passwd")
    put(75, "prod.yaml", b"config: [unclosed\n")
    put(110, "service.yaml", b"a: &a [*a]\n")
    put(149, "prod.yaml", b"\xff\xfe not utf-8")
    put(120, "prod.yaml", f"config:\n  DATABASE_PASSWORD: {canary}\n".encode())
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    outputs = []
    for cache in ("off", "empty", "filled"):
        run_env = {**env, "CONFIGPLANE_NO_CACHE": "1"} if cache == "off" else env
        done = subprocess.run([sys.executable, "-m", "configplane", "validate", "--stack", "prod"],
                              cwd=project, env=run_env, capture_output=True, text=True,
                              timeout=600, check=False)
        outputs.append((done.returncode, done.stdout, done.stderr))
    assert outputs[0] == outputs[1] == outputs[2]
    code, out, err = outputs[0]
    assert code == 1 and "Traceback" not in err
    for name in (names[0], names[40], names[75], names[110], names[149]):
        assert f"services/{name}/" in out + err
    kept = list((tmp_path / "cache" / "configplane").glob("parse-*"))
    assert kept and all(canary.encode() not in path.read_bytes() for path in kept)
    assert canary not in out + err
