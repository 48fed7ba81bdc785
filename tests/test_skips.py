"""When a test may skip: a missing tool skips on a workstation and fails in CI (tests/ci.py); the
secret corpus is required by its own switch only, never by CI=true (tests/corpus.py)."""

from __future__ import annotations

import pytest

from tests.ci import in_ci, missing, tool
from tests.corpus import REQUIRE_VAR, require_tune_rows

SKIP, FAIL = pytest.skip.Exception, pytest.fail.Exception


@pytest.mark.parametrize(("value", "ci"), [
    (None, False), ("", False), ("0", False), ("false", False), ("False", False), ("no", False),
    ("off", False), ("true", True), ("TRUE", True), ("1", True), ("yes", True), (" true ", True)])
def test_in_ci_reads_every_spelling_of_the_ci_variable(monkeypatch, value, ci):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert in_ci() is ci
    with pytest.raises(FAIL if ci else SKIP, match="no-such-tool"):
        missing("no-such-tool is not installed")


def test_a_missing_tool_fails_in_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "1")
    with pytest.raises(FAIL, match="CI must run this test: configplane-no-such-tool"):
        tool("configplane-no-such-tool", "it does not exist")
    monkeypatch.setenv("CI", "")
    with pytest.raises(SKIP, match="configplane-no-such-tool is not installed"):
        tool("configplane-no-such-tool", "it does not exist")


@pytest.mark.parametrize("ci", ["true", ""])
def test_the_corpus_is_required_by_its_switch_and_not_by_ci(monkeypatch, tmp_path, ci):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("CONFIGPLANE_CORPUS_DIR", str(tmp_path / "absent"))
    monkeypatch.delenv(REQUIRE_VAR, raising=False)
    with pytest.raises(SKIP, match="secret corpus not found"):
        require_tune_rows()  # GitHub Actions: CI=true, no ../shared
    monkeypatch.setenv(REQUIRE_VAR, "1")
    with pytest.raises(FAIL, match=f"{REQUIRE_VAR}=1 requires the corpus tests"):
        require_tune_rows()  # this project's CI: .ci/run sets the switch with the path


def test_a_required_corpus_that_is_there_is_read(monkeypatch, tmp_path):
    (tmp_path / "tune.jsonl").write_text('{"key": "K", "value": "v"}\n\n')
    monkeypatch.setenv("CONFIGPLANE_CORPUS_DIR", str(tmp_path))
    monkeypatch.setenv(REQUIRE_VAR, "1")
    assert require_tune_rows() == [{"key": "K", "value": "v"}]
