"""The policy pack, driven as the Pulumi CLI drives it: `Analyze` per resource, then
`AnalyzeStack`, through configplane's PolicyPackSession.

`pack_for` calls the pack's policies in this process (tests/policies/inprocess.py: the pack's
modules behind pulumi_policy's own servicer); `pack_process_for` starts the pack as its own
process and speaks the gRPC protocol to it, as the CLI does (tests/policies/test_stacks.py, the
suite that keeps the protocol). Either way one session per (stack, policy config) serves the
whole test session.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from configplane.offline import AnalyzedResource, PolicyPackSession, PolicyReport
from tests.policies.inprocess import InProcessAnalyzer
from tests.projects import sample_plan

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "policies"
CONFIG = PACK / "config"
PROJECT = "configplane"


def found(report: PolicyReport) -> list[tuple[str, str, str, str]]:
    """(policy, resource name, level, the policy's own text) for each violation, in order.
    The CLI's message is the policy description, a newline, then the text."""
    out = []
    for v in report.violations:
        description, _, text = v.message.partition("\n")
        assert description == v.description
        out.append((v.policy, v.urn.rsplit("::", 1)[-1], v.level, text))
    return out


class Pack:
    def __init__(self, session: PolicyPackSession):
        self.session = session

    def run(self, resources: Sequence[AnalyzedResource]) -> PolicyReport:
        return self.session.run(resources)

    def violations(self, resources: Sequence[AnalyzedResource]) -> list[tuple[str, str, str, str]]:
        return found(self.run(resources))


def _sessions(tmp_path_factory, in_process: bool) -> Iterator[Any]:
    sessions: dict[tuple[str, str], PolicyPackSession] = {}

    def get(stack: str, config: str | dict | None = None) -> Pack:
        if config is None:
            path = None
        elif isinstance(config, str):
            path = CONFIG / f"{config}.json"
        else:
            path = tmp_path_factory.mktemp("policy-config") / "config.json"
            path.write_text(json.dumps(config))
        key = (stack, json.dumps(config, sort_keys=True))
        if key not in sessions:
            analyzer = (InProcessAnalyzer(PACK, project=PROJECT, stack=stack) if in_process
                        else None)
            session = PolicyPackSession(PACK, project=PROJECT, stack=stack,
                                        policy_config_file=path, analyzer=analyzer)
            session.start()
            sessions[key] = session
        return Pack(sessions[key])

    yield get
    # Each pack takes a moment to stop after its interrupt: stop them side by side.
    closers = [threading.Thread(target=s.close) for s in sessions.values()]
    for t in closers:
        t.start()
    for t in closers:
        t.join()


@pytest.fixture(scope="session")
def pack_for(tmp_path_factory) -> Iterator[Any]:
    """pack_for(stack, config) -> Pack, in this process. `config` is an environment name (its
    file in policies/config/), a dict (written to a file) or None (the pack's defaults)."""
    yield from _sessions(tmp_path_factory, in_process=True)


@pytest.fixture(scope="session")
def pack_process_for(tmp_path_factory) -> Iterator[Any]:
    """As pack_for, with the pack in its own process over the Analyzer protocol."""
    yield from _sessions(tmp_path_factory, in_process=False)


@pytest.fixture(scope="session")
def prod(pack_for) -> Pack:
    return pack_for("prod", "prod")


@pytest.fixture(scope="session")
def dev(pack_for) -> Pack:
    return pack_for("dev", "dev")


# One config for every test of non-default thresholds and reviewed exceptions (one process).
CUSTOM = {
    "kubernetes-secret-from-external-store": {"requireExternalSecrets": False},
    "secrets-manager-rotation": {"exceptions": [
        {"resource": "unrotated", "ticket": "SEC-1", "expires": "2999-12-31",
         "reason": "partner rotates this credential on their side"},
        {"resource": "slow-rotation", "ticket": "SEC-2", "expires": "2000-01-01",
         "reason": "migration window for the legacy database"}]},
    "vault-least-privilege": {
        "platformPolicies": ["prod-rotation-admin"],
        "exceptions": [{"resource": "writer", "ticket": "SEC-7", "expires": "2999-01-01",
                        "reason": "api stores its OAuth refresh token itself"}]},
    "configmap-hygiene": {"maxSizeBytes": 64, "exceptions": [
        {"resource": "legacy-mutable", "ticket": "OPS-12", "expires": "2999-12-31",
         "reason": "legacy app re-reads its ConfigMap in place"}]},
    # no accountIds: account numbers are not recognised
    "environment-isolation": {"exceptions": [
        {"resource": "cross-env-store", "ticket": "SEC-9", "expires": "2999-12-31",
         "reason": "one-off migration of staging secrets"}]},
}


@pytest.fixture(scope="session")
def good() -> list[AnalyzedResource]:
    """The known-good fixture: the sample project's prod plan, as the engine shows it to the
    pack (every case mutates one thing of it)."""
    from configplane.offline import analyzed_resources

    return analyzed_resources(sample_plan("prod"))


@pytest.fixture(scope="session")
def custom(pack_for) -> Pack:
    """prod with CUSTOM as its policy config (everything else at the pack's defaults)."""
    return pack_for("prod", CUSTOM)


def _load_detector():
    spec = importlib.util.spec_from_file_location("policy_secret_detector",
                                                  PACK / "secret_detector.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def detector_rules():
    """The detector's rule ids for a key/value, as the pack names them in its messages."""
    scan = _load_detector().scan

    def rules(key: str, value: str) -> str:
        finding = scan(key, value)
        assert finding.secret, (key, "the test expects the detector to flag this value")
        return ", ".join(finding.rules)

    return rules
