"""A small interpreter of the ExternalSecret fields configplane uses, as the External Secrets
Operator (ESO v2.9) evaluates them. It stands in for the operator in the life-cycle test:
it turns a planned ExternalSecret, the planned stores and the stores' contents into the data
of the Kubernetes Secret the operator would write. Anything outside the subset refuses
(`Unsupported`), so the test cannot pass on a field the interpreter silently ignores.

The subset, and where ESO defines each behaviour (external-secrets/external-secrets):

- The object must satisfy the `v1` `openAPIV3Schema` of ESO's CRD (vendored in
  tests/fixtures/crds/, validated with jsonschema; `x-kubernetes-*` extensions are not
  evaluated, defaults are not applied).
- Stores: `spec.secretStoreRef` and `data[]/dataFrom[].sourceRef.storeRef` name a
  `ClusterSecretStore` or `SecretStore` (same namespace) among the planned resources; its
  `spec.provider` is `aws` (`service: SecretsManager`, read from moto in the provider's
  `region`) or `vault` (`version: v2`, read from a dict standing in for KV v2 under the
  provider's `path`). A ClusterSecretStore's `conditions[].namespaces` must admit the
  ExternalSecret's namespace.
- `data[]`: `remoteRef.key` (+ optional `property`), no `version` (= AWSCURRENT / latest).
  Secrets Manager with a property: the top-level JSON field, a string as itself, anything
  else as its JSON text (providers/v1/aws/secretsmanager: gjson). Vault KV v2: the field of
  the secret's `data`.
- `dataFrom[].extract.key`: one read of the secret; each top-level JSON field becomes a key,
  a string as itself, anything else as its JSON text (`GetSecretMap`: json.RawMessage).
  `rewrite[].regexp.{source,target}`: Go's `regexp.ReplaceAllString` on each key (`$1`,
  `${1}`, `${name}` in the target).
- `target.template`: `engineVersion: v2`; `mergePolicy` Replace (default) writes only the
  rendered `template.data` when it has keys, Merge adds them over the fetched data
  (pkg/controllers/externalsecret/externalsecret_controller_template.go: ApplyTemplate).
  Template text: Go text/template with `missingkey=error`, of which this interprets
  literal text, `{{ .KEY }}` and `{{ .KEY | urlquery }}` (Go's `url.QueryEscape`: all but
  A-Z a-z 0-9 `-_.~` percent-encoded, space as `+`) — exactly `quote_plus(safe="")`.
  Label and annotation templates are rendered the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import jsonschema
import yaml

CRD = Path(__file__).resolve().parents[1] / "fixtures" / "crds" / "external-secrets.io_externalsecrets.yaml"
API_VERSION = "external-secrets.io/v1"
SUPPORTED_SPEC = {"refreshInterval", "secretStoreRef", "target", "data", "dataFrom"}
SUPPORTED_TARGET = {"name", "creationPolicy", "template"}
SUPPORTED_TEMPLATE = {"engineVersion", "mergePolicy", "metadata", "data"}
ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
PIPELINE = re.compile(r"^\.([A-Za-z_][A-Za-z0-9_]*)(?:\s*\|\s*(urlquery))?$")
FUNCTIONS: dict[str, Callable[[str], str]] = {"urlquery": lambda s: quote_plus(s, safe="")}


class Unsupported(Exception):
    """The spec uses a field or template construct this interpreter does not model."""


class TemplateError(Exception):
    """What ESO reports as `unable to execute template`: the Secret is not updated."""


@cache
def _crd() -> dict[str, Any]:
    return yaml.load(CRD.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@cache
def _crd_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(crd_schema())


def crd_schema(version: str = "v1") -> dict[str, Any]:
    document = _crd()
    for entry in document["spec"]["versions"]:
        if entry["name"] == version:
            return entry["schema"]["openAPIV3Schema"]
    raise KeyError(version)


def crd_served(version: str) -> bool:
    document = _crd()
    return any(v["name"] == version and v["served"] for v in document["spec"]["versions"])


def crd_errors(obj: Mapping[str, Any]) -> list[str]:
    """Where the object breaks the CRD's v1 schema (empty: it would be admitted)."""
    validator = _crd_validator()
    return sorted(f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                  for e in validator.iter_errors(obj))


@dataclass
class VaultKV:
    """Stands in for Vault's KV v2 engine: mount -> secret path -> data (latest version)."""

    mounts: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    def write(self, mount: str, path: str, data: Mapping[str, str]) -> None:
        self.mounts.setdefault(mount, {})[path] = dict(data)

    def read(self, mount: str, path: str) -> dict[str, str]:
        return self.mounts[mount][path]


class Stores:
    """The backends behind the planned stores: moto's Secrets Manager and a VaultKV."""

    def __init__(self, planned: list[Mapping[str, Any]], secretsmanager: Any, vault: VaultKV):
        self.planned = planned  # ClusterSecretStore / SecretStore resource inputs
        self.sm = secretsmanager
        self.vault = vault

    def provider(self, ref: Mapping[str, Any], namespace: str) -> dict[str, Any]:
        kind = ref.get("kind", "SecretStore")
        for store in self.planned:
            meta = store["metadata"]
            if store["kind"] != kind or meta["name"] != ref["name"]:
                continue
            if kind == "SecretStore" and meta.get("namespace") != namespace:
                continue
            if kind == "ClusterSecretStore":
                allowed = [ns for c in store["spec"].get("conditions", [])
                           for ns in c.get("namespaces", [])]
                if store["spec"].get("conditions") and namespace not in allowed:
                    raise PermissionError(f"{kind} {ref['name']} does not admit {namespace}")
            return store["spec"]["provider"]
        raise LookupError(f"no {kind} {ref['name']} in the plan")

    def get(self, provider: Mapping[str, Any], key: str) -> str | dict[str, str]:
        """The secret's whole value: a Secrets Manager string, or a KV v2 data map."""
        if set(provider) == {"aws"}:
            aws = provider["aws"]
            if aws.get("service") != "SecretsManager":
                raise Unsupported(f"aws service {aws.get('service')}")
            return self.sm.get_secret_value(SecretId=key, VersionStage="AWSCURRENT")["SecretString"]
        if set(provider) == {"vault"}:
            vault = provider["vault"]
            if vault.get("version") != "v2":
                raise Unsupported("Vault KV version other than v2")
            return self.vault.read(vault["path"], key)
        raise Unsupported(f"provider {sorted(provider)}")


def _field_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _property(whole: str | dict[str, str], prop: str | None) -> str:
    if prop is None:
        if isinstance(whole, dict):
            raise Unsupported("a whole Vault secret without property")
        return whole
    document = whole if isinstance(whole, dict) else json.loads(whole)
    if prop not in document:
        raise KeyError(f"property {prop} not found")
    return _field_text(document[prop])


def _go_replacement(target: str) -> str:
    """Go's Expand syntax to Python's: $1, ${1}, ${name} -> \\g<...>; $$ -> $."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return f"\\g<{m.group(1) or m.group(2)}>"
    escaped = target.replace("\\", "\\\\")
    return re.sub(r"\$\$|\$\{(\w+)\}|\$(\w+)", sub, escaped)


def render(text: str, values: Mapping[str, str]) -> str:
    """Go text/template, the subset above, with missingkey=error."""
    out, last = [], 0
    for m in ACTION.finditer(text):
        out.append(text[last:m.start()])
        action = PIPELINE.match(m.group(1))
        if action is None:
            raise Unsupported(f"template action {{{{ {m.group(1)} }}}}")
        name, function = action.groups()
        if name not in values:
            raise TemplateError(f'map has no entry for key "{name}"')
        value = values[name]
        out.append(FUNCTIONS[function](value) if function else value)
        last = m.end()
    rest = text[last:]
    if "{{" in rest or "}}" in rest:
        raise Unsupported("unbalanced template delimiters")
    out.append(rest)
    return "".join(out)


@dataclass
class Materialised:
    data: dict[str, str]
    labels: dict[str, str]
    annotations: dict[str, str]


def materialise(external_secret: Mapping[str, Any], stores: Stores) -> Materialised:
    """The Kubernetes Secret ESO would write for this ExternalSecret now."""
    problems = crd_errors(external_secret)
    if problems:
        raise ValueError("not admitted by the ExternalSecret CRD: " + "; ".join(problems))
    if external_secret["apiVersion"] != API_VERSION or not crd_served("v1"):
        raise Unsupported(external_secret["apiVersion"])
    spec = external_secret["spec"]
    namespace = external_secret["metadata"]["namespace"]
    for keys, allowed, where in ((spec, SUPPORTED_SPEC, "spec"),
                                 (spec["target"], SUPPORTED_TARGET, "spec.target"),
                                 (spec["target"].get("template", {}), SUPPORTED_TEMPLATE,
                                  "spec.target.template")):
        if set(keys) - allowed:
            raise Unsupported(f"{where}: {sorted(set(keys) - allowed)}")

    def provider_for(item: Mapping[str, Any]) -> dict[str, Any]:
        source = item.get("sourceRef")
        if source is not None and set(source) != {"storeRef"}:
            raise Unsupported("sourceRef other than storeRef")
        return stores.provider(source["storeRef"] if source else spec["secretStoreRef"], namespace)

    fetched: dict[str, str] = {}
    for item in spec.get("data", []):
        remote = item["remoteRef"]
        if set(remote) - {"key", "property"}:
            raise Unsupported(f"remoteRef fields {sorted(set(remote) - {'key', 'property'})}")
        whole = stores.get(provider_for(item), remote["key"])
        fetched[item["secretKey"]] = _property(whole, remote.get("property"))
    for item in spec.get("dataFrom", []):
        if set(item) - {"extract", "sourceRef", "rewrite"} or set(item["extract"]) != {"key"}:
            raise Unsupported(f"dataFrom fields {sorted(item)}")
        whole = stores.get(provider_for(item), item["extract"]["key"])
        document = whole if isinstance(whole, dict) else json.loads(whole)
        extracted = {k: _field_text(v) for k, v in document.items()}
        for rewrite in item.get("rewrite", []):
            if set(rewrite) != {"regexp"}:
                raise Unsupported(f"rewrite {sorted(rewrite)}")
            source = re.compile(rewrite["regexp"]["source"])
            target = _go_replacement(rewrite["regexp"]["target"])
            extracted = {source.sub(target, k): v for k, v in extracted.items()}
        fetched.update(extracted)

    template = spec["target"].get("template")
    if template is None:
        return Materialised(fetched, {}, {})
    if template.get("engineVersion", "v2") != "v2":
        raise Unsupported(template["engineVersion"])
    body = template.get("data") or {}
    merge = template.get("mergePolicy", "Replace") == "Merge"
    data = dict(fetched) if merge or not body else {}
    data.update({key: render(text, fetched) for key, text in body.items()})
    meta = template.get("metadata", {})
    return Materialised(
        data,
        {k: render(v, fetched) for k, v in meta.get("labels", {}).items()},
        {k: render(v, fetched) for k, v in meta.get("annotations", {}).items()},
    )
