"""flags-configmap-live: a flags ConfigMap keeps a stable name, is mutable and reloads nothing."""

from __future__ import annotations

from configplane.hashing import configmap_hash
from tests.policies.builders import BOOL_FLAG, configmap, flags_data, labels, only, pack_module

LIVE = pack_module("flags_live")

DATA = flags_data({"dark-mode": BOOL_FLAG})


def flags_cm(name: str, **overrides):
    """A flags ConfigMap as the program declares it (stable name, mutable, schema only)."""
    metadata = {"name": "web-flags", "namespace": "web-prod", "labels": labels("web"),
                "annotations": {"configplane.io/schema": "flags"}}
    return configmap(name, DATA, schema="flags", svc="web",
                     **{"immutable": False, "metadata": metadata, **overrides})


def test_flags_configmap_live(prod):
    program = flags_cm("web-config-flags")
    metadata = program.inputs["metadata"]
    resources = [
        program,
        flags_cm("immutable-flags", immutable=True),
        flags_cm("reloading-flags", metadata={**metadata, "annotations": {
            **metadata["annotations"], "reloader.stakater.com/match": "true"}}),
        configmap("hashed-flags", DATA, base="web-flags", schema="flags", svc="web",
                  immutable=False),  # builders name it <base>-<content hash>
        configmap("api-config-config"),  # not a flags ConfigMap: configmap-hygiene's business
    ]
    violations = prod.violations(resources)
    assert only("flags-configmap-live", violations) == [
        ("flags-configmap-live", name, "mandatory", text) for name, text in [
            ("immutable-flags", 'ConfigMap "immutable-flags" holds flags but is immutable. '
             f"{LIVE.WHY_FIX_IMMUTABLE}"),
            ("reloading-flags", 'ConfigMap "reloading-flags" holds flags but carries '
             f"reloader.stakater.com/match. {LIVE.WHY_FIX_RELOADER}"),
            # the builders' hashed flags ConfigMap also carries the Reloader match
            ("hashed-flags", 'ConfigMap "hashed-flags" holds flags but carries '
             f"reloader.stakater.com/match. {LIVE.WHY_FIX_RELOADER}"),
            ("hashed-flags", 'ConfigMap "hashed-flags": its name "web-flags-'
             f'{configmap_hash(DATA)}" ends with the content hash. {LIVE.WHY_FIX_HASHED_NAME}'),
        ]]
    # configmap-hygiene's immutable / hashed-name rules leave flags ConfigMaps alone
    assert only("configmap-hygiene", violations) == []
    assert only("configmap-schema", violations) == []
