"""A synthetic fleet of N services across dev, staging and prod, shaped like the sample stacks.

The generated project is a copy of the real one (Pulumi.yaml's runtime and platform defaults,
each stack file's platform and provider settings, __main__.py, components/, schemas/,
lambdas/) with the fleet in the service catalog: services/<name>/service.yaml holds each
service's base and services/<name>/<stack>.yaml its overrides per environment, as a platform
team would write them (`layout="config"` writes the layout before the catalog instead: bases
under Pulumi.yaml's `configplane:defaults`, overrides under each stack's
`configplane:services`, which is what `configplane migrate` starts from):
- the three app schemas (http-api 45 %, worker 35 %, web-frontend 20 %),
- secrets of every source: `secure` stack config (declared `type: string, secret: true`) for
  the first SECURE_SERVICES services only (a secure value per secret grows PULUMI_CONFIG with
  the fleet: docs/catalog.md), then generated database passwords and Vault references; also
  generated keys, Vault and Secrets Manager references; rotation on a third of the API databases,
- tenants on a third of the workers, feature flags on every web frontend and a fifth of the APIs.
The fleet is deterministic: the same N gives the same files.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path
from typing import Any

import yaml

from configplane.model import environment_topology

REPO = Path(__file__).resolve().parents[1]
STACKS = ("dev", "staging", "prod")
PROJECT_DIRS = ("components", "schemas", "lambdas")  # what __main__.py needs beside it
ACCOUNTS = {"dev": "111111111111", "staging": "222222222222", "prod": "333333333333"}
REGION = "eu-west-1"
DOMAINS = ("orders", "payments", "catalog", "search", "users", "billing", "inventory",
           "shipping", "reviews", "notify", "pricing", "ledger", "media", "auth", "cart")
LOG_LEVEL = {"dev": "debug", "staging": "info", "prod": "warn"}
SECURE_SERVICES = 24  # services with `secure` config values; the rest follow the scaling rule
PLATFORM_OWNERS = ["@shop/platform"]


def kind_of(i: int) -> str:
    slot = i % 20  # 9 APIs, 7 workers, 4 web frontends in every 20 services
    return "api" if slot < 9 else "worker" if slot < 16 else "web"


def service_name(i: int) -> str:
    return f"{DOMAINS[i % len(DOMAINS)]}-{kind_of(i)}-{i:04d}"


def _camel(name: str) -> str:
    head, *rest = name.split("-")
    return head + "".join(part.capitalize() for part in rest)


def _ciphertext(key: str, stack: str) -> str:
    # Has the passphrase provider's form (v1:<nonce>:<ciphertext>, which `validate` checks);
    # the offline plan never decrypts it.
    digest = hashlib.sha256(f"{stack}/{key}".encode()).digest() * 2
    return f"v1:{base64.b64encode(digest[:12]).decode()}:{base64.b64encode(digest[12:60]).decode()}"


def _flags(i: int) -> dict[str, Any]:
    return {
        "new-checkout": {"state": "ENABLED", "variants": {"on": True, "off": False},
                         "defaultVariant": "off"},
        "dark-mode": {"state": "ENABLED", "variants": {"on": True, "off": False},
                      "defaultVariant": "on"},
        "page-size": {"state": "ENABLED", "variants": {"small": 20, "large": 100},
                      "defaultVariant": "small" if i % 2 else "large"},
    }


def service_defaults(i: int, teams: int | None = None) -> tuple[dict[str, Any], list[str]]:
    """Project-level definition of service i, and the `secure` config keys it needs. Its owner
    is its domain's team, or with `teams` one of that many teams (`@shop/team-NN`, in turn)."""
    name, kind, domain = service_name(i), kind_of(i), DOMAINS[i % len(DOMAINS)]
    secure: list[str] = []
    owners = [f"@shop/{domain}-team" if teams is None else f"@shop/team-{i % teams:02d}"]
    if kind == "api":
        key = f"{_camel(name)}DbPassword"
        password: dict[str, Any] = {"source": "generated", "store": "aws"}
        if i < SECURE_SERVICES:
            secure.append(key)
            password = {"source": "secure", "config_key": key, "store": "aws"}
        spec: dict[str, Any] = {
            "owners": owners,
            "app_schema": "http-api",
            # DATABASE_HOST/PORT/NAME come from the password's `database` (configplane.model.delivery)
            "config": {"LOG_LEVEL": "info", "PORT": 8080, "DATABASE_POOL_SIZE": 10,
                       "REQUEST_TIMEOUT_MS": 5000},
            "secrets": {
                "DATABASE_PASSWORD": {**password,
                                      "description": f"PostgreSQL password of {name}"},
                "SESSION_SIGNING_KEY": {"source": "generated", "store": "vault", "length": 64,
                                        "description": "HMAC key for session cookies"},
            },
        }
        if i % 4 == 0:
            spec["secrets"]["PARTNER_TOKEN"] = {
                "source": "reference", "store": "vault", "ref": f"{name}/partner#token",
                "description": "Written to Vault by the partner-onboarding runbook"}
        if i % 5 == 0:
            spec["flags"] = {"new-checkout": _flags(i)["new-checkout"]}
    elif kind == "worker":
        key = f"{_camel(name)}ApiKey"
        api_key: dict[str, Any] = {"source": "reference", "store": "vault",
                                   "ref": f"{name}/upstream#api_key"}
        if i < SECURE_SERVICES:
            secure.append(key)
            api_key = {"source": "secure", "config_key": key, "store": "vault"}
        spec = {
            "owners": owners,
            "app_schema": "worker",
            "config": {"LOG_LEVEL": "info", "CONCURRENCY": 4, "RATE_LIMIT_RPS": 20,
                       "PAYMENTS_API_BASE_URL": "https://api.payments.example.com/v2",
                       "VISIBILITY_TIMEOUT_SECONDS": 60},
            "secrets": {"UPSTREAM_API_KEY": {**api_key,
                                             "description": "Key of the upstream API"}},
        }
    else:
        spec = {
            "owners": owners,
            "app_schema": "web-frontend",
            "config": {"LOG_LEVEL": "info", "PORT": 3000, "SESSION_COOKIE_NAME": "shop_session"},
            "secrets": {"COOKIE_ENCRYPTION_KEY": {"source": "generated", "store": "vault",
                                                  "length": 48,
                                                  "description": "Encrypts the session cookie"}},
            "flags": _flags(i),
        }
    return spec, secure


def service_overrides(i: int, stack: str) -> dict[str, Any]:
    """What stack file `stack` says about service i."""
    name, kind, domain = service_name(i), kind_of(i), DOMAINS[i % len(DOMAINS)]
    account = ACCOUNTS[stack]
    host = f"{domain}-{stack}.cluster-c1abc2def3gh.{REGION}.rds.amazonaws.com"
    prefix = "" if stack == "prod" else f"{stack}."
    override: dict[str, Any] = {"config": {"LOG_LEVEL": LOG_LEVEL[stack]}}
    if kind == "api":
        override["config"].update(
            CORS_ALLOWED_ORIGINS=f"https://{prefix}shop.example.com",
            DATABASE_POOL_SIZE={"dev": 5, "staging": 10, "prod": 40}[stack])
        secrets: dict[str, Any] = {"DATABASE_PASSWORD": {
            "database": {"host": host, "dbname": domain, "username": name.replace("-", "_")}}}
        if i % 3 == 0:  # rotated database passwords
            rotation: dict[str, Any] = {"strategy": "postgres-single-user"}
            if stack != "dev":  # staging rehearses prod
                rotation = {"strategy": "postgres-alternating-users", "master_secret_arn":
                            f"arn:aws:secretsmanager:{REGION}:{account}:secret:{domain}-master-Ab12Cd"}
            secrets["DATABASE_PASSWORD"]["rotation"] = rotation
        if i % 5 == 0:
            secrets["LEGACY_TOKEN"] = {
                "source": "reference", "store": "aws",
                "ref": f"arn:aws:secretsmanager:{REGION}:{account}:secret:"
                       f"configplane/{stack}/{name}/legacy-Ab12Cd"}
        if secrets:
            override["secrets"] = secrets
        if i % 5 == 0 and stack != "dev":
            override["flags"] = {"new-checkout": {"targeting": {"fractional": [
                ["on", 10 if stack == "prod" else 50], ["off", 90 if stack == "prod" else 50]]}}}
    elif kind == "worker":
        override["config"].update(
            QUEUE_URL=f"https://sqs.{REGION}.amazonaws.com/{account}/shop-{stack}-{name}",
            CONCURRENCY={"dev": 2, "staging": 4, "prod": 16}[stack])
        if i % 3 == 0:
            scale = {"dev": 1, "staging": 2, "prod": 4}[stack]
            override["tenants"] = {
                "acme": {"config": {"RATE_LIMIT_RPS": 50 * scale}},
                "globex": {"config": {"RATE_LIMIT_RPS": 5 * scale, "CONCURRENCY": scale}},
            }
    else:
        override["config"].update(API_BASE_URL=f"https://api.{prefix}shop.example.com",
                                  CDN_URL=f"https://cdn.{prefix}shop.example.com")
        if stack != "dev":
            override["flags"] = {"new-checkout": {"targeting": {"fractional": [
                ["on", 10 if stack == "prod" else 50], ["off", 90 if stack == "prod" else 50]]}}}
    return override


def sample_stack(stack: str) -> dict[str, Any]:
    """The repo's own stack file: the fleet keeps its platform and provider settings."""
    return yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]


def platform_secure_keys() -> set[str]:
    """`secure` keys the sample stacks' platform settings name (platform.database's root
    logins, platform.vault's token reviewer)."""
    keys = set()
    for stack in STACKS:
        platform = sample_stack(stack)["configplane:platform"]
        database = platform.get("database") or {}
        keys |= {c["password_config_key"] for c in (database.get("connections") or {}).values()}
        reviewer = (platform.get("vault") or {}).get("token_reviewer_jwt_config_key")
        keys |= {reviewer} if reviewer else set()
    return keys


def _dump(document: dict[str, Any], path: Path) -> None:
    path.write_text(yaml.dump(document, Dumper=yaml.CSafeDumper, sort_keys=False))


def generate(target: Path, n: int, layout: str = "catalog", teams: int | None = None) -> Path:
    """Write the project with a fleet of n services into `target` (created); return it.
    layout: "catalog" (services/) or "config" (the layout before it, for migration); teams:
    how many teams own the services (default: one per domain, 15)."""
    if layout not in ("catalog", "config"):
        raise ValueError(f"layout must be catalog or config, not {layout!r}")
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "__main__.py", target / "__main__.py")
    for name in PROJECT_DIRS:
        shutil.copytree(REPO / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))

    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    services, declarations, granted = {}, {}, {}
    for i in range(n):
        spec, secure = service_defaults(i, teams)
        services[service_name(i)] = spec
        for key in secure:
            declarations[f"configplane:{key}"] = {"type": "string", "secret": True}
        if secure:  # the platform grants each service its own keys (docs/security.md)
            granted[service_name(i)] = secure
    for key in platform_secure_keys():  # the sample platform's own (database root logins)
        declarations[f"configplane:{key}"] = {"type": "string", "secret": True}
    defaults = project["config"]["configplane:defaults"]["value"]
    value: dict[str, Any] = {"platform": {**defaults["platform"],
                                          "grants": {"secure_keys": granted}}}
    if layout == "config":
        value["services"] = services
    project["config"] = {**declarations, "configplane:defaults": {"value": value}}
    _dump(project, target / "Pulumi.yaml")
    if layout == "catalog":
        catalog = target / "services"
        catalog.mkdir()
        _dump({"owners": PLATFORM_OWNERS, "service": {}}, catalog / "defaults.yaml")
        for name, spec in services.items():
            (catalog / name).mkdir()
            _dump(spec, catalog / name / "service.yaml")

    for stack in STACKS:
        sample = sample_stack(stack)
        if sample["configplane:platform"]["aws"]["account_id"] != ACCOUNTS[stack]:
            raise ValueError(f"Pulumi.{stack}.yaml: the fleet's ARNs assume account "
                             f"{ACCOUNTS[stack]}; update benchmarks/fleet.py ACCOUNTS")
        config = {k: v for k, v in sample.items() if not k.startswith("configplane:")}
        config.update({key: {"secure": _ciphertext(key, stack)} for key in declarations})
        config["configplane:platform"] = sample["configplane:platform"]
        overrides = {service_name(i): service_overrides(i, stack) for i in range(n)}
        if layout == "config":
            config["configplane:services"] = overrides
        else:
            for name, override in overrides.items():
                _dump(override, target / "services" / name / f"{stack}.yaml")
        _dump({"config": config}, target / f"Pulumi.{stack}.yaml")
        _secure_to_shards(target, stack, granted)
    return target


def _secure_to_shards(target: Path, stack: str, granted: dict[str, list[str]]) -> None:
    """Each service's `secure` values go to the stack file of the shard that reads them (only
    that stack can decrypt its own file: docs/fleet.md); the platform's stay."""
    topology = environment_topology(target, stack)
    if not topology.sharded:
        return
    path = target / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text())
    shards: dict[str, dict[str, Any]] = {}
    for service, keys in granted.items():
        shard = topology.stack_of(service)
        for key in keys:
            value = document["config"].pop(f"configplane:{key}", None)
            if shard is not None and value is not None:
                shards.setdefault(shard.name, {})[f"configplane:{key}"] = value
    _dump(document, path)
    for name, config in shards.items():
        _dump({"config": config}, target / f"Pulumi.{name}.yaml")
