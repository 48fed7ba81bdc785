"""Provenance of one value: which layer and file set it, and every value it overrode.

A path is relative to a service: `config.LOG_LEVEL`, `secrets.DATABASE_PASSWORD.store`,
`flags.new-checkout`, `tenants.acme.config.RATE_LIMIT_RPS`. A bare name (`LOG_LEVEL`) is the
variable the pod sees: `config.<name>`, or `secrets.<name>` when the service has no such
config key. With a tenant, a config key is explained as that tenant's ConfigMap gets it:
the service's layers, then the tenant's (`tenant:<name>`), as the resolution recorded them
(configplane.inputs.resolution, Resolved.tenants). What is shown of a secret: explain_secrets.

Works on the merged layers even when the stack does not validate (that is when people ask
"why"); built-in defaults, ConfigMap names and secret locations need a valid stack. A
secret's value is never read: its spec (source, store, config_key, ref) is what is shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configplane import ownership
from configplane.inputs import TENANT_LAYER, Resolved, Setting, StackInputs, dotted, leaves, resolve_inputs
from configplane.model import InvalidStack, Service, ServiceModel, StackModel
from configplane.ops.explain_secrets import (
    both_config_and_secret,
    delivered_path,
    secret_delivery,
    value_state,
)
from configplane.redaction import REDACTED, Redactor, detector_for
from configplane.validation import load_stack
from configplane.wording import count

SECRET = REDACTED
DEFAULT_LAYER = "default"
DEFAULT_FILE = "configplane/model/document.py"
SERVICE_FIELDS = tuple(Service.model_fields)


class ExplainError(Exception):
    """The question cannot be answered (unknown service, key or tenant): a user error."""


@dataclass(frozen=True)
class Step:
    """A value one layer set on the way to the result."""

    layer: str  # fleet, service, environment, tenant:<name>, default (project: before services/)
    file: str
    path: str  # where in the merged document (services.api.config.LOG_LEVEL)
    value: Any  # None: this layer deleted the key (an explicit null)
    line: int | None = None  # the line in `file` that set it

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def as_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "file": self.file, "line": self.line, "path": self.path,
                "value": self.value}


@dataclass(frozen=True)
class Entry:
    """One leaf: its value, the step that set it and the steps it overrode (lowest first)."""

    path: str
    value: Any
    set_by: Step | None  # None when the last layer deleted it
    overrode: list[Step]

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "value": self.value,
            "set_by": self.set_by.as_dict() if self.set_by else None,
            "overrode": [s.as_dict() for s in self.overrode],
        }


@dataclass
class Explanation:
    stack: str
    service: str
    path: str
    tenant: str | None
    secret: bool  # the path names a secret or a field of its spec
    value: Any  # "[secret]" for a secret itself
    entries: list[Entry]
    spec: dict[str, Any] | None = None  # a secret's spec (never its value)
    secret_value: dict[str, str] | None = None  # where the value comes from, whether it is set
    delivered_as: dict[str, str] | None = None  # ConfigMap key or Secret key the pod reads
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "service": self.service,
            "tenant": self.tenant,
            "path": self.path,
            "secret": self.secret,
            "value": self.value,
            "spec": self.spec,
            "secret_value": self.secret_value,
            "delivered_as": self.delivered_as,
            "entries": [e.as_dict() for e in self.entries],
            "notes": list(self.notes),
        }


def explain(inputs: StackInputs, service: str, key_path: str, tenant: str | None = None,
            schemas_dir: Path | None = None) -> Explanation:
    resolved = resolve_inputs(inputs)
    model, notes = _model(inputs, schemas_dir)
    # a secret's spec is shown by its metadata only (configplane.redaction.SPEC_METADATA),
    # judged by the detector of the inputs' own project
    specs = Redactor(detector=detector_for(inputs.project_dir or None))
    services = resolved.value.get("services") or {}
    if not isinstance(services, Mapping) or service not in services:
        unreadable = [p for p in inputs.read_problems
                      if str(p[1]).startswith(ownership.service_directory(service))]
        if unreadable:  # the service is there, but a file of it cannot be read: say which
            path, file, problem = unreadable[0][:3]
            line = unreadable[0][3] if len(unreadable[0]) > 3 and unreadable[0][3] else None
            raise ExplainError(f"{file}{f':{line}' if line else ''}: {problem} (service "
                               f"`{service}` cannot be explained until its files read).")
        known = ", ".join(sorted(services)) if isinstance(services, Mapping) else ""
        raise ExplainError(f"service `{service}` is not in stack {inputs.stack} "
                           f"(services/, {inputs.stack_file}). "
                           f"Fix: use one of: {known or '(no services)'}.")
    plan = model.services.get(service) if model else None
    view = _service_view(services[service], plan)
    tenants = view.get("tenants") or {}
    if tenant is not None and tenant not in tenants:
        raise ExplainError(f"service `{service}` has no tenant `{tenant}` in stack {inputs.stack} "
                           f"({_files(inputs, service)}). "
                           f"Fix: use one of: {', '.join(sorted(tenants)) or '(no tenants)'}, "
                           "or drop --tenant.")
    extra = {f"config.{k}" for k in ((tenants.get(tenant) or {}).get("config") or {})} if tenant else set()
    path = _normalize(key_path, view, resolved, service, extra, inputs.stack,
                      _files(inputs, service))
    parts = path.split(".")
    if tenant is not None and (parts[0] != "config" or len(parts) < 2):
        raise ExplainError(f"--tenant applies to config keys (tenants override config only), "
                           f"not `{path}`. Fix: ask for config.<KEY>, or drop --tenant.")

    secret = parts[0] == "secrets"
    found = _lookup(view, path)
    if tenant is not None:
        files = [layer.file for layer in inputs.service_layers.get(service, ())] or [
            inputs.project_file, inputs.stack_file]
        entries = [_tenant_entry(resolved, files, service, tenant, path)]
        value = entries[0].value
    elif found is _ABSENT:
        entries = [Entry(path, None, None, _steps(resolved, _doc_path(service, path, resolved)))]
        value = None
    else:
        value = found
        subtree = found if isinstance(found, Mapping) and found else {"": found}
        entries = [
            _entry(resolved, service, path if rel == ("",) else f"{path}.{dotted(rel)}", leaf)
            for rel, leaf in leaves(subtree).items()
        ]
    if secret:
        entries = [_redact_entry(e, specs) for e in entries]

    explanation = Explanation(inputs.stack, service, path, tenant, secret, value, entries,
                              notes=notes)
    if secret:
        _explain_secret(explanation, inputs, view, plan, parts, found, specs)
    elif parts[0] == "config" and len(parts) >= 2 and plan is not None:
        configmap = plan.tenants[tenant] if tenant else plan.config
        key = path.split(".", 1)[1]
        if key in configmap.data:
            explanation.delivered_as = {"configmap": configmap.name, "key": key,
                                        "data": configmap.data[key]}
    if tenant is not None and entries[0].set_by and not entries[0].set_by.layer.startswith("tenant"):
        explanation.notes.append(f"tenant {tenant} does not override {path}: it gets the "
                                 "service's value.")
    return explanation


def _explain_secret(explanation: Explanation, inputs: StackInputs, view: Mapping[str, Any],
                    plan: ServiceModel | None, parts: list[str], found: Any,
                    specs: Redactor) -> None:
    """A secret's answer: where its value comes from and how it is delivered, its spec by
    metadata (`specs`); never its value."""
    name = parts[1] if len(parts) > 1 else ""
    secrets = view.get("secrets") or {}
    spec = secrets.get(name) if isinstance(secrets, Mapping) and name else None
    if isinstance(spec, Mapping):
        explanation.secret_value = value_state(inputs, spec)
        if plan is not None:
            explanation.delivered_as = secret_delivery(plan, name)
    if both_config_and_secret(view, parts):
        explanation.notes.append(f"`{parts[1]}` is both a config key and a secret of "
                                 f"service `{explanation.service}`: shown as the secret (its "
                                 "value is never shown). Fix: keep it in one place; "
                                 "`configplane validate` reports it.")
    if found is _ABSENT:
        pass  # deleted: nothing to show but who deleted it
    elif len(parts) == 1:  # the whole `secrets` mapping: each spec by its metadata
        explanation.value = ({k: specs.spec(v) for k, v in found.items()}
                             if isinstance(found, Mapping) else SECRET)
    elif len(parts) == 2:
        explanation.spec = specs.spec(spec) if isinstance(spec, Mapping) else None
        explanation.value = SECRET
    else:
        explanation.value = specs.spec(found, tuple(parts[2:]))


_ABSENT = object()


def _files(inputs: StackInputs, service: str) -> str:
    """The files that hold a service's layers in this stack."""
    files = dict.fromkeys(layer.file for layer in inputs.service_layers.get(service, ()))
    return ", ".join(files) or f"{inputs.project_file}, {inputs.stack_file}"


def _model(inputs: StackInputs, schemas_dir: Path | None) -> tuple[StackModel | None, list[str]]:
    try:
        return (load_stack(inputs, schemas_dir) if schemas_dir else load_stack(inputs)), []
    except InvalidStack as exc:
        return None, [f"stack {inputs.stack} is not valid ({count(len(exc.issues), 'error')}): values are "
                      f"shown as merged, without built-in defaults. Fix: run `configplane "
                      f"validate --stack {inputs.stack}`."]


def _service_view(raw: Any, plan: ServiceModel | None) -> dict[str, Any]:
    """The service as components see it (built-in defaults filled in) when the stack is valid."""
    if plan is not None:
        view = plan.spec.model_dump(exclude_none=True)
        view["secrets"] = {key: spec.as_declared() for key, spec in plan.spec.secrets.items()}
        return view
    return dict(raw) if isinstance(raw, Mapping) else {}


def _paths(document: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> set[str]:
    found = set()
    for key, value in document.items():
        path = (*prefix, str(key))
        found.add(dotted(path))
        if isinstance(value, Mapping):
            found |= _paths(value, path)
    return found


def _history_paths(resolved: Resolved, service: str) -> set[str]:
    base = ("services", service)
    return {dotted(p[2:]) for p in resolved.history if p[:2] == base and len(p) > 2}


def _normalize(key_path: str, view: Mapping[str, Any], resolved: Resolved, service: str,
               extra: set[str], stack: str, files: str) -> str:
    """The service-relative path a KEY.PATH names (see the module docstring)."""
    key_path = key_path.strip(".")
    known = _paths(view) | _history_paths(resolved, service) | extra
    if key_path.split(".")[0] in SERVICE_FIELDS:
        candidates = [key_path]
    else:
        candidates = [f"config.{key_path}", f"secrets.{key_path}"]
    if len(candidates) == 2 and all(c in known for c in candidates):
        return candidates[1]  # both a config key and a secret: never resolve to a printed value
    for candidate in candidates:
        if candidate in known:
            return candidate
    if len(candidates) > 1:  # a key the pod gets from a database secret (configplane.model.delivery)
        delivered = delivered_path(view, key_path)
        if delivered in known:
            return delivered
    # Unknown: name the closest existing parent and what it holds.
    where = f"service `{service}` in stack {stack} ({files})"
    tried = " or ".join(f"`{c}`" for c in candidates)
    if len(candidates) > 1:
        names = sorted({*(view.get("config") or {}), *(view.get("secrets") or {})})
        raise ExplainError(f"{tried} is not set for {where}. "
                           f"Fix: use one of: {', '.join(names) or '(none)'}.")
    parent, node = "", view
    for part in key_path.split("."):
        if isinstance(node, Mapping) and part in node:
            parent, node = f"{parent}.{part}" if parent else part, node[part]
        else:
            break
    if isinstance(node, Mapping) and node:
        options = ", ".join(f"{parent}.{k}" if parent else k for k in sorted(node))
        hint = f"Fix: use one of: {options}."
    else:
        hint = f"Fix: `{parent}` has no keys below it; ask for `{parent}`." if parent else \
            "Fix: check the key."
    raise ExplainError(f"{tried} is not set for {where}. {hint}")


def _lookup(document: Mapping[str, Any], path: str) -> Any:
    node: Any = document
    rest = path
    while rest:
        if not isinstance(node, Mapping):
            return _ABSENT
        # Keys may contain dots (ConfigMap keys may): take the longest key that matches.
        for key in sorted(node, key=lambda k: -len(str(k))):
            key = str(key)
            if rest == key or rest.startswith(key + "."):
                node, rest = node[key], rest[len(key) + 1:]
                break
        else:
            return _ABSENT
    return node


def _doc_path(service: str, path: str, resolved: Resolved) -> tuple[str, ...]:
    """The merged document's tuple path for a dotted service-relative path."""
    target = f"services.{service}.{path}"
    for candidate in resolved.history:
        if dotted(candidate) == target:
            return candidate
    return ("services", service, *path.split("."))


def _steps(resolved: Resolved, doc_path: tuple[str, ...]) -> list[Step]:
    """Every value set on a path or replacing it from above (a null or scalar at an ancestor)."""
    settings: list[tuple[int, Setting, tuple[str, ...]]] = []
    order = {"fleet": 0, "project": 0, "service": 1, "environment": 2}
    for n in range(2, len(doc_path) + 1):
        for setting in resolved.history.get(doc_path[:n], []):
            if n == len(doc_path) or not isinstance(setting.value, Mapping):
                settings.append((order.get(setting.origin.layer, 3), setting, doc_path[:n]))
    settings.sort(key=lambda s: s[0])  # stable: lower layers first
    return [Step(s.origin.layer, s.origin.file, dotted(s.written_at or p),
                 s.value if p == doc_path else None, s.origin.line) for _, s, p in settings]


def _entry(resolved: Resolved, service: str, path: str, value: Any) -> Entry:
    steps = _steps(resolved, _doc_path(service, path, resolved))
    if not steps or steps[-1].value != value:
        # Not set by any layer: the model's built-in default.
        default = Step(DEFAULT_LAYER, DEFAULT_FILE, f"services.{service}.{path}", value)
        return Entry(path, value, default, [s for s in steps if s.value is not None])
    return Entry(path, value, steps[-1], steps[:-1])


def _tenant_entry(resolved: Resolved, files: list[str], service: str, tenant: str,
                  path: str) -> Entry:
    """What the resolution recorded for the tenant's ConfigMap (configplane.inputs.layering's
    resolve_tenant): the service's settings, then the tenant's in the order of their files;
    the one that won is the recorded origin."""
    config = resolved.tenants.get((service, tenant)) or Resolved({})
    doc_path = _doc_path(service, path, config)
    steps = _steps(config, doc_path)
    base = [s for s in steps if not s.layer.startswith(TENANT_LAYER)]
    own = sorted((s for s in steps if s.layer.startswith(TENANT_LAYER)),
                 key=lambda s: files.index(s.file) if s.file in files else len(files))
    origin = config.origins.get(doc_path)
    winner = next((s for s in reversed(base + own) if origin is not None and s.value is not None
                   and (s.layer, s.file, s.line) == (origin.layer, origin.file, origin.line)),
                  None)
    return Entry(path, winner.value if winner else None, winner,
                 [s for s in base + own if s is not winner])


def _redact_entry(entry: Entry, specs: Redactor) -> Entry:
    """Every value an entry under `secrets` shows, by the spec's metadata only (a spec pasted
    as a string is the secret itself)."""
    rel = tuple(entry.path.split(".")[2:])  # drop secrets.<name>

    def view(value: Any) -> Any:
        return None if value is None else specs.spec(value, rel)

    def hide(step: Step) -> Step:
        return Step(step.layer, step.file, step.path, view(step.value), step.line)

    return Entry(entry.path, view(entry.value), None if entry.set_by is None else hide(entry.set_by),
                 [hide(s) for s in entry.overrode])
