"""The project's components as classes: each is a pulumi.ComponentResource whose outputs are
declared in its `__init__`. The SDK reads a resource class's annotations for every instance
it registers (`pulumi._types.resource_types`), resolving each string annotation anew
(`typing.get_type_hints` compiles it): a class-level annotation on a component cost the
plan 2-3 % of its time (docs/benchmarks.md)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pulumi

from configplane.offline.plan import project_imports
from tests.conftest import REPO


def component_classes() -> list[type]:
    with project_imports(REPO):
        package = importlib.import_module("components")
        modules = [importlib.import_module(f"components.{m.name}")
                   for m in pkgutil.iter_modules(package.__path__)]
        return [cls for module in modules for _, cls in inspect.getmembers(module, inspect.isclass)
                if issubclass(cls, pulumi.ComponentResource) and cls.__module__ == module.__name__]


def test_no_component_class_carries_annotations_the_sdk_resolves_per_instance():
    classes = component_classes()
    assert len(classes) >= 10  # the walk finds the components
    assert {cls.__name__: inspect.get_annotations(cls) for cls in classes
            if inspect.get_annotations(cls)} == {}
