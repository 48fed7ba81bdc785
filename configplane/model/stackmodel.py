"""The model of a checked stack: what components receive, and the problems that stop it.

`Issue` and `InvalidStack` are what validation reports; `ServiceModel` and `StackModel` are the
frozen result of a valid stack, with the names components give what they create.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from configplane import ownership
from configplane.inputs import Resolved
from configplane.model.certificates import TlsModel
from configplane.model.document import Platform, SecretSpec, Service
from configplane.model.dynamic_credentials import DynamicModel
from configplane.model.rendering import RenderedConfigMap
from configplane.model.versions import ServiceVersions
from configplane.wording import count


@dataclass(frozen=True)
class Issue:
    path: str
    file: str
    message: str
    line: int | None = None  # in `file`, when known

    def __post_init__(self) -> None:
        # One line each, whatever the input holds: control characters (a name's trailing
        # newline) are shown escaped.
        for attr in ("path", "file", "message"):
            object.__setattr__(self, attr, printable(getattr(self, attr)))

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "file": self.file, "line": self.line, "message": self.message}


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def printable(text: str) -> str:
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), str(text))


class InvalidStack(Exception):
    def __init__(self, stack: str, issues: list[Issue]):
        self.stack = stack
        self.issues = issues
        lines = [f"{i.where}: {i.path}: {i.message}" for i in issues]
        super().__init__(f"stack {stack!r} is not valid ({count(len(issues), 'error')}):\n"
                         + "\n".join(lines))

    def __reduce__(self):  # rebuilt from its fields when a shard's plan process raises it
        return (type(self), (self.stack, self.issues))



def kv_mount(platform: Platform) -> str:
    """The environment's Vault KV v2 mount: `platform.vault.mount`, else the owner's default."""
    return ownership.vault_mount(platform.environment, platform.vault.mount)


@dataclass(frozen=True)
class ServiceModel:
    """Everything components need for one service, derived once from the validated spec
    (configplane.model.builder is the only place that makes one)."""

    name: str
    environment: str
    namespace: str
    spec: Service
    labels: Mapping[str, str]
    config: RenderedConfigMap
    tenants: Mapping[str, RenderedConfigMap]
    flags: RenderedConfigMap | None
    vault_mount: str
    tls: TlsModel | None  # its certificate, when it asks for `tls` and the platform has PKI
    dynamic: tuple[DynamicModel, ...]  # its Vault database logins (`source: dynamic`)
    versions: ServiceVersions  # the write-only version of each secret, as of the run's day
    rotated: Mapping[str, str]  # secret key -> rotation name: what its rotation Lambda rotates

    @property
    def external_secret(self) -> bool:
        """Whether it gets an ExternalSecret (and SecretStores): it has secrets."""
        return bool(self.spec.secrets)

    @property
    def aws_identity(self) -> bool:
        """Whether it keeps secrets in Secrets Manager, and so has its own IAM role (IRSA)
        and a Secrets Manager SecretStore signing in with it."""
        return bool(self.secrets_in("aws"))

    @property
    def vault_store(self) -> bool:
        """Whether it keeps secrets in Vault KV, and so has a Vault SecretStore."""
        return bool(self.secrets_in("vault"))

    @property
    def service_account(self) -> str:
        return ownership.service_account(self.name)

    @property
    def secret_name(self) -> str:
        """The Kubernetes Secret the ExternalSecret writes."""
        return ownership.kubernetes_secret_name(self.name)

    @property
    def vault_path(self) -> str:
        """KV v2 secret name inside the environment's mount (ESO `remoteRef.key`)."""
        return ownership.vault_path(self.name)

    @property
    def vault_policy(self) -> str:
        return ownership.read_policy_name(self.environment, self.name)

    @property
    def vault_data_path(self) -> str:
        return f"{self.vault_mount}/data/{self.vault_path}"

    def vault_policy_hcl(self) -> str:
        """Read on the service's own KV v2 data and metadata paths, nothing else."""
        rules = []
        for kind in ("data", "metadata"):
            for suffix in ("", "/*"):
                path = f"{self.vault_mount}/{kind}/{self.vault_path}{suffix}"
                rules.append(f'path "{path}" {{\n  capabilities = ["read"]\n}}\n')
        return "\n".join(rules)

    def labels_as_tags(self) -> dict[str, str]:
        return {k.rsplit("/", 1)[-1]: v for k, v in self.labels.items()}

    def secrets_in(self, store: str) -> dict[str, SecretSpec]:
        return {k: s for k, s in self.spec.secrets.items() if s.store == store}

    def aws_secret_name(self, key: str) -> str:
        return ownership.aws_secret_name(self.environment, self.name, key)


@dataclass(frozen=True)
class StackModel:
    stack: str
    platform: Platform
    services: Mapping[str, ServiceModel]
    resolved: Resolved = field(repr=False, compare=False)

    @property
    def environment(self) -> str:
        return self.platform.environment

    @property
    def vault_mount(self) -> str:
        return kv_mount(self.platform)

    @property
    def kubernetes_auth_path(self) -> str:
        return ownership.kubernetes_auth_path(self.environment,
                                              self.platform.vault.kubernetes_auth_path)
