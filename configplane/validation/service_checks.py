"""The checks of a stack that need more than its JSON Schema: per service (names, delivery,
config against the app schema, tenants, flags, secrets and rotation), the platform's names and
the credentials. Each problem is an Issue with its key path and the file that set it; the
checks build no model (configplane.model.builder does, once the stack is valid).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configplane import contract, ownership, refs
from configplane.inputs import (
    NAMESPACE,
    SchemaFileError,
    StackInputs,
    apply_tenant,
    config_validator,
    dotted,
    schema_errors,
    service_validator,
)
from configplane.inputs import load_validator as _validator
from configplane.model import (
    PASSWORD_SUFFIX,
    Issue,
    RenderedConfigMap,
    Rotation,
    SecretSpec,
    Service,
    StackDocument,
    certificates,
    check_flags,
    delivered_keys,
    delivers_whole,
    dynamic_credentials,
    render_configmap,
    render_flags_configmap,
    service_delivered_keys,
    service_namespace,
    trust,
)
from configplane.redaction import Detector, detector_for
from configplane.schema_messages import error_path, program_message
from configplane.service_schema import SERVICE_SCHEMA_FILE

# Matched with fullmatch (configplane.contract): a trailing newline is not accepted.
DNS_LABEL = re.compile(contract.DNS_LABEL)
DNS_SUBDOMAIN = re.compile(contract.DNS_SUBDOMAIN)
DATA_KEY = re.compile(contract.CONFIGMAP_DATA_KEY)
TENANT_KEYS = contract.SCHEMA_TENANT_KEYS


class ServiceChecker:
    """Per-service checks that need more than the stack schema; collects issues."""

    def __init__(self, inputs: StackInputs, document: StackDocument, schemas_dir: Path, where,
                 line=lambda path: None, detector: Detector | None = None):
        self.inputs = inputs
        # decides which of a service schema's own keys name secrets (configplane.service_schema)
        self.detector = detector
        self.platform = document.platform
        self.schemas_dir = schemas_dir
        self.where = where
        self.line = line
        self.issues: list[Issue] = []
        # each service's flags ConfigMap as checked (None: no flags, or invalid ones), for
        # the stack's own checks (configplane.validation.stack_checks)
        self.flags: dict[str, RenderedConfigMap | None] = {}
        # each kind's validator (or why there is none), looked up once per stack: a fleet's
        # services share a handful of kinds, and reading and hashing a kind's schema file per
        # service was a quarter of validating a fleet
        self._kinds: dict[str, Any] = {}

    def fail(self, path: list[str], message: str, file: str | None = None) -> None:
        self.issues.append(Issue(dotted(path), file or self.where(path), message,
                                 None if file else self.line(path)))

    def check_platform(self) -> None:
        """The IRSA issuer (mounts and paths: configplane.validation.ownership)."""
        issuer = self.platform.aws.eks_oidc_issuer
        if issuer is not None and not refs.EKS_ISSUER.fullmatch(issuer):
            self.fail(["platform", "aws", "eks_oidc_issuer"], "not an OIDC issuer URL "
                      "(`https://<host>/<path>`, no trailing newline or `/`). Fix: copy it from "
                      "`aws eks describe-cluster --query cluster.identity.oidc.issuer`.")

    def check(self, name: str, svc: Service) -> None:
        base = ["services", name]
        env = self.platform.environment
        self._check_label(base, name, "service name")
        namespace = service_namespace(name, svc, env)
        self._check_label([*base, "namespace"], namespace, "namespace")
        for problem in ownership.name_length_problems(
                env, name, aws=any(s.store == "aws" for s in svc.secrets.values()),
                rotated=any(s.rotation for s in svc.secrets.values())):
            self.fail(base, problem)
        if any(s.store == "aws" for s in svc.secrets.values()) and (
                self.platform.aws.eks_oidc_issuer is None):
            self.fail(["platform", "aws", "eks_oidc_issuer"], f"service {name} keeps "
                      "secrets in Secrets Manager, which its SecretStore reads through "
                      "its own IAM role (IRSA); that needs the cluster's OIDC issuer. Fix: "
                      "set platform.aws.eks_oidc_issuer (`aws eks describe-cluster "
                      "--query cluster.identity.oidc.issuer`).")

        app = self._app_validator(base, svc.app_schema, name)
        self._check_delivery(base, svc, app)  # first: a duplicate key is named as such
        app_config = app and config_validator(app, frozenset(service_delivered_keys(svc)))
        config = render_configmap(ownership.configmap_base(name), svc.config)
        self._check_config([*base, "config"], svc.config, app_config, config)

        tenants = []
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
            merged = apply_tenant(svc.config, spec.config)  # the layer tenant:<name>
            rendered = render_configmap(ownership.tenant_configmap_base(name, tenant), merged)
            self._check_config([*path, "config"], merged, app_config, rendered)
            tenants.append(rendered)

        flags = None
        if svc.flags:
            problems = check_flags(svc.flags, self.schemas_dir)
            for flag_problem in problems:
                self.fail([*base, "flags", *flag_problem.path], flag_problem.message)
            if not problems:
                flags = render_flags_configmap(name, svc.flags)
        self.flags[name] = flags

        for key, secret in svc.secrets.items():
            self._check_secret([*base, "secrets", key], name, key, secret)
        if svc.secrets_version is not None:
            self.fail([*base, "secrets_version"], "secrets_version is replaced by a version per "
                      "secret: one counter for the service rewrote every secret, rotated ones "
                      "included. Fix: remove it and bump `secrets.<KEY>.version` of the secret "
                      "whose value changed.")

        for cm in (config, flags, *tenants):
            if cm and (len(cm.name) > 253 or not DNS_SUBDOMAIN.fullmatch(cm.name)):
                self.fail(base, f"ConfigMap name {cm.name} is not an RFC 1123 subdomain "
                          "(<=253 chars). Fix: shorten the service or tenant name.")


    def check_credentials(self, document: StackDocument) -> None:
        """Certificates (`tls`, platform.pki) and dynamic logins (platform.database)."""
        for module in (certificates, dynamic_credentials):
            for path, message in module.problems(document.platform, document.services):
                self.fail(path, message)
        database = document.platform.database
        for name, conn in (database.connections if database else {}).items():
            path = ["platform", "database", "connections", name, "password_config_key"]
            self._check_secure_key(path, conn.password_config_key)
        self.check_trust(document)

    def check_trust(self, document: StackDocument) -> None:
        """The CAs Vault is given (intermediate chain, API server, databases) and the
        reviewer token of a Vault outside the cluster (configplane.model.trust)."""
        for path, message in trust.problems(document.platform):
            self.fail(path, message)
        reviewer = document.platform.vault.token_reviewer_jwt_config_key
        if reviewer is not None:
            self._check_secure_key(["platform", "vault", "token_reviewer_jwt_config_key"],
                                   reviewer)

    def _check_delivery(self, base: list[str], svc: Service, app: Any) -> None:
        """Each pod key comes from one place: config, or one secret (configplane.model.delivery)."""
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
        secret_only = set(app.schema.get(contract.SCHEMA_SECRET_KEYS, []))
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

    def _app_validator(self, path: list[str], schema_name: str, service: str) -> Any:
        """The kind's validator, composed with the service's own schema.json if it has one."""
        kind = self._kind_validator(path, schema_name)
        if kind is None or self.inputs.project_dir is None:
            return kind
        display = ownership.service_directory(service) + SERVICE_SCHEMA_FILE
        if self.detector is None:  # the inputs' own project's, found once per stack
            self.detector = detector_for(self.inputs.project_dir)
        detector = self.detector
        app, problems = service_validator(kind, Path(self.inputs.project_dir), display,
                                          lambda key: detector.key_kind(key).secret_slot)
        for problem in problems:
            self.issues.append(Issue(dotted(problem.path) or "(root)", display, problem.message))
        return app

    def _kind_validator(self, path: list[str], schema_name: str) -> Any:
        if schema_name not in self._kinds:
            self._kinds[schema_name] = self._find_kind(schema_name)
        found = self._kinds[schema_name]
        if isinstance(found, _NoKind):  # said again for each service that names it
            self.fail([*path, "app_schema"], found.message, file=found.file)
            return None
        return found

    def _find_kind(self, schema_name: str) -> Any:
        """The kind's validator, or why there is none (`_NoKind`)."""
        schema_path = self.schemas_dir / "services" / f"{schema_name}.schema.json"
        if not DNS_LABEL.fullmatch(schema_name) or not schema_path.is_file():
            available = sorted(p.name.removesuffix(".schema.json")
                               for p in (self.schemas_dir / "services").glob("*.schema.json"))
            return _NoKind(f"unknown app schema `{schema_name}`. Fix: use one of "
                           f"{', '.join(available)} or add schemas/services/"
                           f"{schema_name}.schema.json.")
        try:
            return _validator(schema_path)
        except SchemaFileError as exc:
            return _NoKind(exc.message, exc.file)

    def _check_config(self, path: list[str], values: Mapping[str, Any],
                      app: Any, rendered: RenderedConfigMap) -> None:
        if app is not None:
            for error in schema_errors(app, dict(values)):
                self.fail([*path, *error_path(error)], f"app schema {app.schema.get('title', '')}: "
                          f"{program_message(error)}")
        for key in values:
            if not DATA_KEY.fullmatch(key):
                self.fail([*path, key], "ConfigMap keys may contain only letters, digits, '-', "
                          "'_' and '.'. Fix: rename the key.")
        sizes = {k: len(k.encode()) + len(v.encode()) for k, v in rendered.data.items()}
        size = sum(sizes.values())
        if size > contract.MAX_CONFIGMAP_BYTES:
            biggest = max(sizes, key=lambda k: sizes[k])  # blame the file that set it
            at = [*path, biggest] if biggest in values else path
            self.fail(at, f"ConfigMap {rendered.base_name} would be {size} bytes; Kubernetes "
                      f"allows {contract.MAX_CONFIGMAP_BYTES}, and `{biggest}` takes "
                      f"{sizes[biggest]}. Fix: move large values out of config.")

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
            self._check_reference([*path, "ref"], service, secret.store, secret.ref)
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
            self._check_rotation(path, service, secret, secret.rotation)

    def _check_reference(self, path: list[str], service: str, store: str, ref: str) -> None:
        """A reference names a secret of this service, in its environment's store."""
        aws = self.platform.aws
        try:
            if store == "vault":
                refs.parse_vault_ref(ref, ownership.vault_path(service))
            else:
                refs.check_service_secret_arn(
                    ref, account=aws.account_id, region=aws.region,
                    prefix=ownership.secret_prefix(self.platform.environment, service))
        except refs.RefError as e:
            self.fail(path, str(e))

    def _check_rotation(self, path: list[str], service: str, secret: SecretSpec,
                        rotation: Rotation) -> None:
        """A managed rotation: a Secrets Manager secret, with what its strategy needs."""
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
                env = self.platform.environment
                refs.check_master_secret_arn(
                    rotation.master_secret_arn, account=aws.account_id, region=aws.region,
                    service=service,
                    owner_of=lambda name: ownership.owner_of_secret_name(name, env))
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


@dataclass(frozen=True)
class _NoKind:
    """Why a service's `app_schema` has no validator: the message, and the file to blame
    (None: where the service set `app_schema`)."""

    message: str
    file: str | None = None


def declared_secret_problems(inputs: StackInputs) -> list[Issue]:
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
