"""Applies the offline plan's `vault:*` resources to a real OpenBao server.

What it stands in for: the Terraform Vault provider that pulumi-vault bridges (pulumi-vault
7.14.0, requirements.txt; the calls below follow terraform-provider-vault v5.x, read in its
`vault/resource_<type>.go` files at v5.11.0), and the Pulumi engine that feeds one resource's
outputs into another's inputs. For each resource type it makes the API call the provider's
Create makes, with the planned inputs (snake_case, as the provider sends them), and keeps the
outputs the provider would read back. What it changes, and why:

- an input the preview left unknown is taken from the output of the dependency the plan
  records for that input (`UNKNOWN_FROM` says which output, and how the program derives it);
- `[generated:<name>]` placeholders (random passwords, unknown in a preview) become fresh
  random values, kept in `generated`;
- the file audit device writes into the test server's directory instead of /vault/logs;
- a Kubernetes auth config that names an API server and its CA (a Vault outside the cluster)
  gets the stand-in API server's address and CA (`kubernetes`, tests/vault/kubernetes.py),
  which then accepts the planned reviewer token, and only that, as TokenReview's bearer;
- a database connection reaches a test PostgreSQL server instead of the planned host
  (`database`): its address replaces the planned one, its own root login the planned one (the
  stacks share the name), and the CA file the plan names on Vault's servers is a local file;
  a server without TLS gets `sslmode=disable` instead of the planned mode, and no CA file.

Only the resources' creation is modelled (no update, read or delete), in the order a caller
gives: `topological_orders` makes orders that respect only the plan's declared dependencies.
"""

from __future__ import annotations

import json
import random
import re
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from configplane.offline import UNKNOWN
from configplane.redaction import is_secret_wrapper
from tests.vault import github_oidc
from tests.vault.kubernetes import KubernetesApi
from tests.vault.server import OpenBao

PULUMI_VAULT = "7.14.0"
GENERATED = re.compile(r"\[generated:([^\]]+)\]")
AUDIT_TYPE = "vault:index/audit:Audit"


def plain(value: Any) -> Any:
    """Inputs without the engine's secret wrappers."""
    if is_secret_wrapper(value):
        return plain(value["value"])
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the engine's numbers are doubles; Vault's integer fields are not
    return value


def is_unknown(value: Any) -> bool:
    return value == UNKNOWN or type(value).__name__ == "Unknown"


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def snake_keys(inputs: Mapping[str, Any]) -> dict[str, Any]:
    return {snake(k): v for k, v in inputs.items()}


# (type, unknown input) -> (output of the dependency, how the program derives the input)
UNKNOWN_FROM: dict[tuple[str, str], tuple[str, Callable[[Any], Any]]] = {
    ("vault:pkiSecret/secretBackendRootSignIntermediate:SecretBackendRootSignIntermediate",
     "csr"): ("csr", lambda v: v),
    ("vault:pkiSecret/secretBackendRootSignIntermediate:SecretBackendRootSignIntermediate",
     "issuerRef"): ("issuer_id", lambda v: v),
    ("vault:pkiSecret/secretBackendIntermediateSetSigned:SecretBackendIntermediateSetSigned",
     "certificate"): ("certificate", lambda v: v),
    # components/pki.py: signed.imported_issuers.apply(lambda ids: ids[0] if ids else None)
    ("vault:pkiSecret/secretBackendIssuer:SecretBackendIssuer",
     "issuerRef"): ("imported_issuers", lambda ids: ids[0] if ids else None),
    ("vault:pkiSecret/secretBackendConfigIssuers:SecretBackendConfigIssuers",
     "default"): ("issuer_id", lambda v: v),
}


@dataclass
class Database:
    """Where database connections really go (the test PostgreSQL server)."""

    host: str
    port: int
    logins: Mapping[str, str] = field(default_factory=dict)  # planned root login -> real one
    tls: bool = False  # the server speaks TLS: keep the planned sslmode
    files: Mapping[str, str] = field(default_factory=dict)  # planned path on Vault -> local


@dataclass
class Applier:
    server: OpenBao
    database: Database | None = None
    kubernetes: KubernetesApi | None = None
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # urn -> outputs
    generated: dict[str, str] = field(default_factory=dict)  # placeholder name -> value
    applied: list[str] = field(default_factory=list)  # urns, in order

    def audit_log(self, device: str):
        return self.server.root / f"audit-{device}.log"

    # --- inputs -------------------------------------------------------------------------------

    def _fill(self, value: Any) -> Any:
        if isinstance(value, str):
            return GENERATED.sub(lambda m: self.generated.setdefault(
                m.group(1), "gen-" + secrets.token_urlsafe(18)), value)
        if isinstance(value, dict):
            return {k: self._fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._fill(v) for v in value]
        return value

    def inputs(self, resource) -> dict[str, Any]:
        """The resource's inputs as the provider would receive them: unknowns resolved from
        the outputs of their dependencies, placeholders filled, secrets unwrapped."""
        out = {}
        for key, value in plain(resource.inputs).items():
            if is_unknown(value):
                output, derive = UNKNOWN_FROM[(resource.type, key)]
                sources = [self.outputs[u] for u in resource.property_dependencies.get(key, ())
                           if u in self.outputs and output in self.outputs[u]]
                if not sources:
                    raise LookupError(f"{resource.name}.{key}: no applied dependency gives "
                                      f"{output!r} (declared dependencies are missing)")
                value = derive(sources[0][output])
            out[key] = value
        return self._fill(out)

    # --- one resource -------------------------------------------------------------------------

    def apply(self, resource) -> dict[str, Any]:
        # vault:pkiSecret/secretBackendRole:... -> _pki_secret_secret_backend_role
        kind = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", resource.type.split(":")[1])
        handler = getattr(self, "_" + re.sub(r"\W", "_", kind).lower())
        result = handler(snake_keys(self.inputs(resource)))
        self.outputs[resource.urn] = result
        self.applied.append(resource.urn)
        return result

    def apply_all(self, resources: Sequence) -> None:
        for resource in resources:
            self.apply(resource)

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        return self.server.call(method, path, body)

    # vault_mount: POST sys/mounts/<path>
    def _index_mount(self, i: dict) -> dict:
        config = {k: v for k, v in {
            "default_lease_ttl": i.get("default_lease_ttl_seconds"),
            "max_lease_ttl": i.get("max_lease_ttl_seconds")}.items() if v is not None}
        self._call("POST", f"sys/mounts/{i['path']}", {
            "type": i["type"], "description": i.get("description", ""),
            "config": {k: f"{int(v)}s" for k, v in config.items()},
            "options": i.get("options") or {}})
        return {"path": i["path"]}

    # vault_audit: PUT sys/audit/<path>
    def _index_audit(self, i: dict) -> dict:
        options = dict(i.get("options") or {})
        if i["type"] == "file":
            options["file_path"] = str(self.audit_log(i["path"]))
        self._call("PUT", f"sys/audit/{i['path']}", {"type": i["type"], "options": options,
                                                      "description": i.get("description", "")})
        return {"path": i["path"]}

    # vault_auth_backend: POST sys/auth/<path>
    def _index_auth_backend(self, i: dict) -> dict:
        self._call("POST", f"sys/auth/{i['path']}", {"type": i["type"]})
        return {"path": i["path"]}

    # vault_policy: PUT sys/policies/acl/<name>
    def _index_policy(self, i: dict) -> dict:
        self._call("PUT", f"sys/policies/acl/{i['name']}", {"policy": i["policy"]})
        return {"name": i["name"]}

    # vault_kv_secret_backend_v2: POST <mount>/config
    def _kv_secret_backend_v2(self, i: dict) -> dict:
        self._call("POST", f"{i['mount']}/config", {
            k: i[k] for k in ("max_versions", "cas_required", "delete_version_after") if k in i})
        return {}

    # vault_kv_secret_v2: PUT <mount>/data/<name> {"data": …} (data_json_wo decoded)
    def _kv_secret_v2(self, i: dict) -> dict:
        data = json.loads(i.get("data_json_wo") or i.get("data_json") or "{}")
        self._call("PUT", f"{i['mount']}/data/{i['name']}", {"data": data, "options": {}})
        return {"path": f"{i['mount']}/data/{i['name']}"}

    # vault_kubernetes_auth_backend_config: POST auth/<backend>/config
    def _kubernetes_auth_backend_config(self, i: dict) -> dict:
        body = {k: v for k, v in i.items() if k not in ("backend", "token_reviewer_jwt_wo",
                                                         "token_reviewer_jwt_wo_version")}
        if "token_reviewer_jwt_wo" in i:
            body["token_reviewer_jwt"] = i["token_reviewer_jwt_wo"]
        if self.kubernetes is not None and "kubernetes_ca_cert" in body:
            body["kubernetes_host"] = self.kubernetes.host
            body["kubernetes_ca_cert"] = self.kubernetes.ca_pem
            if "token_reviewer_jwt" in body:
                self.kubernetes.reviewers.add(body["token_reviewer_jwt"])
        self._call("POST", f"auth/{i['backend']}/config", body)
        return {}

    # vault_kubernetes_auth_backend_role: POST auth/<backend>/role/<role_name>
    def _kubernetes_auth_backend_role(self, i: dict) -> dict:
        body = {k: v for k, v in i.items() if k not in ("backend", "role_name")}
        self._call("POST", f"auth/{i['backend']}/role/{i['role_name']}", body)
        return {"role_name": i["role_name"]}

    # vault_jwt_auth_backend_role: POST auth/<backend>/role/<role_name>. The JWT mount is the
    # platform's (platform.shards.vault_jwt_path: GitHub's OIDC issuer), not planned: enabled
    # here as the platform would, once
    def _jwt_auth_backend_role(self, i: dict) -> dict:
        mounts = self._call("GET", "sys/auth")
        mounts = mounts.get("data", mounts)
        if f"{i['backend']}/" not in mounts:
            self._call("POST", f"sys/auth/{i['backend']}", {"type": "jwt"})
            self._call("POST", f"auth/{i['backend']}/config", {
                "bound_issuer": github_oidc.ISSUER,
                "jwt_validation_pubkeys": [github_oidc.public_pem()]})
        body = {k: v for k, v in i.items() if k not in ("backend", "role_name")}
        self._call("POST", f"auth/{i['backend']}/role/{i['role_name']}", body)
        return {"role_name": i["role_name"]}

    # vault_pki_secret_backend_intermediate_cert_request: POST <b>/intermediate/generate/<type>
    def _pki_secret_secret_backend_intermediate_cert_request(self, i: dict) -> dict:
        body = {k: v for k, v in i.items() if k not in ("backend", "type")}
        data = self._call("POST", f"{i['backend']}/intermediate/generate/{i['type']}",
                          body)["data"]
        return {"csr": data["csr"], "key_id": data.get("key_id")}

    # vault_pki_secret_backend_root_cert: POST <b>/root/generate/<type>
    def _pki_secret_secret_backend_root_cert(self, i: dict) -> dict:
        body = {k: v for k, v in i.items() if k not in ("backend", "type")}
        data = self._call("POST", f"{i['backend']}/root/generate/{i['type']}", body)["data"]
        return {"certificate": data["certificate"], "issuer_id": data["issuer_id"]}

    # vault_pki_secret_backend_config_urls: POST <b>/config/urls
    def _pki_secret_secret_backend_config_urls(self, i: dict) -> dict:
        self._call("POST", f"{i['backend']}/config/urls",
                   {k: v for k, v in i.items() if k != "backend"})
        return {}

    # vault_pki_secret_backend_root_sign_intermediate: POST <b>/issuer/<ref>/sign-intermediate
    def _pki_secret_secret_backend_root_sign_intermediate(self, i: dict) -> dict:
        ref = i.get("issuer_ref")
        path = f"{i['backend']}/issuer/{ref}/sign-intermediate" if ref else \
            f"{i['backend']}/root/sign-intermediate"
        body = {k: v for k, v in i.items() if k not in ("backend", "issuer_ref")}
        data = self._call("POST", path, body)["data"]
        return {"certificate": data["certificate"], "issuing_ca": data["issuing_ca"],
                "ca_chain": data.get("ca_chain")}

    # vault_pki_secret_backend_intermediate_set_signed: POST <b>/intermediate/set-signed
    def _pki_secret_secret_backend_intermediate_set_signed(self, i: dict) -> dict:
        data = self._call("POST", f"{i['backend']}/intermediate/set-signed",
                          {"certificate": i["certificate"]})["data"]
        return {"imported_issuers": data.get("imported_issuers") or [],
                "imported_keys": data.get("imported_keys") or []}

    # vault_pki_secret_backend_issuer: read <b>/issuer/<ref>, then POST its settings
    def _pki_secret_secret_backend_issuer(self, i: dict) -> dict:
        ref = i["issuer_ref"]
        if ref is None:
            raise LookupError("issuer_ref is null: set-signed imported no issuer")
        data = self._call("GET", f"{i['backend']}/issuer/{ref}")["data"]
        self._call("POST", f"{i['backend']}/issuer/{ref}",
                   {k: v for k, v in i.items() if k not in ("backend", "issuer_ref")})
        return {"issuer_id": data["issuer_id"]}

    # vault_pki_secret_backend_config_issuers: POST <b>/config/issuers
    def _pki_secret_secret_backend_config_issuers(self, i: dict) -> dict:
        self._call("POST", f"{i['backend']}/config/issuers",
                   {k: v for k, v in i.items() if k != "backend"})
        return {}

    # vault_pki_secret_backend_crl_config: POST <b>/config/crl
    def _pki_secret_secret_backend_crl_config(self, i: dict) -> dict:
        self._call("POST", f"{i['backend']}/config/crl",
                   {k: v for k, v in i.items() if k != "backend"})
        return {}

    # vault_pki_secret_backend_role: POST <b>/roles/<name>
    def _pki_secret_secret_backend_role(self, i: dict) -> dict:
        self._call("POST", f"{i['backend']}/roles/{i['name']}",
                   {k: v for k, v in i.items() if k not in ("backend", "name")})
        return {"name": i["name"]}

    # vault_database_secret_backend_connection: POST <b>/config/<name> (postgresql block)
    def _database_secret_backend_connection(self, i: dict) -> dict:
        pg = snake_keys(i["postgresql"])
        url = pg["connection_url"]
        if self.database is not None:
            url = re.sub(r"@[^/]+/", f"@{self.database.host}:{self.database.port}/", url)
            if not self.database.tls:  # no TLS to verify: no mode, no CA file
                url = re.sub(r"sslmode=[\w-]+", "sslmode=disable", url)
                url = re.sub(r"&sslrootcert=[^&]*", "", url)
            for planned, local in self.database.files.items():
                url = url.replace(f"sslrootcert={planned}", f"sslrootcert={local}")
        body = {"plugin_name": i["plugin_name"], "allowed_roles": i.get("allowed_roles", []),
                "verify_connection": i.get("verify_connection", True),
                "connection_url": url,
                "username": (self.database.logins.get(pg["username"], pg["username"])
                             if self.database else pg["username"]),
                "password": pg.get("password_wo") or pg.get("password"),
                **{k: pg[k] for k in ("password_authentication", "max_open_connections",
                                      "tls_ca") if k in pg}}
        if "rotation_period" in i:
            body["rotation_period"] = i["rotation_period"]
        self._call("POST", f"{i['backend']}/config/{i['name']}", body)
        return {"name": i["name"]}

    # vault_database_secret_backend_role: POST <b>/roles/<name>
    def _database_secret_backend_role(self, i: dict) -> dict:
        self._call("POST", f"{i['backend']}/roles/{i['name']}",
                   {k: v for k, v in i.items() if k not in ("backend", "name")})
        return {"name": i["name"]}

    # vault_generic_endpoint: PUT <path> with data_json
    def _generic_endpoint(self, i: dict) -> dict:
        self._call("PUT", i["path"], json.loads(i.get("data_json") or "{}"))
        return {}


def vault_resources(plan) -> list:
    return [r for r in plan.resources if r.type.startswith("vault:")]


def topological_orders(resources: Sequence, seeds: Sequence[int]) -> Iterator[list]:
    """Orders that respect only the declared dependencies (what `pulumi up` guarantees):
    what nothing depends on last (a write no reader declared a dependency on comes after
    every reader), the plan's own order reversed, then one random order per seed."""
    yield sinks_last(resources)
    yield topological(resources, lambda ready: max(ready))
    for seed in seeds:
        yield topological(resources, random.Random(seed).choice, ordered=True)


def sinks_last(resources: Sequence) -> list:
    index = {r.urn: n for n, r in enumerate(resources)}
    dependents = {n: 0 for n in range(len(resources))}
    for r in resources:
        for d in r.dependencies:
            if d in index:
                dependents[index[d]] += 1
    return topological(resources, lambda ready: max(ready, key=lambda n: (dependents[n] > 0, n)))


def topological(resources: Sequence, pick: Callable, ordered: bool = False) -> list:
    """A topological order; `pick` chooses among the ready resources' indices (a sorted
    list when `ordered`, else the set)."""
    index = {r.urn: n for n, r in enumerate(resources)}
    needs = {n: {index[d] for d in r.dependencies if d in index}
             for n, r in enumerate(resources)}
    done: set[int] = set()
    order = []
    while len(order) < len(resources):
        ready = {n for n in needs if n not in done and needs[n] <= done}
        n = pick(sorted(ready)) if ordered else pick(ready)
        done.add(n)
        order.append(resources[n])
    return order
