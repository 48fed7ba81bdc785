"""Load, validate and resolve one stack: the frozen model the program hands to components.

Validation runs before any resource is declared and reports every problem at once, each with
its key path, the file that set it and what would fix it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pydantic

from configplane import certificates, checks, dynamic_credentials, refs
from configplane.configsize import size_issues
from configplane.delivery import (
    PASSWORD_SUFFIX,
    SCHEMA_SECRET_KEYS,
    delivered_keys,
    delivers_whole,
    service_delivered_keys,
)
from configplane.flags import check_flags, render_flags
from configplane.hashing import configmap_hash
from configplane.layering import Layer, Origin, Resolved, dotted, resolve
from configplane.model import Platform, SecretSpec, Service, StackDocument
from configplane.schema_messages import drop_required, error_path
from configplane.schema_messages import program_message as _schema_message
from configplane.schemacheck import FAST
from configplane.schemafiles import SchemaFileError
from configplane.schemafiles import load_validator as _validator
from configplane.stackfiles import NAMESPACE, StackInputs

SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "schemas"
MAX_CONFIGMAP_BYTES = 1024 * 1024
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
TENANT_KEYS = "x-configplane-tenant-overridable"
FLAGS_DATA_KEY = "flags.flagd.json"
MANAGED_BY = "configplane"


@dataclass(frozen=True)
class Issue:
    path: str
    file: str
    message: str
    line: int | None = None  # in `file`, when known

    def __post_init__(self) -> None:
        # One line each, whatever the input holds: control characters (a name's trailing
        # newline) are shown escaped.
        for attr in ("path", "file", "message"):
            object.__setattr__(self, attr, printable(getattr(self, attr)))

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "file": self.file, "line": self.line, "message": self.message}


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def printable(text: str) -> str:
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), str(text))


class InvalidStack(Exception):
    def __init__(self, stack: str, issues: list[Issue]):
        self.stack = stack
        self.issues = issues
        lines = [f"{i.where}: {i.path}: {i.message}" for i in issues]
        super().__init__(f"stack {stack!r} is not valid ({len(issues)} errors):\n" + "\n".join(lines))


@dataclass(frozen=True)
class RenderedConfigMap:
    base_name: str
    data: Mapping[str, str]
    hash: str
    hashed: bool = True  # False: a stable name, updated in place (the flags ConfigMap)

    @property
    def name(self) -> str:
        return f"{self.base_name}-{self.hash}" if self.hashed else self.base_name


@dataclass(frozen=True)
class ServicePlan:
    """Everything components need for one service, derived once from the validated spec."""

    name: str
    environment: str
    namespace: str
    spec: Service
    labels: Mapping[str, str]
    config: RenderedConfigMap
    tenants: Mapping[str, RenderedConfigMap]
    flags: RenderedConfigMap | None
    vault_mount: str

    @property
    def service_account(self) -> str:
        return self.name

    @property
    def secret_name(self) -> str:
        """The Kubernetes Secret the ExternalSecret writes."""
        return f"{self.name}-secrets"

    @property
    def vault_path(self) -> str:
        """KV v2 secret name inside the environment's mount (ESO `remoteRef.key`)."""
        return self.name

    @property
    def vault_policy(self) -> str:
        return f"{self.environment}-{self.name}-read"

    @property
    def vault_data_path(self) -> str:
        return f"{self.vault_mount}/data/{self.vault_path}"

    def vault_policy_hcl(self) -> str:
        """Read on the service's own KV v2 data and metadata paths, nothing else."""
        rules = []
        for kind in ("data", "metadata"):
            for suffix in ("", "/*"):
                path = f"{self.vault_mount}/{kind}/{self.vault_path}{suffix}"
                rules.append(f'path "{path}" {{\n  capabilities = ["read"]\n}}\n')
        return "\n".join(rules)

    def labels_as_tags(self) -> dict[str, str]:
        return {k.rsplit("/", 1)[-1]: v for k, v in self.labels.items()}

    def secrets_in(self, store: str) -> dict[str, SecretSpec]:
        return {k: s for k, s in self.spec.secrets.items() if s.store == store}

    def aws_secret_name(self, key: str) -> str:
        return f"configplane/{self.environment}/{self.name}/{key}"


@dataclass(frozen=True)
class StackModel:
    stack: str
    platform: Platform
    services: Mapping[str, ServicePlan]
    resolved: Resolved = field(repr=False, compare=False)

    @property
    def environment(self) -> str:
        return self.platform.environment

    @property
    def vault_mount(self) -> str:
        return self.platform.vault.mount or f"{self.environment}-kv"

    @property
    def kubernetes_auth_path(self) -> str:
        return self.platform.vault.kubernetes_auth_path or f"kubernetes-{self.environment}"


def layers_of(inputs: StackInputs) -> list[Layer]:
    """Every layer as whole-document layers, lowest first (resolve_inputs is the fast way)."""
    if not inputs.platform_layers and not inputs.service_layers:
        return [
            Layer("project", inputs.project_file, inputs.defaults),
            Layer("environment", inputs.stack_file, inputs.environment),
        ]
    layers = list(inputs.platform_layers)
    for layers_of_service in inputs.service_layers.values():
        layers += [Layer(layer.name, layer.file, {"services": layer.document},
                         {("services", *p): line for p, line in layer.lines.items()})
                   for layer in layers_of_service]
    return layers


def resolve_inputs(inputs: StackInputs) -> Resolved:
    """The merged document with provenance: the platform's layers, then each service's on
    its own (the same result as resolve(layers_of(inputs)), linear in the fleet)."""
    if not inputs.platform_layers and not inputs.service_layers:
        return resolve(layers_of(inputs))
    resolved = resolve(inputs.platform_layers)
    services: dict[str, Any] = {}
    for name, layers in inputs.service_layers.items():
        one = resolve(layers)
        if name in one.value:
            services[name] = one.value[name]
        for p, origin in one.origins.items():
            resolved.origins[("services", *p)] = origin
        for p, settings in one.history.items():
            resolved.history[("services", *p)] = settings
    if services or "services" not in resolved.value:
        resolved.value["services"] = services
    return resolved


def load_stack(inputs: StackInputs, schemas_dir: Path = SCHEMAS_DIR) -> StackModel:
    """Validate and resolve a stack, or raise InvalidStack with every problem found."""
    layers = layers_of(inputs)
    resolved = resolve_inputs(inputs)
    issues = [Issue(*problem) for problem in inputs.read_problems]
    issues += [Issue(*problem) for problem in checks.input_problems(inputs, layers)]
    issues += _check_declared_secrets(inputs)

    def origin(path: Iterable[Any]) -> Origin | None:
        return _origin(resolved, [str(p) for p in path])

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
        issues.append(Issue(dotted(path) or "(root)", where(path), _schema_message(error),
                            line(path)))
    if issues:
        raise InvalidStack(inputs.stack, issues)

    try:
        document = StackDocument.model_validate(resolved.value)
    except pydantic.ValidationError as exc:  # what the JSON Schema let through; never a value
        raise InvalidStack(inputs.stack, [
            _pydantic_issue(e, where) for e in exc.errors(include_input=False, include_url=False)
        ]) from None
    checker = _ServiceChecker(inputs, document, schemas_dir, where, line)
    checker.check_platform()
    services = {name: checker.check(name, svc) for name, svc in document.services.items()}
    checker.check_credentials(document)
    issues.extend(checker.issues)
    issues += [Issue(*p) for p in checks.document_problems(inputs, layers, document, services,
                                                           where)]
    issues.extend(Issue(*problem) for problem in size_issues(inputs))
    if issues:
        raise InvalidStack(inputs.stack, issues)
    return StackModel(inputs.stack, document.platform, services, resolved)  # type: ignore[arg-type]


def _pydantic_issue(error: Any, where: Any) -> Issue:
    loc = [str(p) for p in error["loc"]]
    if "[key]" in loc:  # a mapping key that is not a string
        parent = loc[:loc.index("[key]") - 1]
        return Issue(dotted(parent) or "(root)", where(parent),
                     "a key here is not a string: YAML 1.1 reads `no`, `yes`, `on`, `off`, "
                     "`true`, `false` and numbers as booleans and numbers. Fix: quote the key.")
    return Issue(dotted(loc) or "(root)", where(loc), f"{error['msg']}. Fix: correct the value.")
_LAYER_RANK = {"project": 0, "fleet": 0, "service": 1, "environment": 2}


def _origin(resolved: Resolved, path: list[str]) -> Origin | None:
    """Where a path was set; for a path nothing set (a missing key), the file that last
    touched its nearest ancestor (the stack overlay before the service's base)."""
    found = resolved.origin_of(path)
    if found is not None or len(path) < 3:
        return found
    for n in range(len(path) - 1, 1, -1):
        prefix = tuple(path[:n])
        below = [o for p, o in resolved.origins.items() if p[:n] == prefix]
        if below:
            return max(below, key=lambda o: _LAYER_RANK.get(o.layer, 3))
    return None


def validate_stack(inputs: StackInputs, schemas_dir: Path = SCHEMAS_DIR) -> list[Issue]:
    try:
        load_stack(inputs, schemas_dir)
    except InvalidStack as exc:
        return exc.issues
    return []


def render_value(value: Any) -> str:
    """How a typed config value appears in a ConfigMap."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def render_configmap(base_name: str, values: Mapping[str, Any]) -> RenderedConfigMap:
    data = {key: render_value(value) for key, value in sorted(values.items())}
    return RenderedConfigMap(base_name, data, configmap_hash(data))


def flags_document(flags: Mapping[str, Any]) -> dict[str, Any]:
    """The flagd document of a service's catalog flags (rollouts expanded)."""
    return render_flags(flags)


def render_flags_configmap(service: str, flags: Mapping[str, Any]) -> RenderedConfigMap:
    """The flags ConfigMap: a stable name, so a flag flip is an in-place update flagd
    hot-reloads from the mounted file (no new name, no pod restart)."""
    text = json.dumps(flags_document(flags), sort_keys=True, separators=(",", ":"))
    data = {FLAGS_DATA_KEY: text}
    return RenderedConfigMap(f"{service}-flags", data, configmap_hash(data), hashed=False)


def schema_errors(validator: Any, instance: Any) -> Iterable[jsonschema.ValidationError]:
    """Every error, with oneOf/anyOf failures narrowed to the most relevant branch's error.
    A valid document is recognised by the schema's compiled check (fastjsonschema) alone;
    jsonschema runs only when there is something to report, for its messages and paths."""
    fast = FAST.get(id(validator))
    if fast is not None:
        try:
            fast(instance)
            return
        except Exception:  # noqa: BLE001 - invalid (or not decidable there): ask jsonschema
            pass
    for error in validator.iter_errors(instance):
        while error.validator in ("oneOf", "anyOf") and error.context:
            # `X | None` fields: the null branch's type error says nothing about a bad object
            branches = [e for e in error.context if e.validator != "type"] or error.context
            error = jsonschema.exceptions.best_match(branches)
        yield error


_CONFIG_VALIDATORS: dict[tuple[int, frozenset[str]], tuple[Any, Any]] = {}


def _config_validator(app: Any, delivered: frozenset[str]) -> Any:
    """The app schema as config sees it: keys that secrets deliver (or that the schema takes
    only from secrets) are not required of config; `_check_delivery` reports them."""
    schema = app.schema
    drop = set(delivered) | set(schema.get(SCHEMA_SECRET_KEYS, []))
    if not drop & set(schema.get("required", [])):
        return app
    cache_key = (id(app), frozenset(drop & set(schema["required"])))
    if cache_key not in _CONFIG_VALIDATORS:  # validators are not hashable; `app` is kept alive
        pruned = drop_required(schema, drop)
        _CONFIG_VALIDATORS[cache_key] = (app, type(app)(pruned, format_checker=app.FORMAT_CHECKER))
    return _CONFIG_VALIDATORS[cache_key][1]


class _ServiceChecker:
    """Per-service checks that need more than the stack schema; collects issues."""

    def __init__(self, inputs: StackInputs, document: StackDocument, schemas_dir: Path, where,
                 line=lambda path: None):
        self.inputs = inputs
        self.platform = document.platform
        self.schemas_dir = schemas_dir
        self.where = where
        self.line = line
        self.issues: list[Issue] = []

    def fail(self, path: list[str], message: str, file: str | None = None) -> None:
        self.issues.append(Issue(dotted(path), file or self.where(path), message,
                                 None if file else self.line(path)))

    def check_platform(self) -> None:
        """Names written into Vault policy text and API paths, and the IRSA issuer."""
        vault = self.platform.vault
        for key, value in (("mount", vault.mount), ("kubernetes_auth_path",
                                                    vault.kubernetes_auth_path)):
            if value is not None:
                for problem in refs.vault_path_problems(value, f"platform.vault.{key}"):
                    self.fail(["platform", "vault", key], problem)
        issuer = self.platform.aws.eks_oidc_issuer
        if issuer is not None and not refs.EKS_ISSUER.fullmatch(issuer):
            self.fail(["platform", "aws", "eks_oidc_issuer"], "not an OIDC issuer URL "
                      "(`https://<host>/<path>`, no trailing newline or `/`). Fix: copy it from "
                      "`aws eks describe-cluster --query cluster.identity.oidc.issuer`.")

    def check(self, name: str, svc: Service) -> ServicePlan:
        base = ["services", name]
        env = self.platform.environment
        self._check_label(base, name, "service name")
        namespace = svc.namespace or f"{name}-{env}"
        self._check_label([*base, "namespace"], namespace, "namespace")
        eso = self.platform.external_secrets
        for key, problem in refs.reserved_name_problems(
                name, namespace, controller_namespace=eso.controller_namespace,
                controller_service_account=eso.controller_service_account):
            self.fail(base if key == "name" else [*base, "namespace"], problem)
        if any(s.store == "aws" for s in svc.secrets.values()):
            for problem in refs.iam_role_name_problems(env, name):
                self.fail(base, problem)
            if self.platform.aws.eks_oidc_issuer is None:
                self.fail(["platform", "aws", "eks_oidc_issuer"], f"service {name} keeps "
                          "secrets in Secrets Manager, which its SecretStore reads through "
                          "its own IAM role (IRSA); that needs the cluster's OIDC issuer. Fix: "
                          "set platform.aws.eks_oidc_issuer (`aws eks describe-cluster "
                          "--query cluster.identity.oidc.issuer`).")
        if any(s.rotation for s in svc.secrets.values()):
            for problem in refs.rotation_name_problems(env, name):
                self.fail(base, problem)

        app = self._app_validator(base, svc.app_schema)
        self._check_delivery(base, svc, app)  # first: a duplicate key is named as such
        app_config = app and _config_validator(app, frozenset(service_delivered_keys(svc)))
        config = render_configmap(f"{name}-config", svc.config)
        self._check_config([*base, "config"], svc.config, app_config, config)

        tenants = {}
        overridable = set(app.schema.get(TENANT_KEYS, [])) if app else set()
        for tenant, spec in svc.tenants.items():
            path = [*base, "tenants", tenant]
            self._check_label(path, tenant, "tenant name")
            for key in sorted(set(spec.config) - overridable):
                self.fail(
                    [*path, "config", key],
                    f"tenants may not override `{key}` (schema {svc.app_schema} allows tenants "
                    f"only: {', '.join(sorted(overridable)) or 'none'}). "
                    "Fix: move the value to the service config or allow it in the schema's "
                    f"`{TENANT_KEYS}`.",
                )
            merged = {**svc.config, **spec.config}
            rendered = render_configmap(f"{name}-{tenant}-config", merged)
            self._check_config([*path, "config"], merged, app_config, rendered)
            tenants[tenant] = rendered

        flags = None
        if svc.flags:
            problems = check_flags(svc.flags, self.schemas_dir)
            for problem in problems:
                self.fail([*base, "flags", *problem.path], problem.message)
            if not problems:
                flags = render_flags_configmap(name, svc.flags)

        for key, secret in svc.secrets.items():
            self._check_secret([*base, "secrets", key], name, key, secret)
        if svc.secrets_version is not None:
            self.fail([*base, "secrets_version"], "secrets_version is replaced by a version per "
                      "secret: one counter for the service rewrote every secret, rotated ones "
                      "included. Fix: remove it and bump `secrets.<KEY>.version` of the secret "
                      "whose value changed.")

        for cm in (config, flags, *tenants.values()):
            if cm and (len(cm.name) > 253 or not DNS_SUBDOMAIN.fullmatch(cm.name)):
                self.fail(base, f"ConfigMap name {cm.name} is not an RFC 1123 subdomain "
                          "(<=253 chars). Fix: shorten the service or tenant name.")

        labels = {
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/part-of": self.platform.part_of,
            "app.kubernetes.io/managed-by": MANAGED_BY,
            "configplane.io/environment": env,
        }
        return ServicePlan(
            name=name,
            environment=env,
            namespace=namespace,
            spec=svc,
            labels=labels,
            config=config,
            tenants=tenants,
            flags=flags,
            vault_mount=self.platform.vault.mount or f"{env}-kv",
        )

    def check_credentials(self, document: StackDocument) -> None:
        """Certificates (`tls`, platform.pki) and dynamic logins (platform.database)."""
        for module in (certificates, dynamic_credentials):
            for path, message in module.problems(document.platform, document.services):
                self.fail(path, message)
        database = document.platform.database
        for name, conn in (database.connections if database else {}).items():
            path = ["platform", "database", "connections", name, "password_config_key"]
            self._check_secure_key(path, conn.password_config_key)

    def _check_delivery(self, base: list[str], svc: Service, app: Any) -> None:
        """Each pod key comes from one place: config, or one secret (configplane.delivery)."""
        delivered: dict[str, str] = {}
        for key in sorted(svc.secrets):
            for env_key in delivered_keys(key, svc.secrets[key]):
                if env_key in delivered:
                    self.fail([*base, "secrets", key], f"`{key}` delivers `{env_key}`, which "
                              f"`{delivered[env_key]}` delivers already. Fix: rename one.")
                delivered.setdefault(env_key, key)
        for where, config in [(["config"], svc.config)] + [
                (["tenants", t, "config"], spec.config) for t, spec in svc.tenants.items()]:
            for env_key in sorted(set(config) & set(delivered)):
                secret = delivered[env_key]
                origin = (f"from its `database` ({', '.join(delivered_keys(secret, svc.secrets[secret]))})"
                          if env_key != secret else "as itself")
                self.fail([*base, *where, env_key], f"`{env_key}` is delivered by secret "
                          f"`{secret}` {origin}: the pod would get two values for one variable. "
                          "Fix: remove it from config.")
        if app is None:
            return
        secret_only = set(app.schema.get(SCHEMA_SECRET_KEYS, []))
        for env_key in sorted(secret_only & set(svc.config) - set(delivered)):
            self.fail([*base, "config", env_key], f"app schema {svc.app_schema} takes `{env_key}` "
                      "from a secret, never from config. Fix: remove it from config and declare "
                      "the secret that delivers it.")
        missing = sorted(secret_only & set(app.schema.get("required", [])) - set(delivered))
        if missing:
            self.fail([*base, "secrets"], f"app schema {svc.app_schema} needs {', '.join(missing)} "
                      "from a secret. Fix: declare a Secrets Manager secret named <P>_PASSWORD "
                      "with `database` (it delivers <P>_USER, _PASSWORD, _HOST, _PORT, _NAME, "
                      "_URL), or the missing keys as secrets.")

    def _check_label(self, path: list[str], value: str, what: str) -> None:
        if len(value) > 63 or not DNS_LABEL.fullmatch(value):
            self.fail(
                path,
                f"{what} `{value}` is not an RFC 1123 label (lowercase letters, digits and '-', "
                "starting and ending alphanumeric, at most 63 characters). Fix: rename it.",
            )

    def _app_validator(self, path: list[str], schema_name: str) -> Any:
        schema_path = self.schemas_dir / "services" / f"{schema_name}.schema.json"
        if not DNS_LABEL.fullmatch(schema_name) or not schema_path.is_file():
            available = sorted(p.name.removesuffix(".schema.json")
                               for p in (self.schemas_dir / "services").glob("*.schema.json"))
            self.fail([*path, "app_schema"], f"unknown app schema `{schema_name}`. "
                      f"Fix: use one of {', '.join(available)} or add schemas/services/"
                      f"{schema_name}.schema.json.")
            return None
        try:
            return _validator(schema_path)
        except SchemaFileError as exc:
            self.fail([*path, "app_schema"], exc.message, file=exc.file)
            return None

    def _check_config(self, path: list[str], values: Mapping[str, Any],
                      app: Any, rendered: RenderedConfigMap) -> None:
        if app is not None:
            for error in schema_errors(app, dict(values)):
                self.fail([*path, *error_path(error)], f"app schema {app.schema.get('title', '')}: "
                          f"{_schema_message(error)}")
        for key in values:
            if not DATA_KEY.fullmatch(key):
                self.fail([*path, key], "ConfigMap keys may contain only letters, digits, '-', "
                          "'_' and '.'. Fix: rename the key.")
        size = sum(len(k.encode()) + len(v.encode()) for k, v in rendered.data.items())
        if size > MAX_CONFIGMAP_BYTES:
            self.fail(path, f"ConfigMap {rendered.base_name} would be {size} bytes; Kubernetes "
                      f"allows {MAX_CONFIGMAP_BYTES}. Fix: move large values out of config.")

    def _check_secret(self, path: list[str], service: str, key: str, secret: SecretSpec) -> None:
        if not DATA_KEY.fullmatch(key):
            self.fail(path, "secret names become Kubernetes Secret keys: letters, digits, '-', "
                      "'_' and '.' only. Fix: rename it.")
        need = {"secure": "config_key", "reference": "ref"}.get(secret.source)
        for attr in ("config_key", "ref"):
            if attr == need and getattr(secret, attr) is None:
                self.fail([*path, attr], f"source {secret.source} needs `{attr}`. Fix: add it.")
            elif attr != need and getattr(secret, attr) is not None:
                self.fail([*path, attr], f"`{attr}` is only for source "
                          f"{'secure' if attr == 'config_key' else 'reference'}. Fix: remove it.")
        if secret.source == "secure" and secret.config_key:
            self._check_secure_key([*path, "config_key"], secret.config_key)
        if secret.source == "reference" and secret.ref:
            aws = self.platform.aws
            try:
                if secret.store == "vault":
                    refs.parse_vault_ref(secret.ref, service)
                else:
                    refs.check_service_secret_arn(
                        secret.ref, account=aws.account_id, region=aws.region,
                        environment=self.platform.environment, service=service)
            except refs.RefError as e:
                self.fail([*path, "ref"], str(e))
        if secret.database is not None and secret.store != "aws":
            self.fail([*path, "database"], "`database` describes a Secrets Manager database "
                      "secret (the JSON rotation reads). Fix: set store: aws, or remove it.")
        elif delivers_whole(secret) and not (key.endswith(PASSWORD_SUFFIX) and len(key) > 9):
            self.fail(path, "a database secret is delivered whole as <P>_USER, <P>_PASSWORD, "
                      "<P>_HOST, <P>_PORT, <P>_NAME and <P>_URL, so its name must be "
                      "<P>_PASSWORD. Fix: rename it, e.g. DATABASE_PASSWORD.")
        if secret.rotation and secret.version != 1:
            self.fail([*path, "version"], "a rotated secret is written once (version 1) and then "
                      "belongs to its rotation: a new version would put the old value back over "
                      "the rotated one. Fix: set version back to 1 and rotate it (aws "
                      "secretsmanager rotate-secret --secret-id <arn>).")
        if secret.rotate_every_days is not None and (secret.source != "generated"
                                                     or secret.rotation):
            self.fail([*path, "rotate_every_days"], "rotate_every_days regenerates a generated "
                      "secret; this one is not generated or its rotation Lambda owns it. Fix: "
                      "remove it (rotated secrets follow platform.rotation.schedule_days).")
        if secret.rotation and secret.source != "dynamic":  # dynamic: dynamic_credentials
            rotation = secret.rotation
            if secret.store != "aws" or secret.source == "reference":
                self.fail([*path, "rotation"], "rotation is managed for secrets that configplane "
                          "keeps in AWS Secrets Manager. Fix: set store: aws (not a reference).")
            network = self.platform.rotation
            if rotation.strategy.startswith("postgres") and not (
                network.subnet_ids and network.security_group_ids
            ):
                self.fail([*path, "rotation", "strategy"], f"strategy {rotation.strategy} runs the "
                          "rotation Lambda in the database's network. Fix: set "
                          "platform.rotation.subnet_ids and security_group_ids.")
            if rotation.strategy.startswith("postgres") and secret.database is None:
                self.fail([*path, "database"], f"strategy {rotation.strategy} needs `database` "
                          "(host, port, dbname, username). Fix: add it.")
            if rotation.master_secret_arn:
                aws = self.platform.aws
                try:
                    refs.check_master_secret_arn(
                        rotation.master_secret_arn, account=aws.account_id, region=aws.region,
                        environment=self.platform.environment, service=service)
                except refs.RefError as e:
                    self.fail([*path, "rotation", "master_secret_arn"], str(e))
            if (rotation.strategy == "postgres-alternating-users") != bool(
                rotation.master_secret_arn
            ):
                self.fail([*path, "rotation", "master_secret_arn"], "master_secret_arn is needed "
                          "by postgres-alternating-users and only by it. Fix: add or remove it.")

    def _check_secure_key(self, path: list[str], config_key: str) -> None:
        full = f"{NAMESPACE}:{config_key}"
        declared = self.inputs.declarations.get(full)
        if declared is None or not declared.secret or not declared.type:
            self.fail(path, f"`{full}` must be declared in {self.inputs.project_file} with "
                      "`type: string` and `secret: true` (then the Pulumi CLI refuses plaintext). "
                      f"Fix: add `config: {{{full}: {{type: string, secret: true}}}}`.",
                      file=self.inputs.project_file)
        value = self.inputs.values.get(full)
        if value is None:
            self.fail(path, f"`{full}` has no value in this stack. Fix: run `pulumi config set "
                      f"--secret {full} --stack {self.inputs.stack}`.", file=self.inputs.stack_file)


def _check_declared_secrets(inputs: StackInputs) -> list[Issue]:
    """A plaintext stack value for a key declared secret: never echo the value."""
    return [
        Issue(
            f"config.{key}",
            inputs.stack_file,
            f"`{key}` is declared secret but holds a plaintext value. Fix: remove it from "
            f"{inputs.stack_file} and run `pulumi config set --secret {key} --stack "
            f"{inputs.stack}` (then rotate the exposed value).",
        )
        for key, declared in sorted(inputs.declarations.items())
        if declared.secret and key in inputs.values and not inputs.values[key].secure
    ]
