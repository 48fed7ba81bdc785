"""The renderings of a plan comparison (configplane.cli.commands.plan_compare): whatever a value
holds, a markdown cell stays one cell on one line, and a long report fits a comment."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from configplane.cli.commands.plan_compare import MAX_MARKDOWN, MAX_VALUE, _code, _md, markdown

text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=400)


def _unescaped_pipes(cell: str) -> list[int]:
    return [m.start() for m in re.finditer(r"(?<!\\)\|", cell)]


@given(st.one_of(text, st.integers(), st.booleans(), st.dictionaries(text, text, max_size=3)))
def test_a_value_is_one_code_span_on_one_line_with_no_bare_pipe(value):
    cell = _code(value)
    assert "\n" not in cell and "\r" not in cell
    assert _unescaped_pipes(cell) == []
    fence = re.match(r"`+", cell).group()
    assert cell.endswith(fence) and len(cell) <= 2 * MAX_VALUE + 4 * len(fence) + 10
    inner = cell[len(fence):-len(fence)]
    assert fence not in inner  # no run of backticks closes the span early


@given(text)
def test_free_text_is_one_line_without_markup(value):
    cell = _md(value)
    assert "\n" not in cell and _unescaped_pipes(cell) == []
    assert not re.search(r"(?<!\\)[<>`*_\[\]@]", cell)


def _diff(services: int) -> dict:
    rows = [{"key": f"KEY_{i}", "old": "a" * 200, "new": "b" * 200} for i in range(50)]
    service = {"change": "changed", "config": rows, "config_hash": {"old": "x", "new": "y"},
               "tenants": {}, "flags": [], "secrets": [], "resources": [],
               "policy": {"new": [], "resolved": []}}
    return {"stack": "dev", "base": {"ref": "main", "commit": "f" * 40},
            "services": {f"svc{i}": service for i in range(services)},
            "shared": {"resources": [], "secure": [], "policy": {"new": [], "resolved": []}},
            "summary": dict.fromkeys(["create", "update", "replace", "delete", "new_violations",
                                      "resolved_violations"], 0), "changed": True}


def test_a_report_too_long_for_a_comment_is_cut_at_a_service_and_says_so():
    small, large = markdown(_diff(2)), markdown(_diff(400))
    assert "left out" not in small and small.count("#### Service") == 2
    assert len(large) <= MAX_MARKDOWN + 1000
    shown = large.count("#### Service")
    assert 0 < shown < 400
    assert f"{400 - shown} more section(s) left out" in large
    assert "configplane plan --stack dev --compare ffffffffffff" in large
