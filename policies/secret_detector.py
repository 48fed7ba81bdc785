"""The one plaintext-secret detector: is the value of this configuration key a credential?

Used by the policy pack, `configplane validate`, `configplane import` and `configplane scan`
(which load this very file). The pack runs with only its pinned requirements, so this module
imports nothing but detect-secrets, google-re2 and the standard library. Everything is
compiled once, at import. docs/detector.md explains the decisions and their measured effect.
Why one file of ~700 lines: the CLI loads this very file by path (outside the pack), and its
rules are one ordered decision over shared compiled tables; splitting it would spread that one
decision over files every loader must then find.

A key/value pair is a secret when one of these holds, tried in this order:

1. vendor formats: detect-secrets' format plugins, called on the config-file line
   `key: "value"`, or gitleaks' vendor-token rules (gitleaks_rules.toml, compiled with re2)
   find a token (AWS, GitHub, Slack, Stripe, private keys, JWTs, ...) that is not a stand-in;
2. structure: a password in a URL (`postgres://user:password@host/db`), an `Authorization`
   style value (`Bearer ...`), or a secret slot inside the value (JSON, query strings, DSNs:
   `"access_token": "..."`, `&client_secret=...`, `Password=...;`), judged by rule 3;
3. the key: `key_kind(key)` reads the key's words against the vocabularies in
   secret_key_vocabulary.json. In a secret slot (password, secret, token, api key, private
   key, credential, `<vendor>_key`, ...) any literal is a secret, however weak; an ambiguous
   key (`key`, `auth`, `sid`, `salt`) needs a random-looking value; a key that names an
   identifier, a reference, a setting, a public thing or UI text (`*_id`, `*_url`, `*_file`,
   `secretName`, `existingSecret`, `password_length`, `public_key`, `LABEL_PASSWORD`) never
   makes a value secret: rules 1 and 2 carry the whole burden there.

`value_kind(value)` says what a value is. Only a `literal` can be a secret by its key:
references and placeholders (`${VAR}`, `{{ .Values.x }}`, `<changeme>`, `vault:...`,
`arn:aws:secretsmanager:...`, `YOUR_API_KEY`, `xxxx`), empty values, booleans, paths, URLs
without credentials, e-mail addresses, hashes and digests, UUIDs, public keys, structured
values (scanned pair by pair instead), prose and non-Latin text are not.

The few numbers that are a matter of degree (how short a password may be, how random an
ambiguous key's value must look) are `Thresholds`; benchmarks/detector.py chooses them by
leave-one-repository-out cross-validation, and `DEFAULT_THRESHOLDS` is its choice on the
whole tuning set.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import re2
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.filters.heuristic import is_sequential_string
from detect_secrets.plugins.base import BasePlugin, RegexBasedDetector

__all__ = [
    "DEFAULT_THRESHOLDS", "KEY_KINDS", "SECRET_SLOTS", "VALUE_KINDS", "Explanation", "Finding",
    "KeyKind", "Thresholds", "explain", "find", "key_kind", "scan", "scan_many", "value_kind",
]

HERE = Path(__file__).resolve().parent
GITLEAKS_RULES = HERE / "gitleaks_rules.toml"
VOCABULARY_FILE = HERE / "secret_key_vocabulary.json"


@dataclass(frozen=True)
class Finding:
    secret: bool
    rules: list[str] = field(default_factory=list)  # ids of the rules that made it a secret


@dataclass(frozen=True)
class Thresholds:
    """The matters of degree, chosen by cross-validation (benchmarks/detector.py)."""

    password_min_len: int = 4  # shortest literal a password slot takes as a password
    secret_min_len: int = 8  # shortest literal a secret slot takes
    token_min_len: int = 8  # shortest generated-looking value a token slot takes
    random_min_len: int = 32  # shortest value an ambiguous key (`key`, `auth`) takes as random


DEFAULT_THRESHOLDS = Thresholds()


# --- detect-secrets plugins, instantiated once with their default settings -----------------

# The library annotates its classes with a type variable nothing binds (read as Never); the
# issubclass() test, true for every one, tells the type checker what they are.
_ds_plugin_classes: Iterable[type] = get_mapping_from_secret_type_to_class().values()
_ds_plugins = [
    cls()
    for cls in _ds_plugin_classes
    if issubclass(cls, BasePlugin) and cls.__name__ != "IPPublicDetector"  # an IP: no credential
]
_DS_FORMAT = [p for p in _ds_plugins if isinstance(p, RegexBasedDetector)]


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
        patterns: list[str] = []
        verbose = False
        for rx in plugin.denylist:
            pattern = big_repeat.sub(r"{\1,}", lookaround.sub("", rx.pattern))
            flags = "".join(c for f, c in inline.items() if rx.flags & f)
            if rx.flags & re.VERBOSE and re.search(r"\s|#", pattern):
                verbose = True
                break
            patterns.append(f"(?{flags}){pattern}" if flags else pattern)
        try:
            if verbose:
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


# Time: every rule runs in time linear in the value. RE2 patterns are linear by construction;
# the Python patterns here are anchored (`fullmatch`, `match`) or bounded, and detect-secrets'
# plugins (Python `re`, some of them quadratic on long runs) see a long line in overlapping
# windows of bounded size, so no vendor token shorter than the overlap is cut in two.
DS_WINDOW = 2048
DS_OVERLAP = 512


def _windows(line: str) -> list[str]:
    if len(line) <= DS_WINDOW:
        return [line]
    step = DS_WINDOW - DS_OVERLAP
    return [line[i:i + DS_WINDOW] for i in range(0, len(line) - DS_OVERLAP, step)]


def _ds_format(line: str) -> list[str]:
    return list(dict.fromkeys(rule for rule, _ in _ds_found(line)))


def _ds_found(line: str, whole: bool = False) -> Iterable[tuple[str, str]]:
    """(rule, secret) for every token a format plugin finds (stand-ins left out). The plugin's
    secret may be a part of its match (GitHub's is the `ghp` prefix); `whole`: the match."""
    for window in _windows(line):
        if window.isascii():
            candidates = {_DS_OWNERS[i] for i in _DS_PREFILTER.Match(window) or ()} | _DS_ALWAYS
        else:
            candidates = set(range(len(_DS_FORMAT)))
        for i in sorted(candidates):
            plugin = _DS_FORMAT[i]
            rule = f"detect-secrets:{type(plugin).__name__}"
            if not whole:
                yield from ((rule, s) for s in plugin.analyze_string(window) if not _is_stand_in(s))
                continue
            for rx in plugin.denylist:
                for m in rx.finditer(window):
                    if not _is_stand_in(next((g for g in m.groups() if g), m.group(0))):
                        yield rule, m.group(0)


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


def _gitleaks(value: str) -> list[str]:
    return list(dict.fromkeys(rule for rule, _ in _gitleaks_found(value, first_only=True)))


def _gitleaks_found(value: str, first_only: bool = False) -> Iterable[tuple[str, str]]:
    """(rule, secret) with gitleaks' semantics: keywords gate a rule; the secret (first
    non-empty group) must beat the rule's entropy and escape its allowlists and the global
    one. `first_only`: one finding per rule is enough."""
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
            yield f"gitleaks:{rule.id}", secret
            if first_only:
                break


# --- what a value is -----------------------------------------------------------------------

VALUE_KINDS = (
    "empty", "boolean", "number", "date", "reference", "placeholder", "path", "url", "email", "hash",
    "hex", "uuid", "image", "public-key", "structured", "text", "literal",
)

_I = re.IGNORECASE
_BOOL_NULL = frozenset({"true", "false", "yes", "no", "on", "off", "y", "n", "null", "nil", "none",
                        "~", "undefined", "enabled", "disabled"})
_NUMBER = re.compile(r"[-+]?\d+(?:[.,_]\d+)*(?:[eE][-+]?\d+)?")
_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|\d{1,2}:\d{2}(?::\d{2})?|\d+(?:\.\d+)?(?:ms|s|m|h|d|w|y)"  # 2024-01-31, 12:30, 15m
)
_TEMPLATE = re.compile(
    r"\$\{|\{\{|\$\(|#\{|%\{|<%|\{%|\$\[\[|\(\([\w./-]+\)\)"  # ((var)): Concourse, CredHub
    r"|%\(\w+\)[sd]|^ENC\[|\$ANSIBLE_VAULT;|^!vault\b"  # Python %(name)s; sops, Ansible Vault
)
_REFERENCE = re.compile(
    r"\$[A-Za-z_][\w.]*|%[A-Za-z_]\w*%|%[sdq]|@{1,2}[A-Za-z_]\w*@{1,2}|__[A-Za-z]\w*__"
    r"|<[^<>]+>|\[[A-Za-z_ -]+\]"
    r"|\{[\w.-]*\}|!(?:Ref|Sub|GetAtt|ImportValue)\b.*"
    r"|![A-Za-z][\w-]*\s+\S+"  # a YAML tag: !secret db_password (Home Assistant), !env_var X
    r"|(?:vault|ref\+\w+|sm|ssm|secretsmanager|awssm|gcpsm|azkv|op|env|file|k8s|secret):.+"
    r"|arn:aws[\w-]*:[\w-]+:.+",
    _I,
)
_ENV_DEFAULT = re.compile(r"\$\{[A-Za-z_][\w.]*(:?[-=])(.*)\}")
# Instructions to the reader, not values. Weak real passwords (`changeme`, `changeit`,
# `password`, `secret`) are NOT here: in a secret slot they are secrets.
_PLACEHOLDER = re.compile(
    r"(?:replace[_-]?(?:me|this|with\b.*)|to[_-]?do|tbd|fixme|placeholder|redacted|masked"
    r"|(?:your|insert|put|enter)[_-].*|.*[_-]here|x{3,}.*|\*{3,}.*|\.{3,}.*|n/?a|-+)",
    _I,
)
# An expression that names a value: Terraform var.db_password, random_password.db.result,
# module.db.password; Helm values.db.password. Lowercase identifiers joined by dots.
_DOTTED_REF = re.compile(r"([a-z_][a-z0-9_]*)(?:\.[a-z_][a-z0-9_-]*|\[[^\]]*\])+")
_EXPRESSION_ROOTS = frozenset({"var", "local", "module", "data", "each", "self", "path", "terraform",
                               "values", "env", "secrets", "vars", "inputs"})
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")  # SOME_SECRET: a name, not a value
_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S*", _I)
_ABS_PATH = re.compile(r"(?:~?/|\.{1,2}/|[A-Za-z]:[\\/])[^\s:]*")
# A relative path: lowercase segments and a file extension (base64 has '/' but not this).
_REL_PATH = re.compile(
    r"[\w.-]+(?:/[\w.-]+)*/[\w-]+\.[a-z0-9]{1,5}"  # dir/file.ext
    r"|[a-z0-9_.-]+(?:/[a-z0-9_.-]+)+"  # lowercase segments: S3 keys, Vault paths, images
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_CRYPT_HASH = re.compile(
    r"\$[\w-]{1,12}\$\S+|\{(?:SSHA|SHA|SMD5|MD5|CRYPT|BCRYPT)\w*\}\S+"  # crypt(3), LDAP
    r"|[A-Za-z0-9_-]{2,20}(?:\$[^$\s]+){3,}",  # Django/passlib: pbkdf2_sha256$260000$salt$hash
    _I,
)
_DIGEST = re.compile(r"(?:sha(?:1|224|256|384|512)|md5)[:=-][0-9a-f]{32,128}")
# A container image: lowercase registry/path, optional tag, optional digest.
_IMAGE = re.compile(
    r"[a-z0-9][a-z0-9.-]*(?::\d+)?(?:/[a-z0-9][a-z0-9._-]*)+(?::[\w][\w.-]{0,127})?"
    r"(?:@sha256:[0-9a-f]{64})?|[a-z0-9][a-z0-9._/-]*@sha256:[0-9a-f]{64}"
)
_HEX = re.compile(r"[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{128}")  # digest lengths
_PUBLIC_KEY = re.compile(
    r"(?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-\w+|sk-ssh-\S+) \S+"
    r"|-----BEGIN (?:PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE|X509 CRL|PGP PUBLIC KEY BLOCK)-----",
    _I,
)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", _I)
_WORDY = re.compile(r"[a-z]+(?:[-_. ][a-z]+)+")  # this_is_a_secret, my-api-token


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


def _unquote(value: str) -> str:
    v = value.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        v = v[1:-1].strip()
    return _env_default(v)


def _is_text(v: str) -> bool:
    """Prose or words in a non-Latin script: UI text and documentation, not a credential."""
    words = v.split()
    if len(words) >= 6 or (len(words) >= 3 and v.rstrip()[-1:] in (".", "?", "!", ":")):
        return True
    letters = [c for c in v if c.isalpha()]
    if not letters:
        return False
    if sum(ord(c) > 0x24F for c in letters) * 2 > len(letters):
        return True  # mostly a non-Latin script
    bare = [w.rstrip(".,;:!?") for w in words]
    if all(w.isalpha() for w in bare):
        # Sentence case ("New password", "Mot de passe") or accented Latin letters
        # ("Contraseña"): UI strings. Generated and chosen secrets rarely look like either.
        if len(bare) >= 2 and bare[0][:1].isupper() and bare[0][1:].islower():
            return True
        if any(ord(c) > 0x7F for c in letters):
            return True
    return False


def value_kind(value: str) -> str:
    """What a configuration value is: one of VALUE_KINDS. Only `literal`, `hex` and `uuid`
    can be a secret by its key alone (and `number` a password). One ordered decision, in two
    halves: the first kind that fits wins."""
    v = _unquote(value)
    lower = v.lower()
    return _kind_by_value(v, lower) or _kind_by_shape(v, lower)


def _kind_by_value(v: str, lower: str) -> str | None:
    """Values that say what they are: empty, boolean, number, date, reference, placeholder."""
    if not v or not any(c.isalnum() for c in v):
        return "empty"  # also YAML block indicators (`|`, `>-`) and bare punctuation
    if lower in _BOOL_NULL:
        return "boolean"
    if _NUMBER.fullmatch(v):
        return "number"
    if _DATE.fullmatch(v):
        return "date"
    if _TEMPLATE.search(v) or _REFERENCE.fullmatch(v) or _ENV_NAME.fullmatch(v):
        return "reference"
    m = _DOTTED_REF.fullmatch(v)
    if m and ("_" in v or v.count(".") >= 2 or m.group(1) in _EXPRESSION_ROOTS):
        return "reference"
    if "example" in lower or len(set(v)) == 1 or _PLACEHOLDER.fullmatch(v):
        return "placeholder"
    return None


def _kind_by_shape(v: str, lower: str) -> str:
    """A string by its shape: structured, URL, path, email, hash, hex, UUID, image, public key,
    words; else a literal."""
    if v[0] in "{[" and v[-1] in "}]":
        return "structured"
    if _URL.fullmatch(v):
        return "url"  # a URL with a password in it is caught before keys are consulted
    if _ABS_PATH.fullmatch(v) or _REL_PATH.fullmatch(v):
        return "path"
    if _EMAIL.fullmatch(v):
        return "email"
    if _CRYPT_HASH.fullmatch(v) or _DIGEST.fullmatch(lower):
        return "hash"
    if _HEX.fullmatch(lower):
        return "hex"  # a digest in a neutral slot, a token in a token slot
    if _UUID.fullmatch(v):
        return "uuid"
    if _IMAGE.fullmatch(v):
        return "image"
    if _PUBLIC_KEY.match(v):
        return "public-key"
    if _is_text(v):
        return "text"
    return "literal"


def _shannon(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


def _looks_random(v: str, min_len: int) -> bool:
    """Machine-made: long, one piece, letters and digits mixed, not a few words joined."""
    return (
        len(v) >= min_len
        and not any(c.isspace() for c in v)
        and not _WORDY.fullmatch(v)
        and any(c.isdigit() for c in v)
        and any(c.isalpha() for c in v)
        and _shannon(v) >= 3.0
    )


# --- what a key says -----------------------------------------------------------------------


def _load_vocabulary() -> dict[str, dict[str, str]]:
    with VOCABULARY_FILE.open(encoding="utf-8") as f:
        data = json.load(f)
    return {name: words for name, words in data.items() if isinstance(words, dict)}


VOCABULARY = _load_vocabulary()
_V = {name: frozenset(words) for name, words in VOCABULARY.items()}
_PAIRS = {p: name for name in ("secret", "token") for p in VOCABULARY[f"{name}_pairs"]}
_SUFFIXES = tuple(sorted(VOCABULARY["suffix_words"], key=len, reverse=True))

# The kinds of key, and which of them are secret slots.
SECRET_SLOTS = ("password", "secret", "token")
KEY_KINDS = (*SECRET_SLOTS, "ambiguous", "identifier", "public", "setting", "text", "neutral")


@dataclass(frozen=True)
class KeyKind:
    kind: str  # one of KEY_KINDS
    word: str = ""  # the vocabulary entry that decided it (never more of the key than that)
    why: str = ""  # the vocabulary's justification for that word

    @property
    def secret_slot(self) -> bool:
        return self.kind in SECRET_SLOTS


# Words: camelCase humps, runs of capitals, with their trailing digits (sha256, s3, PASSWORD2).
_WORD = re.compile(r"[A-Z]+\d*(?![a-z])|[A-Z]?[a-z]+\d*|\d+")
_NEUTRAL = KeyKind("neutral")
_ALL_WORDS = frozenset(w for name, words in VOCABULARY.items() if name != "secret_pairs"
                       for w in words)


def _words(key: str) -> list[str]:
    """Lowercase words; trailing digits stay only where the vocabulary has them (md5, s3)."""
    out = []
    for w in _WORD.findall(key):
        w = w.lower()
        out.append(w if w in _ALL_WORDS or w.isdigit() else w.rstrip("0123456789"))
    return out


def _secret_word(w: str) -> tuple[str, str] | None:
    """(list, vocabulary word) when `w` names a password or a secret."""
    for name in SECRET_SLOTS:
        if w in _V[name]:
            return name, w
    for suffix in _SUFFIXES:
        if w.endswith(suffix) and len(w) > len(suffix):
            return next(name for name in SECRET_SLOTS if suffix in _V[name]), suffix
    return None


def _slot(words: list[str]) -> KeyKind:
    """The strongest slot the words name (password > secret > token > ambiguous), a lookup
    key (`range_key`: identifier, `public_key`: public), or neutral."""
    v = VOCABULARY
    found = _NEUTRAL
    rank = {"neutral": 0, "ambiguous": 1, "token": 2, "secret": 3, "password": 4}
    for i, w in enumerate(words):
        hit = _secret_word(w)
        if hit:
            name, word = hit
            kind = KeyKind(name, word, v["suffix_words" if word != w else name][word])
        elif i and f"{words[i - 1]} {w}" in _PAIRS:
            pair = f"{words[i - 1]} {w}"
            name = _PAIRS[pair]
            kind = KeyKind(name, pair, v[f"{name}_pairs"][pair])
            if found.word == words[i - 1]:  # the pair says more than its first word alone
                found = kind
                continue
        elif w == "key" and i:
            q = words[i - 1]
            if q in _V["key_qualifiers_lookup"]:
                if found.kind == "neutral":
                    return KeyKind("public" if q in _V["public"] else "identifier", f"{q} {w}",
                                   v["key_qualifiers_lookup"][q])
                continue
            kind = KeyKind("token", "<qualifier> key", "`<something> key` names key material "
                           "issued for something (gitleaks generic-api-key keyword)")
        elif w in _V["ambiguous"]:
            kind = KeyKind("ambiguous", w, v["ambiguous"][w])
        else:
            continue
        if rank[kind.kind] > rank[found.kind]:
            found = kind
    return found


@lru_cache(maxsize=65536)
def key_kind(key: str) -> KeyKind:
    """What the key `key` names, from its words and the vocabularies (see KEY_KINDS).

    A key that names no slot is neutral (or public: `ssl_cert`). A key that names one is
    vetoed by a UI-text word anywhere (`LABEL_PASSWORD`), then by a word that makes it a
    setting about the secret (`existingSecret`, `password_enabled`, `password_sha256`), then
    by a last word that makes it an identifier or property of the secret (`secretName`,
    `token_url`, `password_file`) or a public thing (`tls_cert`); else it is that slot."""
    words = _words(key)
    found = _slot(words)
    v = VOCABULARY
    last = words[-1] if words else ""
    if found.kind in ("neutral", "identifier", "public"):
        if found.kind == "neutral" and last in _V["public"]:
            return KeyKind("public", last, v["public"][last])
        return found
    for w in words:
        if w in _V["text"]:
            return KeyKind("text", w, v["text"][w])
    for w in words:
        if w in _V["not_the_secret"]:
            return KeyKind("setting", w, v["not_the_secret"][w])
    if len(words) > 1 and " ".join(words[-2:]) not in _PAIRS:
        if last in _V["identifier_tails"]:
            return KeyKind("identifier", last, v["identifier_tails"][last])
        if last in _V["public"]:
            return KeyKind("public", last, v["public"][last])
    return found


_SLOT_VALUES = {
    "password": ("literal", "number", "hex", "uuid"),
    "secret": ("literal", "hex", "uuid"),
    "token": ("literal", "hex", "uuid"),
    "ambiguous": ("literal",),  # a bare hex string under `key` or `signature` is a digest
}


def _accepts(kind: str, value: str, t: Thresholds) -> tuple[bool, str, str]:
    """(secret?, value kind, reason) for a value in a slot of this key kind."""
    vk = value_kind(value)
    if vk not in _SLOT_VALUES.get(kind, ()):
        return False, vk, f"the value is {'an' if vk[0] in 'aeiou' else 'a'} {vk}, not a literal"
    # Reasons state thresholds, never the value's own length or content.
    v = _unquote(value)
    n = len(v)
    if kind == "password":
        if n >= t.password_min_len:
            return True, vk, (f"a {vk} of at least {t.password_min_len} characters: any such "
                              "value is a password, however weak")
        return False, vk, f"a {vk} shorter than {t.password_min_len} characters"
    if kind == "secret":
        if n >= t.secret_min_len:
            return True, vk, (f"a {vk} of at least {t.secret_min_len} characters: any such "
                              "value is a secret, however weak")
        return False, vk, f"a {vk} shorter than {t.secret_min_len} characters"
    if kind == "token":
        if any(c.isspace() for c in v) or _WORDY.fullmatch(v):
            return False, vk, "words, not a generated token (a stand-in such as my-api-token)"
        if n >= t.token_min_len:
            return True, vk, f"a generated-looking {vk} of at least {t.token_min_len} characters"
        return False, vk, f"a {vk} shorter than {t.token_min_len} characters: not a generated token"
    if _looks_random(v, t.random_min_len):
        return True, vk, (f"random-looking: at least {t.random_min_len} characters, letters and "
                          "digits, one piece, high entropy")
    return False, vk, (f"not random-looking (needs at least {t.random_min_len} characters, "
                       "letters and digits, one piece, high entropy)")


# --- structure inside a value --------------------------------------------------------------

# Python's `\s` and `\w` for RE2 (whose own classes are ASCII-only), so verdicts do not move.
_RE2_S = r"\t\n\x0b\f\r\x1c-\x1f\x85\p{Z}"
_RE2_W = r"\p{L}\p{N}_"
# RE2: a scheme is tried at every letter, which Python's backtracking makes quadratic.
_URL_USERINFO = re2.compile(
    rf"(?i)[a-z][a-z0-9+.-]*://([^{_RE2_S}:/?#@]*):([^{_RE2_S}/?#@]+)@")
_AUTH_HEADER = re.compile(r"(?:authorization:\s*)?(?:bearer|basic|token)\s+(\S{8,})", _I)
# name=value, "name": "value", name: value inside a value (JSON, query string, DSN, cookie).
# Possessive whitespace: `\s*\[?\s*` backtracks quadratically over a run of blanks otherwise
# (giving blanks back never helps: nothing after them starts with a blank).
_PAIR = re.compile(
    r"""(?:^|[\s"'{,;&?(])["']?([A-Za-z][\w.-]{0,60})["']?\s*+(?::(?!//)|=)\s*+\[?\s*+"""
    r"""(?:"([^"]*)"|'([^']*)'|([^\s"',;&}\]]++))"""
)


def _url_credentials(value: str) -> bool:
    # Any password counts, however short (postgres://u:p@h/db), unless it is a stand-in.
    return "://" in value and any(
        not _is_stand_in(m.group(2)) for m in _URL_USERINFO.finditer(value)
    )


def _embedded(value: str, t: Thresholds) -> tuple[str, str, str] | None:
    """(key kind, vocabulary entry, reason) of the first secret slot inside the value that
    holds a secret, judged as if it were a key of its own."""
    if "=" not in value and ":" not in value:
        return None
    for m in _PAIR.finditer(value):
        kind = key_kind(m.group(1))
        if kind.secret_slot or kind.kind == "ambiguous":
            inner = next(g for g in m.groups()[1:] if g is not None)
            ok, _, reason = _accepts(kind.kind, inner, t)
            if ok:
                return kind.kind, kind.word, reason
    return None


# --- the detector --------------------------------------------------------------------------


@dataclass(frozen=True)
class Explanation:
    """Why scan() decided as it did: never holds the value or any part of it."""

    finding: Finding
    key_kind: KeyKind
    value_kind: str
    reasons: list[str]


@lru_cache(maxsize=16384)
def _shape_rules(key: str, value: str) -> tuple[str, ...]:
    """The rules that need no key semantics and no thresholds: vendor formats and shapes."""
    rules = _ds_format(_ds_line(key, value)) + _gitleaks(value)
    if rules:
        return tuple(rules)
    if _url_credentials(value):
        return ("url-credentials",)
    m = _AUTH_HEADER.match(value)
    if m and value_kind(m.group(1)) in ("literal", "hex", "uuid"):
        return ("auth-header",)
    return ()


KIND_PHRASES = {
    "password": "a password slot",
    "secret": "a secret slot",
    "token": "a token slot",
    "ambiguous": "an ambiguous key",
    "identifier": "names an identifier or a property of a secret",
    "public": "names a public thing",
    "setting": "names a setting about a secret",
    "text": "names UI text or documentation",
    "neutral": "says nothing about secrets",
}

_VENDOR_WHY = "the value matches this rule's token format"
_SHAPE_WHY = {
    "url-credentials": "a URL with a password in its user-info part",
    "auth-header": "an HTTP Authorization scheme followed by a literal token",
}


def clear_caches() -> None:
    """Forget memoised keys and values (benchmarks time a cold start with this)."""
    key_kind.cache_clear()
    _shape_rules.cache_clear()


def _judge(key: str, value: str, t: Thresholds, notes: list[str] | None) -> Finding:
    key, value = _clean(key), _clean(value)
    value = _env_default(value.strip())
    if not value:
        if notes is not None:
            notes.append("no rule fired: the value is empty")
        return Finding(False)
    rules = _shape_rules(key, value)
    if rules:
        if notes is not None:
            notes.extend(f"{r}: {_SHAPE_WHY.get(r, _VENDOR_WHY)}"
                         for r in rules)
        return Finding(True, list(rules))
    inner = _embedded(value, t)
    if inner:
        kind, word, reason = inner
        if notes is not None:
            notes.append(f"embedded-keyword-{kind}: a pair inside the value whose name is a "
                         f"{kind} slot (`{word}`) holds {reason}")
        return Finding(True, [f"embedded-keyword-{kind}"])

    kk = key_kind(key)
    if kk.kind not in (*SECRET_SLOTS, "ambiguous"):
        if notes is not None:
            detail = f" (`{kk.word}`: {kk.why})" if kk.word else ""
            notes.append(f"no rule fired: the key {KIND_PHRASES[kk.kind]}{detail}; only vendor "
                         "formats and structure count there, and none matched")
        return Finding(False)
    ok, _, reason = _accepts(kk.kind, value, t)
    if notes is not None:
        fired = f"keyword-{kk.kind}" if ok else "no rule fired"
        notes.append(f"{fired}: the key is {KIND_PHRASES[kk.kind]} (`{kk.word}`: "
                     f"{kk.why}); the value is {reason.removeprefix('the value is ')}")
    return Finding(True, [f"keyword-{kk.kind}"]) if ok else Finding(False)


def scan(key: str, value: str, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Finding:
    """Is `value`, the value of configuration key `key`, a plaintext secret?"""
    return _judge(key, value, thresholds, None)


def scan_many(pairs: Iterable[tuple[str, str]],
              thresholds: Thresholds = DEFAULT_THRESHOLDS) -> list[Finding]:
    """scan() over many (key, value) pairs, in order; identical pairs are scanned once."""
    seen: dict[tuple[str, str], Finding] = {}
    out = []
    for p in pairs:
        found = seen.get(p)
        if found is None:
            found = seen[p] = _judge(p[0], p[1], thresholds, None)
        out.append(found)
    return out


_FREE_AUTH = re2.compile(rf"(?i)\b(?:bearer|basic|token)[{_RE2_S}]+([^{_RE2_S}]{{8,}})")


def find(text: str, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> list[str]:
    """The secrets inside free text: a log line, a diagnostic, a policy message, a file's
    line, a name. What `scan` judges a whole value by, applied to the parts of a text: vendor
    tokens, URL passwords, Authorization tokens, and the values of secret slots written as
    pairs (`password=...`, `"token": "..."`). Text is not a value of a known slot, so a token
    after `Bearer` must look machine-made and a pair's value must not be a bare word (`token:
    required` is prose). Linear in the text; returns the secret substrings, longest first."""
    text = _clean(text)
    found: set[str] = set()
    found.update(secret for _, secret in _ds_found(text, whole=True))
    found.update(secret for _, secret in _gitleaks_found(text))
    if "://" in text:
        found.update(m.group(2) for m in _URL_USERINFO.finditer(text)
                     if not _is_stand_in(m.group(2)))
    for m in _FREE_AUTH.finditer(text):
        token = m.group(1).strip("\"'`,;.)")
        if _looks_random(token, thresholds.token_min_len) and not _is_stand_in(token):
            found.add(token)
    if "=" in text or ":" in text:
        for m in _PAIR.finditer(text):
            kind = key_kind(m.group(1))
            inner = next(g for g in m.groups()[1:] if g is not None)
            if (kind.secret_slot or kind.kind == "ambiguous") and not inner.isalpha() \
                    and _accepts(kind.kind, inner, thresholds)[0]:
                found.add(inner)
    return sorted((f for f in found if f.strip()), key=len, reverse=True)


def _clean(text: str) -> str:
    """Text as RE2 can take it: a lone surrogate (from a JSON escape) becomes U+FFFD."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def explain(key: str, value: str, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Explanation:
    """scan()'s verdict with the rules that fired and why, in words that never quote the value."""
    notes: list[str] = []
    found = _judge(key, value, thresholds, notes)
    return Explanation(found, key_kind(key), value_kind(value), notes)
