"""Load, validate and resolve one stack: the frozen model the program hands to components.

Validation runs before any resource is declared and reports every problem at once, each with
its key path, the file that set it and what would fix it. The jobs live beside this module:
resolution (the layers, merged with provenance), service_checks (what the schema cannot say),
schemacheck and schema_messages (schema errors as value-free issues), rendering (ConfigMap
data and names) and stackmodel (Issue, InvalidStack, ServiceModel, StackModel).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import partial
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
    once_per_read,
    origin_near,
    reading_once_active,
    resolve_inputs,
    schema_errors,
)
from configplane.inputs import load_validator as _validator
from configplane.model import (
    ClockError,
    InvalidStack,
    Issue,
    StackDocument,
    StackModel,
    build_stack,
    read_clock,
)
from configplane.redaction import Detector, detector_for
from configplane.schema_messages import error_path, program_message, unknown_keys
from configplane.validation import stack_checks as checks
from configplane.validation.configsize import size_issues
from configplane.validation.ownership import ownership_problems
from configplane.validation.service_checks import ServiceChecker, declared_secret_problems


def load_stack(inputs: StackInputs, schemas_dir: Path = SCHEMAS_DIR,
               detector: Detector | None = None, today: date | None = None) -> StackModel:
    """Validate a stack, then build its model (configplane.model.build_stack), or raise
    InvalidStack with every problem found. `detector`: the run's (configplane.inputs.RunContext);
    None, the inputs' project's pack. `today`: the run's day (`read_clock()` when None).

    Within a read-only command (configplane.inputs.reading_once) each stack is validated
    once: `plan` validates a stack, plans it, and its program builds the model again; all
    three get the first one's model (frozen: no user changes it) or problems (`_Validation`)."""
    if not reading_once_active() or not inputs.project_dir:
        return _load_stack(inputs, schemas_dir, detector, today)
    try:
        day = today or read_clock()
    except ClockError:  # reported where it always is: when the model is built
        return _load_stack(inputs, schemas_dir, detector, today)
    judge = detector or detector_for(inputs.project_dir)
    outcome = once_per_read("stack validation", _Validation.of(inputs, schemas_dir, judge, day),
                            partial(_outcome, inputs, schemas_dir, judge, day))
    if isinstance(outcome, InvalidStack):
        raise InvalidStack(outcome.stack, list(outcome.issues))
    return outcome


@dataclass(frozen=True, eq=False)
class _Validation:
    """What a stack's validation depends on, for `load_stack` within a read-only command:
    hashed by its names, compared in full. The config values (`values`, `secure_raw`,
    `shard_secure`) are left out: within the command they are the stack files' (read once),
    or, for the program under the offline plan, the plan's config made from those same files
    (configplane.offline.plan_config) after the files' own values passed these checks."""

    names: tuple[Any, ...]  # project, stack and its file, services, schemas, detector, day
    layers: tuple[Any, ...]  # everything else the checks and the model read

    @classmethod
    def of(cls, inputs: StackInputs, schemas_dir: Path, detector: Detector,
           day: date) -> _Validation:
        return cls((os.path.realpath(str(inputs.project_dir)), inputs.stack, inputs.stack_file,
                    inputs.project_file, inputs.project, tuple(inputs.service_layers),
                    os.path.realpath(schemas_dir), detector, day),
                   (inputs.platform_layers, inputs.service_layers, inputs.defaults,
                    inputs.environment, inputs.declarations, inputs.project_values,
                    inputs.read_problems, inputs.notes, inputs.owners))

    def __hash__(self) -> int:
        return hash(self.names)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, _Validation) and self.names == other.names
                and self.layers == other.layers)


def _outcome(inputs: StackInputs, schemas_dir: Path, detector: Detector,
             day: date) -> StackModel | InvalidStack:
    try:
        return _load_stack(inputs, schemas_dir, detector, day)
    except InvalidStack as exc:
        return exc


def _load_stack(inputs: StackInputs, schemas_dir: Path, detector: Detector | None,
                today: date | None) -> StackModel:
    layers = layers_of(inputs)
    resolved = resolve_inputs(inputs)
    issues = [Issue(*problem) for problem in inputs.read_problems]
    issues += [Issue(*problem) for problem in checks.input_problems(inputs, layers, detector)]
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
    errors = list(schema_errors(stack_validator, resolved.value))
    for error in errors:
        path = error_path(error)
        if error.validator == "required" and path[:1] == ["platform"]:
            # a stack's own platform settings are missing: they belong in its stack file,
            # whatever Pulumi.yaml's defaults set around them
            issues.append(Issue(dotted(path), inputs.stack_file, program_message(error)))
            continue
        issues.append(Issue(dotted(path) or "(root)", where(path), program_message(error),
                            line(path)))
    size = [Issue(*problem) for problem in size_issues(inputs)]  # needs the files only

    # Every error in one run: the checks below need a document the schema accepts, so what
    # the schema refused is set aside and the rest is checked as usual. What is said about a
    # part set aside is a consequence of an error already reported, not news.
    accepted, set_aside = accepted_part(stack_validator, resolved.value, errors)
    if accepted is None:  # the platform (every service's context) is refused: stop here
        raise InvalidStack(inputs.stack, [*issues, *size])
    try:
        document = StackDocument.model_validate(accepted)
    except pydantic.ValidationError as exc:  # what the JSON Schema let through; never a value
        late = [_pydantic_issue(e, where) for e in exc.errors(include_input=False,
                                                               include_url=False)]
        raise InvalidStack(inputs.stack, [*issues, *news(late, set_aside), *size]) from None
    checker = ServiceChecker(inputs, document, schemas_dir, where, line, detector)
    checker.check_platform()
    for name, svc in document.services.items():
        checker.check(name, svc)
    checker.check_credentials(document)
    late = list(checker.issues)
    reported = {issue.path for issue in [*issues, *late]}  # one clear error per key path
    late += [Issue(*p) for p in ownership_problems(document, where, line)
             if p[0] not in reported]
    late += [Issue(*p) for p in checks.document_problems(inputs, document, checker.flags,
                                                         where)]
    issues += [*news(late, set_aside), *size]
    if issues:
        raise InvalidStack(inputs.stack, issues)
    return build_stack(inputs.stack, document, resolved, today or read_clock())


Path_ = tuple[str, ...]


def accepted_part(validator: Any, value: Any, errors: list[Any], rounds: int = 8
                  ) -> tuple[Any, list[Path_]]:
    """`value` without the parts the schema refuses (an unknown key, a wrong value, an object
    missing a required key), and the paths set aside; None when the platform or the document
    itself is refused. Setting a part aside can make its parent incomplete (a required key
    gone): each round sets that aside too, up to the whole service."""
    set_aside: list[Path_] = []
    for _ in range(rounds):
        if not errors:
            return value, set_aside
        blamed = sorted({path for error in errors for path in _blamed(error)})
        if any(not path or path[0] == "platform" for path in blamed):
            return None, set_aside
        value = _without(value, blamed)
        set_aside += blamed
        errors = list(schema_errors(validator, value))
    return None, set_aside


def _blamed(error: Any) -> list[Path_]:
    """The parts of the document one schema error is about: an unknown key itself, a key
    that breaks `propertyNames`, else the value at the error's path. A path into a list
    blames the whole list (removing one item would renumber the others)."""
    path: list[str] = []
    for part in error.absolute_path:
        if isinstance(part, int):
            return [tuple(path)]
        path.append(str(part))
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        return [(*path, key) for key in unknown_keys(error)]
    if "propertyNames" in error.absolute_schema_path and isinstance(error.instance, str):
        return [(*path, error.instance)]
    return [tuple(path)]


def _without(value: Any, paths: Iterable[Path_]) -> Any:
    """A copy of `value` without the parts at `paths` (the input is not changed)."""
    tree: dict[str, Any] = {}
    for path in paths:  # a trie of what to drop; a path ends in None
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if node is None:
                break
        else:
            node[path[-1]] = None

    def prune(value: Any, node: dict[str, Any]) -> Any:
        if not isinstance(value, dict):
            return value
        return {key: item if key not in node else prune(item, node[key])
                for key, item in value.items() if key not in node or node[key] is not None}

    return prune(value, tree)


def news(issues: Iterable[Issue], set_aside: list[Path_]) -> list[Issue]:
    """The issues that are not about a part set aside: at or below it, or at the object that
    held it (a secret spec missing its `rotation` is not a second error); a service as a whole
    stays judged."""
    hidden = {".".join(path) for path in set_aside}
    hidden |= {".".join(path[:-1]) for path in set_aside if len(path) > 3}
    return [issue for issue in issues
            if not any(issue.path == h or issue.path.startswith(h + ".") for h in hidden)]


def _pydantic_issue(error: Any, where: Any) -> Issue:
    loc = [str(p) for p in error["loc"]]
    if "[key]" in loc:  # a mapping key that is not a string
        parent = loc[:loc.index("[key]") - 1]
        return Issue(dotted(parent) or "(root)", where(parent),
                     "a key here is not a string: YAML 1.1 reads `no`, `yes`, `on`, `off`, "
                     "`true`, `false` and numbers as booleans and numbers. Fix: quote the key.")
    return Issue(dotted(loc) or "(root)", where(loc), f"{error['msg']}. Fix: correct the value.")


def validate_stack(inputs: StackInputs, schemas_dir: Path = SCHEMAS_DIR,
                   detector: Detector | None = None) -> list[Issue]:
    try:
        load_stack(inputs, schemas_dir, detector)
    except InvalidStack as exc:
        return exc.issues
    return []
