"""Load, validate and resolve one stack: the frozen model the program hands to components.

Validation runs before any resource is declared and reports every problem at once, each with
its key path, the file that set it and what would fix it. The jobs live beside this module:
resolution (the layers, merged with provenance), service_checks (what the schema cannot say),
schemacheck and schema_messages (schema errors as value-free issues), rendering (ConfigMap
data and names) and stackmodel (Issue, InvalidStack, ServiceModel, StackModel).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pydantic

from configplane.inputs import (
    SCHEMAS_DIR,
    Origin,
    SchemaFileError,
    StackInputs,
    dotted,
    layers_of,
    origin_near,
    resolve_inputs,
    schema_errors,
)
from configplane.inputs import load_validator as _validator
from configplane.model import InvalidStack, Issue, StackDocument, StackModel
from configplane.schema_messages import error_path, program_message
from configplane.validation import stack_checks as checks
from configplane.validation.configsize import size_issues
from configplane.validation.ownership import ownership_problems
from configplane.validation.service_checks import ServiceChecker, declared_secret_problems


def load_stack(inputs: StackInputs, schemas_dir: Path = SCHEMAS_DIR) -> StackModel:
    """Validate and resolve a stack, or raise InvalidStack with every problem found."""
    layers = layers_of(inputs)
    resolved = resolve_inputs(inputs)
    issues = [Issue(*problem) for problem in inputs.read_problems]
    issues += [Issue(*problem) for problem in checks.input_problems(inputs, layers)]
    issues += declared_secret_problems(inputs)

    def origin(path: Iterable[Any]) -> Origin | None:
        return origin_near(resolved, [str(p) for p in path])

    def where(path: Iterable[Any]) -> str:
        found = origin(path)
        return found.file if found else inputs.stack_file

    def line(path: Iterable[Any]) -> int | None:
        found = origin(path)
        return found.line if found else None

    try:
        stack_validator = _validator(schemas_dir / "stack.schema.json")
    except SchemaFileError as exc:
        raise InvalidStack(inputs.stack, [*issues, Issue("(schema)", exc.file, exc.message)]) \
            from None
    for error in schema_errors(stack_validator, resolved.value):
        path = error_path(error)
        issues.append(Issue(dotted(path) or "(root)", where(path), program_message(error),
                            line(path)))
    if issues:
        raise InvalidStack(inputs.stack, issues)

    try:
        document = StackDocument.model_validate(resolved.value)
    except pydantic.ValidationError as exc:  # what the JSON Schema let through; never a value
        raise InvalidStack(inputs.stack, [
            _pydantic_issue(e, where) for e in exc.errors(include_input=False, include_url=False)
        ]) from None
    checker = ServiceChecker(inputs, document, schemas_dir, where, line)
    checker.check_platform()
    services = {name: checker.check(name, svc) for name, svc in document.services.items()}
    checker.check_credentials(document)
    issues.extend(checker.issues)
    reported = {issue.path for issue in issues}  # one clear error per key path
    issues += [Issue(*p) for p in ownership_problems(document, services, where, line)
               if p[0] not in reported]
    issues += [Issue(*p) for p in checks.document_problems(inputs, layers, document, services,
                                                           where)]
    issues.extend(Issue(*problem) for problem in size_issues(inputs))
    if issues:
        raise InvalidStack(inputs.stack, issues)
    return StackModel(inputs.stack, document.platform, services, resolved)


def _pydantic_issue(error: Any, where: Any) -> Issue:
    loc = [str(p) for p in error["loc"]]
    if "[key]" in loc:  # a mapping key that is not a string
        parent = loc[:loc.index("[key]") - 1]
        return Issue(dotted(parent) or "(root)", where(parent),
                     "a key here is not a string: YAML 1.1 reads `no`, `yes`, `on`, `off`, "
                     "`true`, `false` and numbers as booleans and numbers. Fix: quote the key.")
    return Issue(dotted(loc) or "(root)", where(loc), f"{error['msg']}. Fix: correct the value.")


def validate_stack(inputs: StackInputs, schemas_dir: Path = SCHEMAS_DIR) -> list[Issue]:
    try:
        load_stack(inputs, schemas_dir)
    except InvalidStack as exc:
        return exc.issues
    return []
