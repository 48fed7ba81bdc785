"""The size of `PULUMI_CONFIG`, as the Pulumi CLI builds it, and the budget configplane keeps.

The CLI hands the whole stack config to the program (the Python language host) and to every
policy pack (`constructEnv` for analyzers) as ONE environment variable: a JSON object of every
`<namespace>:<key>` to its value as a string (objects as their own JSON), project and stack
config merged, `secure` values decrypted. Linux refuses an environment string over 128 KiB
(MAX_ARG_STRLEN, the `NAME=` and the terminating NUL included): the process cannot start
(E2BIG, "Argument list too long"; pulumi#20402). configplane fails validation at CONFIG_BUDGET,
well before that, and says what to move where.

Encoding as Go's `json.Marshal` does it: keys sorted, no spaces, `<`, `>`, `&`, U+2028 and
U+2029 escaped as `\\u....`, other non-ASCII as UTF-8. Decrypted values are stood in for by
placeholders of their length (the runtime's own length under `pulumi up`; estimated from the
ciphertext offline, see catalog.estimate_plaintext_length).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from configplane.inputs import DEFAULTS_KEY, SERVICES_KEY, StackInputs

ENV_NAME = "PULUMI_CONFIG"
MAX_ARG_STRLEN = 128 * 1024  # Linux: 32 pages, one environment string, NUL included
CONFIG_BUDGET = 96 * 1024  # configplane's limit: room for growth before the hard one
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
               "\u2029": "\\u2029"}


def go_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if any(c in text for c in _GO_ESCAPES):
        for char, escaped in _GO_ESCAPES.items():
            text = text.replace(char, escaped)
    return text


def cli_config(inputs: StackInputs) -> dict[str, str]:
    """The map the CLI puts in PULUMI_CONFIG (secure values as placeholders of their length)."""
    config = {k: v if isinstance(v, str) else go_json(v) for k, v in inputs.project_values.items()}
    for key, value in inputs.values.items():
        if value.secure:
            config[key] = "x" * (value.length or 0)
        else:
            config[key] = value.value if isinstance(value.value, str) else go_json(value.value)
    return config


@dataclass(frozen=True)
class ConfigSize:
    total: int  # bytes of the environment string `PULUMI_CONFIG=...` with its NUL
    by_key: Mapping[str, int]  # bytes each key adds (key, value, quotes, separators)
    secure_keys: int
    secure_bytes: int

    @property
    def over_budget(self) -> bool:
        return self.total > CONFIG_BUDGET


def config_size(inputs: StackInputs) -> ConfigSize:
    config = cli_config(inputs)
    encoded = go_json(config)
    total = len(ENV_NAME) + 1 + len(encoded.encode()) + 1
    by_key = {k: len(go_json({k: v}).encode()) - 1 for k, v in config.items()}
    secure = [k for k, v in inputs.values.items() if v.secure]
    return ConfigSize(total, by_key, len(secure), sum(by_key[k] for k in secure))


def size_issues(inputs: StackInputs) -> list[tuple[str, str, str]]:
    """(path, file, message) when the config is over configplane's budget."""
    size = config_size(inputs)
    if not size.over_budget:
        return []
    kib = size.total / 1024
    advice = []
    catalog_keys = [k for k in (DEFAULTS_KEY, SERVICES_KEY) if size.by_key.get(k, 0) > 1024]
    for key in catalog_keys:
        advice.append(f"`{key}` takes {size.by_key[key] / 1024:.1f} KiB: move service "
                      "definitions to services/<name>/service.yaml and <stack>.yaml "
                      "(`configplane migrate --write`)")
    if size.secure_bytes > 1024:
        advice.append(f"{size.secure_keys} `secure` values take {size.secure_bytes / 1024:.1f} "
                      "KiB: a secure value per secret does not scale with the fleet; use "
                      "`source: generated` (values nobody needs to know) or `source: reference` "
                      "(a value already in Vault or Secrets Manager) and remove the config keys")
    others = sorted(((n, k) for k, n in size.by_key.items()
                     if k not in catalog_keys and not inputs.values.get(k, _PLAIN).secure),
                    reverse=True)[:3]
    if others:
        advice.append("largest other keys: " + ", ".join(f"`{k}` {n / 1024:.1f} KiB"
                                                         for n, k in others))
    return [("config", inputs.stack_file,
             f"the stack config the Pulumi CLI passes to the program and to the policy pack "
             f"({ENV_NAME}, one environment variable) would be {kib:.1f} KiB; Linux refuses "
             f"more than {MAX_ARG_STRLEN // 1024} KiB (E2BIG) and configplane stops at "
             f"{CONFIG_BUDGET // 1024} KiB. Fix: " + "; ".join(advice) + ".")]


class _Plain:
    secure = False


_PLAIN = _Plain()
