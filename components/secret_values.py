"""Where secret values come from: `secure` stack config or generation (references have none).

A generated value is a RandomPassword's result: encrypted in Pulumi state (the result is a
secret output), never absent from it. Its `keepers` (configplane.model.versions) regenerate it
when the secret's version is bumped or its rotation period turns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_random as random

from configplane.model import ServiceModel, ServiceVersions
from configplane.ownership import secret_resource_name


@dataclass(frozen=True)
class SecretValuesArgs:
    service: ServiceModel
    # config_key -> the `secure` stack value, read once by __main__ (always a secret Output)
    secure_config: Mapping[str, pulumi.Output[str]]
    versions: ServiceVersions  # keepers: a new version or rotation period regenerates


class SecretValues(pulumi.ComponentResource):
    """The values configplane writes for one service, keyed by secret name; all marked secret."""


    def __init__(self, name: str, args: SecretValuesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("configplane:secrets:SecretValues", name, {}, opts)
        self.values: dict[str, pulumi.Output[str]] = {}
        for key, spec in args.service.spec.secrets.items():
            if spec.source == "secure" and spec.config_key is not None:  # (validate: always)
                self.values[key] = pulumi.Output.secret(args.secure_config[spec.config_key])
            elif spec.source == "generated":
                password = random.RandomPassword(
                    f"{name}-{secret_resource_name(key)}",
                    length=spec.length,
                    special=False,  # safe in URLs, env files and shells
                    keepers=args.versions.secrets[key].keepers or None,
                    opts=pulumi.ResourceOptions(parent=self),
                )
                self.values[key] = pulumi.Output.secret(password.result)
        self.register_outputs({})
