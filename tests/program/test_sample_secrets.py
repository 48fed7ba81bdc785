"""The sample stacks' `secure:` values are real passphrase-provider ciphertexts.

Pulumi's passphrase secrets manager (pkg/secrets/passphrase/manager.go,
sdk/go/common/resource/config/crypt.go): `encryptionsalt` is `v1:<b64 salt>:<EncryptValue("pulumi")>`,
the key is PBKDF2-SHA256(passphrase, salt, 1,000,000 iterations, 32 bytes), and a value is
`v1:<b64 12-byte nonce>:<b64 AES-256-GCM ciphertext+tag>`. The values encrypted are random
throwaway strings nobody knows; this test can only prove that they decrypt (GCM's tag checks
the key), never print them.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
import yaml
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.conftest import REPO, STACKS

SAMPLE_PASSPHRASE = b"configplane-sample"  # documented in README.md; protects no real value


def decrypt(key: bytes, value: str) -> str:
    version, nonce, ciphertext = value.split(":")
    assert version == "v1"
    return AESGCM(key).decrypt(base64.b64decode(nonce), base64.b64decode(ciphertext), None).decode()


# each stack file -> the secure keys it holds: the platform's in the environment's file, a
# service's in its shard's (the only stack that reads it: docs/fleet.md)
HELD = {stack: {"configplane:shopVaultDbPassword", "configplane:vaultTokenReviewerJwt"}
        for stack in STACKS}
HELD |= {f"{stack}-api-team": {"configplane:apiDbPassword"} for stack in STACKS}
HELD |= {f"{stack}-payments-team": {"configplane:paymentsApiKey"} for stack in STACKS}


@pytest.mark.parametrize("stack", sorted(HELD))
def test_secure_values_decrypt_with_the_sample_passphrase(stack):
    document = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())
    version, salt, state = document["encryptionsalt"].split(":", 2)
    assert version == "v1"
    key = hashlib.pbkdf2_hmac("sha256", SAMPLE_PASSPHRASE, base64.b64decode(salt), 1_000_000, 32)
    assert decrypt(key, state) == "pulumi"
    secure = {k: v["secure"] for k, v in document["config"].items() if isinstance(v, dict)
              and set(v) == {"secure"}}
    assert set(secure) == HELD[stack]
    for value in secure.values():
        assert len(decrypt(key, value)) >= 24


def test_every_stack_file_is_listed():
    assert {p.name[len("Pulumi."):-len(".yaml")] for p in REPO.glob("Pulumi.*.yaml")} == set(HELD)
