"""The life-cycle tests reuse the rotation tests' fixtures: Secrets Manager under moto with the
real handler run in-process, the throwaway PostgreSQL server and the leak check (autouse
here too: no secret value may reach a log, an exception or the server's statement log).

tests/rotation has no __init__.py (its modules import as top-level names), so its conftest
is loaded here under a name of its own and its fixtures are re-exported.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "rotation" / "conftest.py"
_NAME = "configplane_rotation_fixtures"
if str(_PATH.parent) not in sys.path:
    sys.path.insert(0, str(_PATH.parent))  # rotation_helpers, as pytest does for that folder
if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(_NAME, _PATH)
    assert _spec and _spec.loader
    sys.modules[_NAME] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules[_NAME])
_fixtures = sys.modules[_NAME]

leaks = _fixtures.leaks
aws = _fixtures.aws
postgres_server = _fixtures.postgres_server
pg = _fixtures.pg

PROD_ACCOUNT = "333333333333"  # Pulumi.prod.yaml's platform.aws.account_id


@pytest.fixture(autouse=True)
def prod_account(monkeypatch):
    """moto answers as prod's account, so the ARNs it makes are the ones the plan expects.
    Autouse fixtures start first: this is set before `aws` starts moto."""
    monkeypatch.setenv("MOTO_ACCOUNT_ID", PROD_ACCOUNT)
