"""A stand-in for GitHub's OIDC issuer: an RSA key whose public half a JWT auth mount trusts
(`jwt_validation_pubkeys`, as the platform's mount trusts GitHub's keys), and RS256 tokens with
the claims GitHub's deploy jobs carry (`repository`, `environment`, `sub`, `aud`)."""

from __future__ import annotations

import base64
import json
import time
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ISSUER = "https://token.actions.githubusercontent.com"


@cache
def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem() -> str:
    return _key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(repository: str, environment: str, audience: str, **extra: Any) -> str:
    """A deploy job's token: `sub` repo:<repository>:environment:<environment>."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": audience, "iat": now, "nbf": now - 5, "exp": now + 300,
              "repository": repository, "environment": environment,
              "sub": f"repo:{repository}:environment:{environment}", **extra}
    head = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = _key().sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{_b64(signature)}"
