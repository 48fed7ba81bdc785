"""The checked-in JSON Schemas are the ones the pydantic models generate."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from configplane.model import GENERATED, generated_schema
from tests.conftest import REPO


@pytest.mark.parametrize("file_name", sorted(GENERATED))
def test_generated_schema_is_checked_in(file_name):
    model, title = GENERATED[file_name]
    on_disk = json.loads((REPO / "schemas" / file_name).read_text())
    assert on_disk == generated_schema(model, title, file_name), (
        "regenerate with: python -m configplane.model.schema_export")


def test_python_dash_m_configplane_lists_the_verbs():
    result = subprocess.run([sys.executable, "-m", "configplane", "--help"], capture_output=True,
                            text=True, cwd=REPO, check=True)
    assert "validate" in result.stdout and "plan" in result.stdout
