"""A hang guard: every command on large adversarial input finishes within a generous budget
(issue 18). Not a benchmark (benchmarks/adversarial.py shows the growth): the budget is tens of
times what a linear run takes on a loaded machine, and what it catches is a quadratic path or
an exponential regex, which take minutes on these inputs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from benchmarks.adversarial import detector_values, manifest_text, preview_documents
from tests.projects import copy_project
from tests.security.conftest import assert_clean, cli, edit_yaml

BUDGET = 60.0  # seconds of wall time per command; a linear run takes well under 5
SIZE = 256 * 1024  # characters of one adversarial value


def timed(*args: str, input: str | None = None, codes=(0, 1)):
    start = time.monotonic()
    run = cli(*args, input=input)
    elapsed = time.monotonic() - start
    assert_clean(run, [], codes=codes)
    assert elapsed < BUDGET, (args[:2], elapsed)
    return run


@pytest.fixture(scope="module")
def hostile_values(tmp_path_factory) -> Path:
    """The dev stack with every adversarial value in a service's config, under both a neutral
    key and a secret slot's key (the detector runs on each)."""
    project = copy_project(tmp_path_factory.mktemp("hang") / "project", policies=True)

    def web(doc):
        for i, value in enumerate(detector_values(SIZE)):
            doc["config"][f"HOSTILE_{i}"] = value
            doc["config"][f"HOSTILE_{i}_PASSWORD"] = value

    edit_yaml(project / "services/web/dev.yaml", web)
    return project


def test_validate_explain_and_plan_on_long_adversarial_values(hostile_values):
    p = str(hostile_values)
    run = timed("validate", "--stack", "dev", "--project-dir", p, "--format", "json")
    assert run.code == 1  # each is reported (schema, secret slot), in time
    timed("explain", "--stack", "dev", "web", "config", "--project-dir", p)
    timed("plan", "--stack", "dev", "--project-dir", p, "--no-policy", "--service", "web")


def test_scan_on_long_adversarial_values():
    lines = [json.dumps({"id": str(i), "key": key, "value": value})
             for i, value in enumerate(detector_values(SIZE)) for key in ("URL", "PASSWORD")]
    run = timed("scan", "--jsonl", "-", input="\n".join(lines) + "\n")
    assert len(run.stdout.splitlines()) == len(lines)


def test_drift_report_on_a_preview_of_many_paths(tmp_path):
    preview, events = preview_documents(1_300_000)  # ~1.3 MB with its event log
    (tmp_path / "p.json").write_text(preview)
    (tmp_path / "e.jsonl").write_text(events)
    assert len(preview) + len(events) > 1_000_000
    for fmt in ("json", "markdown"):
        timed("drift-report", str(tmp_path / "p.json"), "--events", str(tmp_path / "e.jsonl"),
              "--format", fmt, codes=(7,))


def test_import_on_many_manifests_and_on_alias_bombs(tmp_path):
    project = str(copy_project(tmp_path / "project"))
    (tmp_path / "many.yaml").write_text(manifest_text(400_000))
    run = timed("import", "billing", "--stack", "dev", "--from", str(tmp_path / "many.yaml"),
                "--app-schema", "worker", "--owner", "@shop/billing", "--project-dir", project)
    assert run.code == 0 and "K6000: b" in run.stdout, run.stderr
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9))
    one_doc = "kind: ConfigMap\nmetadata: {name: c}\ndata: {A: b}\nx:\n  " + \
        bomb.replace("\n", "\n  ")
    # one bomb, and the same budget spread over many small documents: both refused
    spread = "---\n".join(["kind: ConfigMap\ndata: {A: b}\nx: &a [y, y, y, y, y, y, y, y, y, y]\n"
                           "z: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"] * 2000)
    for name, text in (("bomb.yaml", one_doc), ("spread.yaml", spread)):
        (tmp_path / name).write_text(text)
        refused = timed("import", "billing", "--stack", "dev", "--from", str(tmp_path / name),
                        "--app-schema", "worker", "--owner", "@shop/billing",
                        "--project-dir", project)
        assert refused.code == 1 and "alias bomb" in refused.stderr, refused.stderr
