"""`plan --shard` knows every secret of its environment, not only its own shard's (issue 19).

A shard's plan can show another shard's secret through a wrong reference or a pasted value;
the redactor reads the whole environment's secrets, so such a value is still `[secret]`. Both
kinds from another shard are planted into the api-team shard's config: a secret spec's field
of a payments-team service (the catalog) and the payments-team stack file's `secure` value.
Run cold and warm against the catalog's parse cache (configplane/inputs/parsecache.py): a
file kept there is judged secret-free, and the one holding the secret is never kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from configplane.offline import run_plan
from tests.projects import copy_project, files_text
from tests.security.conftest import assert_clean, cli, edit_yaml

OTHER_SHARD_SPEC = "Pw-shardcanary7f3a91-x9Q"


def payments_secure_value(project: Path) -> str:
    config = yaml.safe_load((project / "Pulumi.dev-payments-team.yaml").read_text())["config"]
    return config["configplane:paymentsApiKey"]["secure"]


@pytest.fixture
def planted(tmp_path: Path, monkeypatch) -> tuple[Path, list[str]]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CONFIGPLANE_NO_CACHE", raising=False)
    project = copy_project(tmp_path / "project", policies=True)

    def worker(document):  # payments-team: a spec field that is the secret itself
        document["secrets"]["PAYMENTS_API_KEY"]["password"] = OTHER_SHARD_SPEC

    edit_yaml(project / "services" / "worker" / "service.yaml", worker)
    secure = payments_secure_value(project)

    def api(document):  # api-team: the other shard's values, pasted into its own config
        document["config"]["CORS_ALLOWED_ORIGINS"] = (
            f"https://dev.shop.example.com,https://{OTHER_SHARD_SPEC},https://{secure}")

    edit_yaml(project / "services" / "api" / "dev.yaml", api)
    return project, [OTHER_SHARD_SPEC, secure]


def test_another_shards_secret_in_a_shard_plan_is_redacted(planted, monkeypatch,
                                                          tmp_path: Path) -> None:
    project, canaries = planted
    monkeypatch.chdir(project)
    # the values do reach the api-team shard's plan: the redactor is what keeps them out
    platform = run_plan(project, "dev")
    shard = run_plan(project, "dev-api-team", references={"dev": platform.outputs})
    planned = json.dumps([r.inputs for r in shard.resources], default=str)
    assert all(c in planned for c in canaries)
    for n in range(2):  # the parse cache cold, then warm
        out = tmp_path / f"out-{n}"
        run = cli("plan", "--stack", "dev", "--shard", "api-team", "--no-policy",
                  "--format", "json", "--quiet", "--out", str(out), "--project-dir", str(project))
        assert_clean(run, canaries, codes=(0,))
        assert "https://dev.shop.example.com,https://[secret],https://[secret]" in run.stdout
        assert not any(c in files_text(out) for c in canaries)
        table = cli("plan", "--stack", "dev", "--shard", "api-team", "--no-policy",
                    "--project-dir", str(project))
        assert_clean(table, canaries, codes=(0,))
    written = b"".join(p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert written and not any(c.encode() in written for c in canaries)
