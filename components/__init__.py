"""ComponentResources: one concern per module, each built from the validated, frozen model.

Two helpers say typed what the Pulumi SDK's annotations cannot (so that mypy checks the rest)."""

from __future__ import annotations

from typing import Any, TypeVar

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource

T = TypeVar("T")


def as_secret(value: pulumi.Output[T]) -> pulumi.Output[T]:
    """`pulumi.Output.secret` of an Output, typed. mypy cannot solve the SDK's `Input[U]` union
    (`U | Awaitable[U] | Output[U]`) for an Output of a concrete type (it infers `Never`); for
    a type variable it can."""
    return pulumi.Output.secret(value)


def resource_name(resource: CustomResource) -> pulumi.Output[Any]:
    """The engine's `metadata.name` of a custom resource (an output of that resource). The
    class declares no output properties: the SDK sets them on the object at run time."""
    metadata: pulumi.Output[Any] = getattr(resource, "metadata")  # noqa: B009 (see docstring)
    return metadata["name"]
