"""Two offline plans of one stack side by side: what a change does, per service.

`snapshot(plan)` reads one plan as plain data: per service its config as the ConfigMap holds
it, the config hash, each tenant's config, its flags (state, variants, default, split in
percent, rollout), its secret specs (metadata only), the custom resources it owns and their
policy violations; the stack's shared resources apart. A `secure` value is held only as a
digest of its ciphertext, so a changed value is seen without being known. `compare(base,
head)` diffs two snapshots: plain data in, plain data out. Secret values appear nowhere:
secrets are specs and "changed", resources are listed with the property paths that change,
not their values (config values are shown in the config rows, where they are plain config).

Which service owns a resource: everything under one top-level component (a child of the
stack) has one owner, the service its resources name: a Kubernetes object's
`app.kubernetes.io/name` label, an AWS resource's `name` tag, the service namespace a Vault
role binds, the service in a Secrets Manager secret's name. A component whose resources name
no service belongs to the service its own name starts with (`<service>-<role>`, the house
naming), unless the rest of the name is the environment (`vault-dev` is the stack's).
Anything else (no owner, or several) is the stack's shared resources.

Replace or update: the providers decide, and their schemas are not here. A change is called a
replacement when it touches what names the object (Kubernetes `metadata.name` or
`metadata.namespace`; a `name`, `path`, `backend`, `mount` or `roleName` input), the data of
an immutable ConfigMap or Secret, any input of a `random` resource (all of theirs force a new
one) or a path in the resource's `replaceOnChanges`; paths in `ignoreChanges` are not changes.
`pulumi preview` has the last word; this is what a reviewer reads before it runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from configplane.contract import SERVICE_LABEL
from configplane.inputs import NAMESPACE
from configplane.model import describe
from configplane.offline.plan import Plan, redact
from configplane.offline.results import PlannedResource
from configplane.ownership import owner_of_secret_name

OPS = ("create", "update", "replace", "delete")
IDENTITY_INPUTS = ("name", "path", "backend", "mount", "roleName")
KUBERNETES_IDENTITY = ("metadata.name", "metadata.namespace")
IMMUTABLE_DATA = ("data", "binaryData", "stringData", "immutable")
_EMPTY_SERVICE: dict[str, Any] = {"config": {}, "config_hash": None, "tenants": {}, "flags": {},
                                  "secrets": {}, "resources": {}, "violations": []}
_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --- one side ------------------------------------------------------------------------------


def snapshot(plan: Plan) -> dict[str, Any]:
    """One plan as plain data, per service and shared (`run_plan` keeps the model it read)."""
    model, inputs = plan.model, plan.inputs
    if model is None or inputs is None:
        raise ValueError("snapshot needs a plan made by run_plan (it carries the model)")
    ciphertexts = {key: _digest(raw) for key, raw in inputs.secure_raw.items()}
    services = {name: _service(svc, ciphertexts) for name, svc in model.services.items()}
    namespaces = {svc.namespace: name for name, svc in model.services.items()}
    owners = resource_owners(plan.resources, set(services), namespaces, model.environment)
    shared: dict[str, Any] = {"resources": {}, "violations": [], "secure": ciphertexts}
    for r in plan.resources:
        if r.custom:
            owner = owners.get(r.urn)
            side = services[owner] if owner else shared
            side["resources"][r.urn] = {"type": r.type, "name": r.name,
                                        "inputs": redact(r.inputs), "options": r.options}
    for v in plan.violations:
        owner = owners.get(v.get("urn", ""))
        (services[owner] if owner else shared)["violations"].append(dict(v))
    return {"stack": plan.stack, "services": services, "shared": shared}


def _service(svc: Any, ciphertexts: Mapping[str, str]) -> dict[str, Any]:
    secrets = {}
    for key, spec in svc.spec.secrets.items():
        meta = spec.model_dump(mode="json", exclude_none=True)
        if spec.source == "secure" and spec.config_key:
            meta["value_digest"] = ciphertexts.get(f"{NAMESPACE}:{spec.config_key}")
        secrets[key] = meta
    return {
        "config": dict(svc.config.data),
        "config_hash": svc.config.hash,
        "tenants": {t: {"config": dict(cm.data), "config_hash": cm.hash}
                    for t, cm in svc.tenants.items()},
        "flags": {view.name: {k: v for k, v in view.as_dict().items() if k != "flag"}
                  for view in describe(svc.spec.flags)},
        "secrets": secrets,
        "resources": {},
        "violations": [],
    }


def _digest(raw: Any) -> str:
    """A stand-in for a ciphertext: equal when the ciphertexts are, and nothing else."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()


def resource_owners(resources: Iterable[PlannedResource], services: Collection[str],
                    namespaces: Mapping[str, str], environment: str) -> dict[str, str | None]:
    """urn -> the service that owns it, or None for the stack's shared resources."""
    by_urn = {r.urn: r for r in resources}

    def top(r: PlannedResource) -> PlannedResource:
        seen = {r.urn}
        while r.parent in by_urn and r.parent not in seen:
            r = by_urn[r.parent]
            seen.add(r.urn)
        return r

    tops = {urn: top(r).urn for urn, r in by_urn.items()}
    named: dict[str, set[str]] = {t: set() for t in tops.values()}
    for urn, r in by_urn.items():
        named[tops[urn]] |= _named_services(r.inputs, namespaces, environment) & set(services)
    owner_of_top = {
        t: (next(iter(found)) if len(found) == 1
            else _by_name(by_urn[t].name, services, environment) if not found else None)
        for t, found in named.items()
    }
    return {urn: owner_of_top[tops[urn]] for urn in by_urn}


def _named_services(inputs: Mapping[str, Any], namespaces: Mapping[str, str],
                    environment: str) -> set[str]:
    found = set()
    metadata = inputs.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    if isinstance(labels, Mapping) and isinstance(labels.get(SERVICE_LABEL), str):
        found.add(labels[SERVICE_LABEL])
    tags = inputs.get("tags")
    if isinstance(tags, Mapping) and isinstance(tags.get("name"), str):
        found.add(tags["name"])
    bound = inputs.get("boundServiceAccountNamespaces")
    if isinstance(bound, list):
        found |= {namespaces[n] for n in bound if isinstance(n, str) and n in namespaces}
    for key in ("name", "secretId"):
        value = inputs.get(key)
        if isinstance(value, str):
            secret_name = value.split(":secret:", 1)[-1]
            owner = owner_of_secret_name(secret_name, environment)
            if owner:
                found.add(owner)
    return found


def _by_name(name: str, services: Collection[str], environment: str) -> str | None:
    fits = [s for s in services if name.startswith(s + "-") and name[len(s) + 1:] != environment]
    return max(fits, key=len, default=None)


# --- the difference ------------------------------------------------------------------------


def compare(base: Mapping[str, Any], head: Mapping[str, Any]) -> dict[str, Any]:
    """What changes from `base` to `head` (two snapshots); unchanged services are left out."""
    services = {}
    for name in sorted(set(base["services"]) | set(head["services"])):
        old, new = base["services"].get(name), head["services"].get(name)
        entry = _service_diff(old or _EMPTY_SERVICE, new or _EMPTY_SERVICE)
        entry["change"] = "created" if old is None else "deleted" if new is None else "changed"
        if entry["change"] != "changed" or _any_change(entry):
            services[name] = entry
    shared = {
        "resources": _resources(base["shared"]["resources"], head["shared"]["resources"]),
        "secure": sorted(k for k in set(base["shared"]["secure"]) | set(head["shared"]["secure"])
                         if base["shared"]["secure"].get(k) != head["shared"]["secure"].get(k)),
        "policy": _violations(base["shared"]["violations"], head["shared"]["violations"]),
    }
    sections = [*services.values(), shared]
    summary: dict[str, int] = {op: sum(1 for s in sections for r in s["resources"] if r["op"] == op)
                               for op in OPS}
    summary["new_violations"] = sum(len(s["policy"]["new"]) for s in sections)
    summary["resolved_violations"] = sum(len(s["policy"]["resolved"]) for s in sections)
    for change in ("created", "changed", "deleted"):
        summary[f"services_{change}"] = sum(1 for s in services.values() if s["change"] == change)
    return {"stack": head["stack"], "services": services, "shared": shared, "summary": summary,
            "changed": bool(services) or _any_change(shared)}


def _any_change(entry: Mapping[str, Any]) -> bool:
    return any(bool(v) if k != "policy" else bool(v["new"] or v["resolved"])
               for k, v in entry.items() if k != "change")


def _service_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    tenants = {}
    for tenant in sorted(set(old["tenants"]) | set(new["tenants"])):
        a = old["tenants"].get(tenant) or {"config": {}, "config_hash": None}
        b = new["tenants"].get(tenant) or {"config": {}, "config_hash": None}
        rows, hashes = _keys(a["config"], b["config"]), _pair(a["config_hash"], b["config_hash"])
        if rows or hashes:
            tenants[tenant] = {"config": rows, "config_hash": hashes}
    return {
        "config": _keys(old["config"], new["config"]),
        "config_hash": _pair(old["config_hash"], new["config_hash"]),
        "tenants": tenants,
        "flags": _named(old["flags"], new["flags"], "flag"),
        "secrets": _secrets(old["secrets"], new["secrets"]),
        "resources": _resources(old["resources"], new["resources"]),
        "policy": _violations(old["violations"], new["violations"]),
    }


def _pair(old: Any, new: Any) -> dict[str, Any] | None:
    return None if old == new else {"old": old, "new": new}


def _keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "old": old.get(k), "new": new.get(k)}
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def _named(old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]],
           label: str) -> list[dict[str, Any]]:
    """Entries by name: added, removed or changed, with the fields that differ."""
    out = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        fields = [{"field": f, "old": (a or {}).get(f), "new": (b or {}).get(f)}
                  for f in sorted(set(a or {}) | set(b or {}))
                  if (a or {}).get(f) != (b or {}).get(f)]
        out.append({label: name, "change": "added" if a is None else "removed" if b is None
                    else "changed", "fields": fields})
    return out


def _secrets(old: Mapping[str, Mapping[str, Any]],
             new: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Secret specs by metadata; a `secure` value is only "changed" (its ciphertext differs)."""
    def meta(specs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        return {k: {f: v for f, v in spec.items() if f != "value_digest"} for k, spec in specs.items()}

    rows = {row["secret"]: row for row in _named(meta(old), meta(new), "secret")}
    for key in sorted(set(old) & set(new)):
        before, after = old[key].get("value_digest"), new[key].get("value_digest")
        if before is not None and after is not None and before != after:
            rows.setdefault(key, {"secret": key, "change": "changed", "fields": []})
            rows[key]["value"] = "changed"
    return [rows[k] for k in sorted(rows)]


def _violations(old: list[Mapping[str, Any]], new: list[Mapping[str, Any]]) -> dict[str, list]:
    def key(v: Mapping[str, Any]) -> tuple:
        return (v.get("level"), v.get("policy"), v.get("urn"), v.get("message"))

    def shown(v: Mapping[str, Any]) -> dict[str, Any]:
        return {"level": v.get("level"), "policy": v.get("policy"),
                "resource": str(v.get("urn", "")).rsplit("::", 1)[-1], "message": v.get("message")}

    before, after = {key(v): v for v in old}, {key(v): v for v in new}
    return {"new": [shown(after[k]) for k in sorted(set(after) - set(before), key=repr)],
            "resolved": [shown(before[k]) for k in sorted(set(before) - set(after), key=repr)]}


def _resources(old: Mapping[str, Mapping[str, Any]],
               new: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for urn in set(old) | set(new):
        a, b = old.get(urn), new.get(urn)
        r = b if b is not None else old[urn]  # the urn is in one of them at least
        if a is None or b is None:
            op, paths = ("create" if a is None else "delete"), []
        else:
            ignored = list(b["options"].get("ignoreChanges") or ())
            paths = [p for p in changed_paths(a["inputs"], b["inputs"])
                     if not any(_under(p, i) for i in ignored)]
            paths += [f"options.{k}" for k in ("protect", "retainOnDelete", "deleteBeforeReplace")
                      if a["options"].get(k) != b["options"].get(k)]
            if not paths:
                continue
            op = "replace" if _replaces(b, paths) else "update"
        out.append({"op": op, "type": r["type"], "name": r["name"], "urn": urn, "paths": paths})
    return sorted(out, key=lambda r: (OPS.index(r["op"]), r["type"], r["name"]))


def _replaces(resource: Mapping[str, Any], paths: list[str]) -> bool:
    type_ = resource["type"]
    if type_.startswith("random:"):
        return True
    if any(_under(p, r) for p in paths for r in resource["options"].get("replaceOnChanges") or ()):
        return True
    if type_.startswith("kubernetes:"):
        immutable = resource["inputs"].get("immutable") is True
        return any(_under(p, i) for p in paths for i in KUBERNETES_IDENTITY) or (
            immutable and any(_under(p, d) for p in paths for d in IMMUTABLE_DATA))
    return any(_under(p, i) for p in paths for i in IDENTITY_INPUTS)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")


def changed_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """The property paths (Pulumi's syntax: `data.LOG_LEVEL`, `tags["a.b"]`) whose values
    differ; a list that differs is one path."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            child = _join(path, str(key))
            if key not in old or key not in new:
                found.append(child)
            else:
                found += changed_paths(old[key], new[key], child)
        return found
    return [] if old == new else [path or "(all)"]


def _join(path: str, key: str) -> str:
    if _SIMPLE_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def compare_plans(base: Plan, head: Plan) -> dict[str, Any]:
    return compare(snapshot(base), snapshot(head))
