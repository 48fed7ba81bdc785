"""ConfigMap name hashes, byte for byte with kustomize."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from configplane.hashing import configmap_hash
from configplane.inputs import read_stack_files
from configplane.validation import load_stack
from tests.ci import tool
from tests.conftest import REPO, STACKS

# kustomize api/hasher/hasher_test.go, TestConfigMapHash: (data, binaryData, hash)
KUSTOMIZE_VECTORS = [
    ({}, {}, "6ct58987ht"),
    ({"one": ""}, {}, "9g67k2htb6"),
    ({"two": 2, "one": "", "three": 3}, {}, "7757f9kkct"),
    ({}, {"one": ""}, "6mtk2m274t"),
    ({}, {"two": 2, "one": "", "three": 3}, "9th7kc28dg"),
    ({"one": ""}, {"two": ""}, "698h7c7t9m"),
]


@pytest.mark.parametrize(("data", "binary", "expected"), KUSTOMIZE_VECTORS)
def test_kustomize_published_vectors(data, binary, expected):
    assert configmap_hash(data, binary) == expected


def test_generator_hash_is_of_content_only():
    # `kubectl kustomize` (v5.5) on literals [LOG_LEVEL=info] under name api-config.
    assert configmap_hash({"LOG_LEVEL": "info"}) == "hf678c7m2b"


def test_html_characters_escaped_like_go():
    # `kubectl kustomize` (v5.5) on literals ["K=a<b>&c"] under name x: x-c6g4mm42gd.
    # Without Go's \u003c/\u003e/\u0026 escaping the digest (and the name) would differ.
    assert configmap_hash({"K": "a<b>&c"}) == "c6g4mm42gd"


@given(st.dictionaries(st.from_regex(r"[-._a-zA-Z0-9]{1,12}", fullmatch=True), st.text(max_size=20)))
def test_hash_independent_of_key_order(data):
    reordered = dict(reversed(list(data.items())))
    assert configmap_hash(data) == configmap_hash(reordered)


def _sample_configmaps():
    for stack in STACKS:
        model = load_stack(read_stack_files(REPO, stack))
        for svc in model.services.values():
            for cm in (svc.config, svc.flags, *svc.tenants.values()):
                if cm:
                    yield f"{stack}/{cm.base_name}", cm


@pytest.mark.parametrize(("label", "cm"), list(_sample_configmaps()), ids=lambda v: str(v)[:40])
def test_same_name_as_kubectl_kustomize(tmp_path: Path, label, cm):
    """Every ConfigMap of the sample stacks gets the name `kubectl kustomize` gives it."""
    kubectl = tool("kubectl", "install kubectl (`kubectl kustomize` is the reference hasher)")
    for key, value in cm.data.items():
        (tmp_path / key).write_text(value)
    generator = {"name": cm.base_name, "files": sorted(cm.data)}
    if not cm.hashed:  # the flags ConfigMap: one stable name, updated in place
        generator["options"] = {"disableNameSuffixHash": True}
    kustomization = {"configMapGenerator": [generator]}
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    out = subprocess.run([kubectl, "kustomize", str(tmp_path)], check=True, capture_output=True,
                         text=True).stdout
    generated = yaml.safe_load(out)
    assert generated["data"] == dict(cm.data)
    assert generated["metadata"]["name"] == cm.name
