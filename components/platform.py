"""What a service's resources use of its environment's platform, and where it comes from.

In one stack (an environment that is not split, or the plan of one before its split) these are
the platform's own resources. In a shard stack they are the platform stack's outputs, read
through one `pulumi.StackReference` (docs/fleet.md): the shard never declares or recomputes a
platform resource. The shard's providers are explicit, built from the platform's provider
settings (where: addresses, regions, contexts); credentials (who) come from the shard's own
deployer, never from the platform.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pulumi

# The provider packages whose settings the platform hands its shards: the config namespace
# -> the Python distribution whose version names the plugin (a default provider's version).
PROVIDER_PACKAGES = {"aws": "pulumi_aws", "kubernetes": "pulumi_kubernetes",
                     "vault": "pulumi_vault"}


@dataclass(frozen=True)
class PlatformRefs:
    """The platform's values a service's resources take as inputs, and the platform resources
    they wait for when both are in one stack (a shard waits for the platform stack's deploy
    instead: the deploy order, docs/fleet.md)."""

    vault_mount: pulumi.Input[str]
    auth_path: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str] | None = None
    replica_key_arns: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)  # by region
    pki_mount: pulumi.Input[str] | None = None
    database_mount: pulumi.Input[str] | None = None
    connections: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    before_secrets: Sequence[pulumi.Resource] = ()  # the audit device and the KV settings
    pki_ready: Sequence[pulumi.Resource] = ()  # the CA's issuer and URL settings
    providers: Mapping[str, pulumi.ProviderResource] = field(default_factory=dict)

    def opts(self) -> pulumi.ResourceOptions | None:
        """Options giving a top-level service component the shard's providers (its children
        inherit them); None in one stack, where the default providers serve."""
        return pulumi.ResourceOptions(providers=list(self.providers.values())) \
            if self.providers else None


def provider_settings(values: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The platform's provider settings from its stack config: each non-secret
    `<package>:<key>` of the packages configplane uses, as the strings a default provider gets.
    Secure provider config (a credential) is never handed on: each stack's deployer brings its
    own (docs/fleet.md, Per-shard deploy rights)."""
    out: dict[str, dict[str, str]] = {}
    for full, value in sorted(values.items()):
        package, _, key = full.partition(":")
        if package in PROVIDER_PACKAGES and key and not getattr(value, "secure", False):
            raw = getattr(value, "value", value)
            out.setdefault(package, {})[key] = raw if isinstance(raw, str) else json.dumps(raw)
    return out


def shard_providers(settings: Mapping[str, Mapping[str, str]]) -> dict[str, pulumi.ProviderResource]:
    """One explicit provider per package, named after it, with the settings the platform
    stack's default provider has (the same keys and strings, at the SDK's own plugin
    version): the engine diffs its config against the default provider the moved resources
    held, finds nothing that replaces them, and moves them over (docs/fleet.md, Moving)."""
    return {
        package: pulumi.ProviderResource(
            package, package, dict(settings.get(package, {})),
            pulumi.ResourceOptions(version=metadata.version(dist)))
        for package, dist in PROVIDER_PACKAGES.items()
    }


def _field(name: str, output: Any) -> Any:
    return output[name]


def shard_refs(platform_stack: str, settings: Mapping[str, Mapping[str, str]], *,
               customer_managed_key: bool, pki: bool, connections: Sequence[str],
               replica_regions: Sequence[str] = ()) -> PlatformRefs:
    """The platform's values for a shard: the platform stack's outputs (`platform_stack`: its
    fully qualified name), and providers from the platform's `settings`."""
    ref = pulumi.StackReference(platform_stack)
    database = ref.get_output("database")
    return PlatformRefs(
        vault_mount=ref.require_output("vault_mount"),
        auth_path=ref.require_output("kubernetes_auth_path"),
        kms_key_arn=ref.require_output("kms_key_arn") if customer_managed_key else None,
        replica_key_arns={region: ref.require_output("replica_key_arns").apply(
            functools.partial(_field, region)) for region in replica_regions},
        pki_mount=ref.require_output("pki").apply(functools.partial(_field, "mount"))
        if pki else None,
        database_mount=database.apply(functools.partial(_field, "mount")) if connections else None,
        connections={c: database.apply(functools.partial(_field, "connections")).apply(
            functools.partial(_field, c)) for c in connections},
        providers=shard_providers(settings),
    )
