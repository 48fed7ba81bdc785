"""Write-only versions per secret, and when generated secrets regenerate.

The stores take values write-only (`secret_string_wo`, `data_json_wo`): the provider writes a
value only when its `*_wo_version` input changes. So each secret carries its own version
(`secrets.<KEY>.version`, default 1), and:

- a Secrets Manager secret's `SecretVersion` gets that secret's version: bumping one secret
  rewrites that secret only. A secret with `rotation` is written once, at version 1, and
  never again by the program (validation refuses a bump; the component also puts
  `ignore_changes` on the value and its version, which the engine applies under `pulumi up`);
- a service's Vault KV v2 secret holds all its Vault-kept values in one `data_json_wo`, so
  its `data_json_wo_version` is derived from the (key, version, generation) of each of them:
  it changes when, and only when, one of them is bumped, regenerated, added or removed;
- a generated secret (no Lambda rotation) regenerates every `rotate_every_days` (or the
  stack's `platform.rotation.generated_every_days`): the period number of today's UTC date
  is a `keepers` entry of its RandomPassword, so the first `pulumi up` of a new period
  replaces the RandomPassword (a new value) and bumps the write-only version with it.

The clock is read once per program run (`read_clock`); `CONFIGPLANE_NOW` (ISO date) fixes it
for tests or to replay a plan as of a day.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from configplane.model.document import RotationSettings, SecretSpec, Service

CLOCK_ENV = "CONFIGPLANE_NOW"
EPOCH = date(1970, 1, 1)
PERIODS = 100_000  # a scheduled secret's version = version * PERIODS + period number


LAST_DAY = date(9000, 12, 31)  # far enough; the version arithmetic stays in range


class ClockError(ValueError):
    """CONFIGPLANE_NOW is not a usable date: the message says what it must be (never its text)."""


def read_clock(environ: Mapping[str, str] = os.environ) -> date:
    """Today (UTC), or the date in CONFIGPLANE_NOW (YYYY-MM-DD or an ISO timestamp)."""
    fixed = environ.get(CLOCK_ENV)
    if not fixed:
        return datetime.now(UTC).date()
    try:
        day = datetime.fromisoformat(fixed).date() if "T" in fixed else date.fromisoformat(fixed)
    except ValueError:
        raise ClockError(f"{CLOCK_ENV} is not a date. Fix: set it to YYYY-MM-DD or an ISO "
                         "timestamp (2026-12-03T12:00:00+00:00), or unset it.") from None
    if not EPOCH <= day <= LAST_DAY:
        raise ClockError(f"{CLOCK_ENV} is outside {EPOCH} .. {LAST_DAY}. Fix: set a date in "
                         "that range, or unset it.")
    return day


def period_of(today: date, every_days: int) -> int:
    """Which period of `every_days` days today falls in, counted from 1970-01-01 (UTC)."""
    return (today - EPOCH).days // every_days


def regenerate_every(spec: SecretSpec, rotation: RotationSettings) -> int | None:
    """Days between regenerations of a generated secret; None if it never regenerates
    (not generated, or rotated by the Lambda, which then owns its value)."""
    if spec.source != "generated" or spec.rotation is not None:
        return None
    return spec.rotate_every_days or rotation.generated_every_days


@dataclass(frozen=True)
class SecretVersion:
    version: int  # the store write's `*_wo_version`
    keepers: dict[str, str] = field(default_factory=dict)  # RandomPassword keepers (generated)
    rotated: bool = False  # Lambda-rotated: written once, never again

    @property
    def token(self) -> str:
        return str(self.version)


@dataclass(frozen=True)
class ServiceVersions:
    secrets: Mapping[str, SecretVersion]

    def vault_version(self, keys: list[str]) -> int:
        """`data_json_wo_version` of the service's KV v2 secret holding `keys`."""
        return combined_version({k: self.secrets[k] for k in keys})


def combined_version(versions: Mapping[str, SecretVersion]) -> int:
    """A number that changes when any (key, version) of the set changes, is added or removed:
    48 bits of SHA-256 over the sorted pairs (a float64 holds it exactly)."""
    text = ";".join(f"{key}={versions[key].token}" for key in sorted(versions))
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def secret_version(spec: SecretSpec, rotation: RotationSettings, today: date) -> SecretVersion:
    every = regenerate_every(spec, rotation)
    if every is None:
        keepers = {"version": str(spec.version)} if spec.source == "generated" and spec.version > 1 else {}
        return SecretVersion(spec.version, keepers, rotated=spec.rotation is not None)
    period = period_of(today, every)
    keepers = {"period": f"{every}d-{period}"}
    if spec.version > 1:
        keepers["version"] = str(spec.version)
    return SecretVersion(spec.version * PERIODS + period, keepers)


def service_versions(service: Service, rotation: RotationSettings, today: date) -> ServiceVersions:
    return ServiceVersions({key: secret_version(spec, rotation, today)
                            for key, spec in sorted(service.secrets.items())})
