"""The one plaintext-secret detector: is the value of this configuration key a credential?

Used by the policy pack and by `configplane scan` (which loads this very file). The pack runs
with only its pinned requirements, so this module imports nothing but detect-secrets,
google-re2 and the standard library. Everything is compiled once, at import.

A key/value pair is a secret when one of these holds, tried in this order:

1. vendor formats: detect-secrets' format plugins, called on the config-file line
   `key: "value"`, or gitleaks' vendor-token rules (gitleaks_rules.toml, compiled with re2)
   find a token (AWS, GitHub, Slack, Stripe, private keys, JWTs, ...);
2. structure: a password in a URL (`postgres://user:password@host/db`), an `Authorization`
   style value (`Bearer ...`), or a secret-named pair inside the value (JSON, query strings,
   DSNs: `"access_token": "..."`, `&client_secret=...`, `Password=...;`);
3. the key: a secret-named key (password, token, api key, ...) holds a literal. detect-secrets'
   keyword plugin is run on the config line too, but vetoed for keys that name a secret rather
   than hold one (`secretName`, `existingSecret`, `password_file`); its entropy plugins are
   applied with their limits.

Rules 2 and 3 only accept literals: references and placeholders (`${VAR}`,
`{{ .Values.x }}`, `<changeme>`, `REPLACE_ME`, `xxxx`), booleans, numbers, paths, URLs
without credentials, hashes, public keys and UI text are not secrets. The key sets the bar: a
password may be any short word, a token or key must look generated, and an ambiguous key
(`auth`, `sid`) needs a long random value. A neutral key (`id`, `value`, `checksum`) never
makes a value secret on its own: random-looking ids and digests are everyday configuration.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import re2
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.filters.heuristic import is_sequential_string
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
from detect_secrets.plugins.keyword import CONFIG_DENYLIST_REGEX_TO_GROUP, KeywordDetector

__all__ = ["Finding", "scan", "scan_many"]

GITLEAKS_RULES = Path(__file__).resolve().parent / "gitleaks_rules.toml"


@dataclass(frozen=True)
class Finding:
    secret: bool
    rules: list[str] = field(default_factory=list)  # ids of the rules that made it a secret


# --- detect-secrets plugins, instantiated once with their default settings -----------------

_ds_plugins = [
    cls()
    for cls in get_mapping_from_secret_type_to_class().values()
    if cls.__name__ != "IPPublicDetector"  # an IP address is not a credential
]
_DS_FORMAT = [p for p in _ds_plugins if isinstance(p, RegexBasedDetector)]
_DS_ENTROPY = [p for p in _ds_plugins if isinstance(p, HighEntropyStringsPlugin)]
_DS_KEYWORD = next(p for p in _ds_plugins if isinstance(p, KeywordDetector))
# Every word of detect-secrets' keyword denylist contains one of these: a cheap gate.
_DS_KEYWORD_GATE = ("key", "pass", "pwd", "secret", "contrase")


def _ds_line(key: str, value: str) -> str:
    # The pair as a line of a YAML file, the file type whose rules the plugins apply here;
    # the quotes let the entropy plugins see the value as one string.
    return f'{key}: "{value}"'


def _ds_prefilter() -> tuple[re2.Set, list[int], set[int]]:
    """One re2 pass telling which format plugins can match a line, so only those run.

    A plugin's pattern without its look-arounds (which RE2 lacks) matches a superset of what
    the plugin matches: a sound pre-filter for ASCII text (RE2's \\w and \\d are ASCII-only,
    so other text runs every plugin). Plugins whose patterns RE2 still cannot take always run.
    """
    lookaround = re.compile(r"\(\?<?[=!][^()]*\)")
    big_repeat = re.compile(r"\{(\d+),\d{4,}\}")  # RE2 caps repeat counts at 1000
    inline = {re.IGNORECASE: "i", re.DOTALL: "s", re.MULTILINE: "m"}
    prefilter, owners, always = re2.Set.SearchSet(), [], set()
    for index, plugin in enumerate(_DS_FORMAT):
        patterns = []
        for rx in plugin.denylist:
            pattern = big_repeat.sub(r"{\1,}", lookaround.sub("", rx.pattern))
            flags = "".join(c for f, c in inline.items() if rx.flags & f)
            if rx.flags & re.VERBOSE and re.search(r"\s|#", pattern):
                patterns = None
                break
            patterns.append(f"(?{flags}){pattern}" if flags else pattern)
        try:
            if patterns is None:
                raise re2.error("verbose pattern")
            for pattern in patterns:
                re2.compile(pattern)
        except re2.error:
            always.add(index)
            continue
        for pattern in patterns:
            prefilter.Add(pattern)
            owners.append(index)
    prefilter.Compile()
    return prefilter, owners, always


_DS_PREFILTER, _DS_OWNERS, _DS_ALWAYS = _ds_prefilter()


def _ds_format(line: str) -> list[str]:
    if line.isascii():
        candidates = {_DS_OWNERS[i] for i in _DS_PREFILTER.Match(line) or ()} | _DS_ALWAYS
    else:
        candidates = set(range(len(_DS_FORMAT)))
    return [
        f"detect-secrets:{type(_DS_FORMAT[i]).__name__}"
        for i in sorted(candidates)
        if any(not _is_stand_in(s) for s in _DS_FORMAT[i].analyze_string(line))
    ]


def _ds_entropy(line: str) -> list[str]:
    # What the entropy plugins report for a file line: quoted strings above their limit.
    return [
        f"detect-secrets:{type(p).__name__}"
        for p in _DS_ENTROPY
        if any(p.calculate_shannon_entropy(s) > p.entropy_limit for s in p.analyze_string(line))
    ]


def _ds_keyword(key: str, line: str) -> bool:
    lower = key.lower()
    return any(k in lower for k in _DS_KEYWORD_GATE) and any(
        True for _ in _DS_KEYWORD.analyze_string(line, CONFIG_DENYLIST_REGEX_TO_GROUP)
    )


# --- gitleaks vendor rules -----------------------------------------------------------------


@dataclass(frozen=True)
class _GitleaksRule:
    id: str
    regex: re2._Regexp
    entropy: float
    keywords: tuple[str, ...]
    allow: tuple[re2._Regexp, ...]


def _load_gitleaks() -> tuple[list[_GitleaksRule], re2.Set, tuple[re2._Regexp, ...], frozenset]:
    with GITLEAKS_RULES.open("rb") as f:
        data = tomllib.load(f)
    rules, rule_set = [], re2.Set.SearchSet()
    for raw in data["rules"]:
        allow = [a for al in raw.get("allowlists", []) for a in al.get("regexes", [])]
        rules.append(
            _GitleaksRule(
                id=raw["id"],
                regex=re2.compile(raw["regex"]),
                entropy=float(raw.get("entropy", 0.0)),
                keywords=tuple(k.lower() for k in raw.get("keywords", [])),
                allow=tuple(re2.compile(a) for a in allow),
            )
        )
        rule_set.Add(raw["regex"])
    rule_set.Compile()
    allowlist = data["allowlist"]
    return (
        rules,
        rule_set,
        tuple(re2.compile(r) for r in allowlist["regexes"]),
        frozenset(allowlist.get("stopwords", [])),
    )


_GL_RULES, _GL_SET, _GL_ALLOW, _GL_STOPWORDS = _load_gitleaks()


def _shannon(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in (s.count(ch) for ch in set(s))) if n else 0.0


def _gitleaks(value: str) -> list[str]:
    """gitleaks' semantics: keywords gate a rule; the secret (first non-empty group) must beat
    the rule's entropy and escape its allowlists and the global one."""
    out = []
    lower = value.lower()
    for i in sorted(_GL_SET.Match(value) or ()):
        rule = _GL_RULES[i]
        if rule.keywords and not any(k in lower for k in rule.keywords):
            continue
        for m in rule.regex.finditer(value):
            secret = next((g for g in m.groups() if g), None) or m.group(0)
            if (
                (rule.entropy and _shannon(secret) <= rule.entropy)
                or secret in _GL_STOPWORDS
                or any(a.search(secret) for a in rule.allow + _GL_ALLOW)
                or _is_stand_in(secret)
            ):
                continue
            out.append(f"gitleaks:{rule.id}")
            break
    return out


# --- what a value is -----------------------------------------------------------------------

_I = re.IGNORECASE
_BOOL_NULL = frozenset("true false yes no on off y n null nil none ~ undefined enabled disabled".split())
_NUMBER = re.compile(r"[-+]?\d+(?:[.,_]\d+)*(?:[eE][-+]?\d+)?")
_TEMPLATE = re.compile(r"\$\{|\{\{|\$\(|#\{|%\{|<%|\{%|\$\[\[")
_REFERENCE = re.compile(
    r"\$[A-Za-z_][\w.]*|%[A-Za-z_]\w*%|@[A-Za-z_]\w*@|<[^<>]+>|\[[A-Za-z_ -]+\]|\{[\w.-]*\}"
    r"|!(?:Ref|Sub|GetAtt|ImportValue)\b.*"
    r"|(?:vault|ref\+\w+|sm|ssm|secretsmanager|awssm|gcpsm|azkv|op|env|file):.+"
    r"|arn:aws[\w-]*:(?:secretsmanager|ssm|kms):.+",
    _I,
)
_ENV_DEFAULT = re.compile(r"\$\{[A-Za-z_][\w.]*(:?[-=])(.*)\}")
_PLACEHOLDER = re.compile(
    r"(?:change[_-]?(?:me|it|this)|replace[_-]?(?:me|this)|to[_-]?do|tbd|fixme|placeholder"
    r"|redacted|masked|hidden|dummy|secret|password|passw0rd|token|api[_-]?key"
    r"|(?:your|my|insert|put|enter|some)[_-].*|.*[_-]here|x{3,}.*|\*{3,}.*|\.{3,}.*|n/?a)",
    _I,
)
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")  # SOME_SECRET: a name, not a value
_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S*", _I)
_PATH = re.compile(r"(?:~?/|\.{1,2}/|[A-Za-z]:[\\/])[^\s:]*")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_CRYPT_HASH = re.compile(r"\$[\w-]{1,12}\$\S+|\{(?:SSHA|SHA|SMD5|MD5|CRYPT|BCRYPT)\w*\}\S+", _I)
_DIGEST = re.compile(r"(?:sha(?:1|224|256|384|512)|md5)[:=-][0-9a-f]{32,128}", _I)
_PUBLIC_KEY = re.compile(
    r"(?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-\w+|sk-ssh-\S+) \S+"
    r"|-----BEGIN (?:PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE|X509 CRL|PGP PUBLIC KEY BLOCK)-----",
    _I,
)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", _I)
_WORDY = re.compile(r"[a-z]+(?:[-_. ][a-z]+)+")  # this_is_a_secret, my-api-token
_SENTENCE_END = re.compile(r"[.?!:]\s*$")


def _is_stand_in(token: str) -> bool:
    """A token that is a sample or a stand-in: AKIA...EXAMPLE, xxxx, 0123456, <pass>, ${X}."""
    return bool(
        "example" in token.lower()
        or (len(token) >= 3 and len(set(token)) == 1)
        or (len(token) >= 6 and is_sequential_string(token))
        or _TEMPLATE.search(token)
        or _REFERENCE.fullmatch(token)
        or _PLACEHOLDER.fullmatch(token)
    )


def _env_default(value: str) -> str:
    """`${VAR:-default}` stands for its default, the only literal in it."""
    m = _ENV_DEFAULT.fullmatch(value)
    return _env_default(m.group(2).strip()) if m else value


def _literal(value: str) -> str | None:
    """The literal a value holds, or None for references, placeholders and non-secrets."""
    v = value.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        v = v[1:-1].strip()
    v = _env_default(v)
    if (
        not v
        or v.lower() in _BOOL_NULL
        or "example" in v.lower()
        or len(set(v)) == 1
        or (v[0] in "{[" and v[-1] in "}]")  # structured: its pairs are scanned instead
        or _NUMBER.fullmatch(v)
        or _TEMPLATE.search(v)
        or _REFERENCE.fullmatch(v)
        or _PLACEHOLDER.fullmatch(v)
        or _ENV_NAME.fullmatch(v)
        or _URL.fullmatch(v)
        or _PATH.fullmatch(v)
        or _EMAIL.fullmatch(v)
        or _CRYPT_HASH.fullmatch(v)
        or _DIGEST.fullmatch(v)
        or _PUBLIC_KEY.match(v)
    ):
        return None
    return v


def _is_prose(v: str) -> bool:
    words = v.split()
    return (
        len(words) >= 6
        or (len(words) >= 3 and bool(_SENTENCE_END.search(v)))
        # several words in a non-Latin script: UI text, not a password
        or (len(words) >= 2 and any(c.isalpha() and ord(c) > 0x24F for c in v))
    )


def _looks_generated(v: str) -> bool:
    """Machine-made: long enough, one piece, not a few lowercase words joined together."""
    return len(v) >= 8 and not any(c.isspace() for c in v) and not _WORDY.fullmatch(v)


def _char_classes(v: str) -> int:
    return (
        any(c.islower() for c in v)
        + any(c.isupper() for c in v)
        + any(c.isdigit() for c in v)
        + any(not c.isalnum() and c not in "-_." for c in v)
    )


# --- what a key says -----------------------------------------------------------------------

PASSWORD, CREDENTIAL, WEAK, VETO = "password", "credential", "weak", "veto"

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_PASSWORD_WORDS = frozenset(
    "password passwords passwd passphrase pwd pass pw pword contrasena contrasenya senha".split()
)
# credential word -> rule name
_CREDENTIAL_WORDS = {
    "secret": "secret", "secrets": "secret", "secretkey": "secret",
    "token": "token", "tokens": "token", "bearer": "token",
    "credential": "credential", "credentials": "credential", "creds": "credential",
    "apikey": "api-key", "apikeys": "api-key", "privatekey": "private-key",
    "accesskey": "access-key", "passkey": "access-key",
    "hmac": "hmac", "signature": "signature", "sig": "signature", "salt": "salt", "dsn": "dsn",
}  # fmt: skip
_WEAK_WORDS = frozenset(("auth", "sid"))
# `<qualifier>_key` is a credential unless the qualifier makes it a lookup, an id or public.
_NON_SECRET_KEY_QUALIFIERS = frozenset(
    "hash range sort partition primary foreign public pub project issue cache idempotency "
    "routing lookup map object bucket group row column field index idx sequence natural "
    "schema translation i18n message label hot shortcut keyboard unique dedup dedupe "
    "composite surrogate s3 kms cmk".split()
)
# Last words of keys that name a secret rather than hold it, or hold something else.
_NON_SECRET_TAIL = frozenset(
    "name names file files path paths dir url uri urls endpoint endpoints host hosts port id "
    "ids arn arns type kind mode scheme policy policies length len size count min max limit "
    "limits ratelimit enabled enable disabled required optional expiry expires expiration "
    "ttl timeout interval at time date version ref refs reference selector header headers "
    "field fields param params parameter prefix suffix format algorithm alg method spec "
    "provider store backend manager location rotation lifetime regex pattern template user "
    "username users login email usage filter filters mount engine role roles label labels "
    "attribute attributes property annotation annotations source sources target strategy "
    "validation validator hint rule rules env namespace".split()
)
# Keys of UI strings and docs: "LABEL_NEW_PASSWORD: New password".
_TEXT_WORDS = frozenset(
    "label title message msg messages text tooltip description desc hint placeholder error "
    "errors prompt help caption heading forgot invalid mandatory show hide advice category "
    "unauthorized warning notice info tip button btn link successfully matching comment "
    "comments example examples doc docs".split()
)
_HASH_WORDS = frozenset(
    "hash hashed sha sha1 sha2 sha256 sha512 md5 bcrypt digest checksum fingerprint "
    "encrypted encoded".split()
)


@lru_cache(maxsize=65536)
def _key_class(key: str) -> tuple[str | None, str]:
    """(class, rule name): PASSWORD, CREDENTIAL, WEAK, VETO (never a secret) or None."""
    words = [w.lower() for w in _WORD.findall(key)]
    if not words:
        return None, ""
    if _TEXT_WORDS.intersection(words) or _HASH_WORDS.intersection(words):
        return VETO, ""
    if "existing" in words or {"from", "value"} <= set(words):  # existingSecret, valueFrom
        return VETO, ""
    if words[-1] in _NON_SECRET_TAIL and words[-2:] != ["secret", "id"]:  # Vault's secret_id
        return VETO, ""
    found: tuple[str | None, str] = (None, "")
    for i, w in enumerate(words):
        if w in _PASSWORD_WORDS or "password" in w or "passwd" in w:
            return PASSWORD, "password"
        if w in _CREDENTIAL_WORDS or w.endswith(("secret", "token")):
            found = CREDENTIAL, _CREDENTIAL_WORDS.get(w, "secret" if w.endswith("secret") else "token")
        elif w == "key" and i and words[i - 1] not in _NON_SECRET_KEY_QUALIFIERS:
            if found[0] != CREDENTIAL:
                qualifier = words[i - 1]
                found = CREDENTIAL, f"{qualifier}-key" if qualifier in ("api", "access", "private") else "key"
        elif w in _WEAK_WORDS and found[0] is None:
            found = WEAK, w
    return found


def _accepts(cls: str, value: str, entropy_hit: bool) -> bool:
    """Does a key of class `cls` make this value a secret?"""
    v = _literal(value)
    if v is None:
        return False
    if cls == PASSWORD:
        return len(v) >= 4 and not _is_prose(v)
    if cls == CREDENTIAL:
        return entropy_hit or _looks_generated(v)
    # WEAK: only long, clearly random values
    return len(v) >= 16 and not _UUID.fullmatch(v) and (
        entropy_hit or (_looks_generated(v) and _char_classes(v) >= 2)
    )


# --- structure inside a value --------------------------------------------------------------

_URL_USERINFO = re.compile(r"[a-z][a-z0-9+.-]*://([^\s:/?#@]*):([^\s/?#@]+)@", _I)
_AUTH_HEADER = re.compile(r"(?:authorization:\s*)?(?:bearer|basic|token)\s+(\S{8,})", _I)
# name=value, "name": "value", name: value inside a value (JSON, query string, DSN, cookie).
_PAIR = re.compile(
    r"""(?:^|[\s"'{,;&?(])["']?([A-Za-z][\w.-]{0,60})["']?\s*(?::(?!//)|=)\s*\[?\s*"""
    r"""(?:"([^"]*)"|'([^']*)'|([^\s"',;&}\]]+))"""
)


def _url_credentials(value: str) -> bool:
    # Any password counts, however short (postgres://u:p@h/db), unless it is a stand-in.
    return "://" in value and any(
        not _is_stand_in(m.group(2)) for m in _URL_USERINFO.finditer(value)
    )


def _embedded(value: str) -> str | None:
    """The rule name of the first secret-named pair inside the value that holds a secret."""
    if "=" not in value and ":" not in value:
        return None
    for m in _PAIR.finditer(value):
        cls, name = _key_class(m.group(1))
        if cls not in (None, VETO):
            inner = next(g for g in m.groups()[1:] if g is not None)
            if _accepts(cls, inner, entropy_hit=False):
                return name
    return None


# --- the detector --------------------------------------------------------------------------


def scan(key: str, value: str) -> Finding:
    """Is `value`, the value of configuration key `key`, a plaintext secret?"""
    value = _env_default(value.strip())
    if not value:
        return Finding(False)
    line = _ds_line(key, value)

    rules = _ds_format(line) + _gitleaks(value)
    if rules:
        return Finding(True, rules)
    if _url_credentials(value):
        return Finding(True, ["url-credentials"])
    m = _AUTH_HEADER.match(value)
    if m and _literal(m.group(1)):
        return Finding(True, ["auth-header"])
    name = _embedded(value)
    if name:
        return Finding(True, [f"embedded-keyword-{name}"])

    cls, name = _key_class(key)
    if cls == VETO:
        return Finding(False)
    ds_keyword = _ds_keyword(key, _ds_line(key, value[:1000]))  # only the key matters here
    if cls is None:
        if not ds_keyword:
            return Finding(False)
        cls, name = CREDENTIAL, "key"
    entropy = _ds_entropy(line)
    if not _accepts(cls, value, entropy_hit=bool(entropy)):
        return Finding(False)
    return Finding(True, [f"keyword-{name}"] + ["detect-secrets:KeywordDetector"] * ds_keyword + entropy)


def scan_many(pairs: Iterable[tuple[str, str]]) -> list[Finding]:
    """scan() over many (key, value) pairs, in order; identical pairs are scanned once."""
    seen: dict[tuple[str, str], Finding] = {}
    return [seen[p] if p in seen else seen.setdefault(p, scan(*p)) for p in pairs]
