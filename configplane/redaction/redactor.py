"""The one redaction boundary: every way out of configplane passes through a `Redactor`.

A value is secret, and never printed or written, when it is known to be secret
- by declaration: a `secrets:` entry of a service (whatever is not its metadata), a key
  declared `secret: true` in Pulumi.yaml (its `value`/`default`, a plaintext stack value);
- by source: a `secure:` stack value, a provider credential (`vault:token`, `aws:secretKey`,
  ...), a value marked secret in the engine's wire format (the plan's `secure`, generated and
  write-only values arrive that way);
- by key name and by content: the policy pack's detector (`scan(key, value)`) flags it;
- as a name: a mapping key (a tenant, a flag, a secret's name) or the value of a name slot (an
  owner, a config key, a resource name) that the detector flags as an identifier (vendor
  formats and structure: `scan(IDENTIFIER_KEY, name)`; a name's own words never count);
- in foreign text (preview diagnostics, policy messages, listings, input files): the parts of
  it the detector's `find` picks out (`text_secrets`).

A secret spec is shown by its metadata only (source, store, config_key, ref, version, length,
rotation strategy, database coordinates); any other field, and a spec pasted as a plain
string, is `[secret]`. A description is shown unless the detector flags it.

Two layers: `tree()` redacts structured data before it is rendered (JSON, YAML, tables), and
`text()` replaces every known secret string (and its JSON-escaped form) in any text; the CLI's
output streams apply `text()` to every line written to stdout and stderr (configplane.cli.boundary).
This module imports neither Pulumi nor the stack model: it is cheap to use from any layer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from configplane.contract import REDACTED
from configplane.projectfiles import ProjectFileError, read_bytes
from configplane.redaction.detector import Detector, detector_for

HIDDEN = "[not shown: unknown field]"
# The engine's wire format for a secret value (pulumi.runtime.rpc; a test pins both).
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270"
MIN_SECRET_LEN = 4  # shorter values are redacted where they stand, never inside other text

# What of a secret spec is metadata (shown); everything else is the secret (never shown).
SPEC_METADATA: Mapping[str, frozenset[str]] = {
    "": frozenset({"source", "store", "config_key", "ref", "length", "description",
                   "database", "rotation", "version", "dynamic"}),
    "database": frozenset({"engine", "host", "port", "dbname", "username"}),
    "rotation": frozenset({"strategy", "master_secret_arn", "length"}),
    "dynamic": frozenset({"connection", "username_key", "grants"}),
}

# configplane's own messages: they name keys and rules, never values (a name they quote is
# redacted as a known secret when it is one).
TEXT_SLOTS = frozenset({
    "reason", "message", "state", "notes", "advice", "fix", "level", "policy_pack",
})
# Slots that hold names of things, never a value: the detector does not judge their values by
# the key (`config_key: apiDbPassword` names a config key; ESO's `remoteRef.key` a path), but
# as identifiers (IDENTIFIER_KEY). A known secret is still redacted there.
NAME_SLOTS = frozenset({
    "source", "store", "config_key", "ref", "length", "version", "strategy",
    "master_secret_arn", "engine", "port", "dbname", "username", "key", "property",
    "secretKey", "secretName", "secret_name", "name", "kind", "apiVersion", "type", "urn",
    "role", "policy", "path", "mountPath", "serviceAccountRef", "secrets_manager_arns",
    "vault_policy", "vault_role", "vault_path", "keyId", "arn", "id", "owners",
}) | TEXT_SLOTS
# The key a name is judged under: neutral, so only vendor formats and structure make a name
# secret (a flag called `ghp_...`, a tenant called `AKIA...`), never the name's own words.
IDENTIFIER_KEY = "name"


def is_name_slot(key: str) -> bool:
    """A slot naming something (NAME_SLOTS), or a Pulumi config key (`password_config_key`:
    the name of a `secure` key, whose own value never appears in any document)."""
    return key in NAME_SLOTS or key.endswith("config_key")


def detect_name(name: Any, detector: Detector | None = None) -> tuple[str, ...]:
    """The detector's rules that fire on a name (a mapping key, a name slot's value).
    `detector`: the run's (the project's pack); None, the pack `detector_for()` finds."""
    return detect(IDENTIFIER_KEY, name, detector)


def judged(key: str, value: Any, detector: Detector | None = None) -> tuple[str, ...]:
    """The rules that make `value`, in the slot `key`, a secret: by the key in a value slot,
    as an identifier in a name slot, never in configplane's own message slots."""
    if key in TEXT_SLOTS:
        return ()
    return detect_name(value, detector) if is_name_slot(key) else detect(key, value, detector)

# Pulumi provider settings that are credentials: a plaintext value in a stack file is a leak.
PROVIDER_CREDENTIALS = frozenset({
    "aws:accessKey", "aws:secretKey", "aws:token", "aws:sessionToken",
    "vault:token", "vault:authLogin", "vault:authLoginUserpass", "vault:authLoginAws",
    "vault:authLoginJwt", "vault:authLoginKubernetes", "vault:authLoginOidc",
    "vault:authLoginCert", "vault:authLoginAppRole", "vault:clientAuth",
    "kubernetes:kubeconfig", "kubernetes:clientKey", "kubernetes:token",
    "azure:clientSecret", "azure-native:clientSecret", "azure:clientCertificatePassword",
    "gcp:credentials", "gcp:accessToken", "postgresql:password", "random:seed",
})

# Text that is also a bare JSON token (a number, true/false/null): replacing it inside text
# would break JSON output; such values are redacted where they stand (`tree`).
_JSON_TOKEN = re.compile(r"-?[0-9][0-9.eE+-]*|true|false|null")
_LINE = re.compile(r"^\s*(?:-\s+)?([^\s#][^#]*?)\s*:\s+(.+?)\s*$")


def is_secret_wrapper(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get(SECRET_SIG_KEY) == SECRET_SIG_VALUE


def marked_strings(value: Any, path: str = "", marked: bool = False
                   ) -> Iterator[tuple[str, str, bool]]:
    """(key path, string, inside a secret-marked value) for every string of a property value
    as the engine holds it: the one walker over its secret wrappers."""
    if is_secret_wrapper(value):
        yield from marked_strings(value.get("value"), path, True)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from marked_strings(item, f"{path}.{key}" if path else str(key), marked)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from marked_strings(item, f"{path}[{index}]", marked)
    elif isinstance(value, str):
        yield path, value, marked


def sort_strings(value: Any, unmarked: list[str] | None, marked: list[str]) -> None:
    """The strings `marked_strings` finds, without their paths (a plan holds hundreds of
    thousands; a path is wanted only where one is reported): the unmarked ones appended to
    `unmarked` (unless None), those inside a secret-marked value to `marked`."""
    pending: list[tuple[Any, bool]] = [(value, False)]
    while pending:
        item, inside = pending.pop()
        if isinstance(item, str):
            if inside:
                marked.append(item)
            elif unmarked is not None:
                unmarked.append(item)
        elif isinstance(item, dict | Mapping):  # a dict, as deserialised, checked first
            if item.get(SECRET_SIG_KEY) == SECRET_SIG_VALUE:
                pending.append((item.get("value"), True))
            else:
                pending.extend((v, inside) for v in item.values())
        elif isinstance(item, list | tuple):
            pending.extend((v, inside) for v in item)


def detect(key: str, value: Any, detector: Detector | None = None) -> tuple[str, ...]:
    """The detector's rules that fire on this key/value pair (empty: not a secret).
    `detector`: the run's (the project's pack); None, the pack `detector_for()` finds."""
    return (detector or detector_for()).rules(key, value)


# The blocks inside a spec whose fields are metadata, by their path in the spec (list items
# share their list's path: a grant's fields are under ("dynamic", "grants")).
SPEC_BLOCKS: Mapping[tuple[str, ...], frozenset[str]] = {
    (): SPEC_METADATA[""],
    **{(name,): fields for name, fields in SPEC_METADATA.items() if name},
    ("dynamic", "grants"): frozenset({"schema", "tables", "privileges"}),
}


def spec_metadata(rel: tuple[str, ...] | list[str]) -> bool:
    """Whether a path inside a secret spec (`()` is the spec itself) is shown metadata: each
    step is a field of its block; below a block's leaf (a list of names), everything is."""
    rel = tuple(rel)
    for n in range(len(rel)):
        fields = SPEC_BLOCKS.get(rel[:n])
        if fields is None:
            return n > 1  # under a block's field; a scalar field given as a block is not
        if rel[n] not in fields:
            return False
    return True


class Redactor:
    """Knows the secret values of one command's inputs and keeps them out of its outputs."""

    def __init__(self, values: Iterable[Any] = (), detector: Detector | None = None) -> None:
        self._detector = detector  # the run's (its project's pack); loaded when first needed
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._dirty = False
        self.add(*values)

    @property
    def detector(self) -> Detector:
        """The run's detector; None given: the pack `detector_for()` finds."""
        if self._detector is None:
            self._detector = detector_for()
        return self._detector

    # --- what is secret ---------------------------------------------------------------

    def add(self, *values: Any) -> None:
        for value in values:
            for text in _strings_of(value):
                text = text.strip("\r\n")
                if text and text not in self._values and text != REDACTED:
                    self._values.add(text)
                    self._dirty = True

    def knows(self, value: Any) -> bool:
        return any(t in self._values for t in _strings_of(value))

    @property
    def values(self) -> frozenset[str]:
        return frozenset(self._values)

    def merge(self, other: Redactor) -> None:
        self.add(*other._values)

    # --- redaction -----------------------------------------------------------------------

    def text(self, text: str) -> str:
        """`text` with every known secret (and its JSON-escaped form) replaced by [secret]."""
        if not self._values or not text:
            return text
        pattern = self._compiled()
        return pattern.sub(REDACTED, text) if pattern is not None else text

    def value(self, key: str, value: Any) -> Any:
        """One scalar in the slot `key`: [secret] when known or flagged, else its text redacted."""
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, str | int | float):
            if self.knows(value):
                return REDACTED
            if isinstance(value, str) and is_name_slot(key):  # a path or message naming a
                shown = self.text(value)  # secret shows the rest of itself
                return REDACTED if judged(key, shown, self.detector) else shown
            if judged(key, value, self.detector):
                return REDACTED
            return self.text(value) if isinstance(value, str) else value
        return self.tree(value, key)

    def tree(self, value: Any, key: str = "", *, keep_keys: bool = False) -> Any:
        """A printable copy of structured data: secret-marked values, known secrets and values
        the detector flags (judged with the key that holds them) become [secret]. Mapping keys
        that are or hold a secret are redacted too; with `keep_keys` (data a renderer indexes
        by its own key names, printed through a RedactingStream) they stay, and a key the
        detector flags becomes a known secret, so the stream hides it wherever it is printed."""
        if isinstance(value, str):  # the common leaf first: no ABC check per value
            return self.value(key, value)
        if is_secret_wrapper(value):
            return REDACTED
        if isinstance(value, Mapping):  # keys as text: YAML 1.1 may have made `no` a bool
            out: dict[str, Any] = {}
            for k, v in value.items():
                name = str(k)
                if keep_keys:
                    if name not in self._values and detect_name(name, self.detector):
                        self.add(name)
                    out[name] = self.tree(v, name, keep_keys=True)
                else:
                    out[self._name(name, out)] = self.tree(v, name)
            return out
        if isinstance(value, list | tuple):
            return [self.tree(v, key, keep_keys=keep_keys) for v in value]
        return self.value(key, value)

    def learn_keys(self, value: Any) -> None:
        """Make known every mapping key of `value` the detector flags, as `tree` with
        `keep_keys` does on its way, without judging a value: for a renderer that prints only
        part of `value` (`emit`'s `shown`), the keys of the rest still teach the stream."""
        pending, names = [value], set[str]()
        while pending:
            item = pending.pop()
            if isinstance(item, dict | Mapping) and not is_secret_wrapper(item):
                names.update(map(str, item))
                pending.extend(item.values())
            elif isinstance(item, list | tuple):
                pending.extend(item)
        for name in sorted(names - self._values):
            if detect_name(name, self.detector):
                self.add(name)

    def _name(self, name: str, taken: Mapping[str, Any]) -> str:
        """A mapping key as printed: [secret] when it is a secret (numbered to stay unique)."""
        if not (name in self._values or detect_name(name, self.detector)):
            return self.text(name)
        shown, n = REDACTED, 1
        while shown in taken:
            n += 1
            shown = f"{REDACTED} {n}"
        return shown

    def foreign(self, *values: Any) -> None:
        """Make secret what the detector finds in text from outside (`text_secrets`): every
        string and key of `values`, before any of it is printed or written."""
        self.add(*text_secrets(*values, detector=self.detector))

    def spec(self, value: Any, rel: tuple[str, ...] = ()) -> Any:
        """A secret spec (or a part of one, at `rel` inside it) by its metadata only."""
        if not spec_metadata(rel):
            return HIDDEN
        if isinstance(value, Mapping):
            if rel and rel not in SPEC_BLOCKS:  # a scalar field given as a mapping
                return HIDDEN
            return {str(k): self.spec(v, (*rel, str(k))) for k, v in value.items()}
        if not rel:  # a spec pasted as a string or a number: that is the value itself
            return REDACTED if value is not None else None
        if isinstance(value, list):  # metadata lists inside a block (dynamic.grants) only
            return ([self.spec(v, rel) for v in value]
                    if len(rel) >= 2 and rel[:1] in SPEC_BLOCKS else HIDDEN)
        return self.value(rel[-1], value)

    def _compiled(self) -> re.Pattern[str] | None:
        if self._dirty:
            forms: set[str] = set()
            for v in self._values:
                if len(v) < MIN_SECRET_LEN or _JSON_TOKEN.fullmatch(v):
                    continue  # redacted where they stand (tree), never inside other text
                forms.add(v)
                escaped = json.dumps(v, ensure_ascii=False)[1:-1]
                forms.add(escaped)
                forms.add(json.dumps(v)[1:-1])
                for line in v.splitlines():  # a multi-line secret printed line by line
                    if len(line.strip()) >= 8:
                        forms.add(line.strip())
            words = sorted(forms, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, words))) if words else None
            self._dirty = False
        return self._pattern


def _strings_of(value: Any) -> list[str]:
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, int | float):
        return [str(value)]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings_of(v)]
    if isinstance(value, list | tuple | set | frozenset):
        return [s for v in value for s in _strings_of(v)]
    return []


# --- what a stack holds that is secret ---------------------------------------------------


def stack_secrets(inputs: Any, detector: Detector | None = None) -> set[str]:
    """Every secret value in a stack's inputs (configplane.inputs.stackfiles.StackInputs): secret
    specs' non-metadata, secret-declared and credential keys' values, plaintext under
    `secure:`, and every value the detector flags in any layer (overridden ones included).
    `detector`: None, the pack of the inputs' own project."""
    detector = detector or detector_for(getattr(inputs, "project_dir", None) or None)
    found: set[str] = set()
    for document in (inputs.defaults, inputs.environment):
        found |= document_secrets(document, detector=detector)
    declarations = getattr(inputs, "declarations", {}) or {}
    for key in [*(getattr(inputs, "values", {}) or {}), *(getattr(inputs, "project_values", {})
                                                          or {}), *declarations]:
        found.update(k for k in (key, key.rsplit(":", 1)[-1]) if detect_name(k, detector))
    for key, value in (getattr(inputs, "values", {}) or {}).items():
        declared = declarations.get(key)
        if value.secure:
            continue
        if key in PROVIDER_CREDENTIALS or (declared is not None and declared.secret):
            found.update(_strings_of(value.value))
        elif not isinstance(value.value, Mapping | list):
            if detector.rules(key.rsplit(":", 1)[-1], value.value):
                found.update(_strings_of(value.value))
        else:
            found |= document_secrets({key.rsplit(":", 1)[-1]: value.value}, detector=detector)
    for key, value in (getattr(inputs, "project_values", {}) or {}).items():
        declared = declarations.get(key)
        if key in PROVIDER_CREDENTIALS or (declared is not None and declared.secret):
            found.update(_strings_of(value))
        elif isinstance(value, Mapping | list):
            found |= document_secrets({key.rsplit(":", 1)[-1]: value}, detector=detector)
        elif detector.rules(key.rsplit(":", 1)[-1], value):
            found.update(_strings_of(value))
    for value in (getattr(inputs, "secure_raw", {}) or {}).values():
        found.update(_strings_of(value))  # plaintext pasted under `secure:` (or ciphertext)
    for layers in (getattr(inputs, "service_layers", {}) or {}).values():
        found |= catalog_secrets(layers, detector)
    return found


def catalog_secrets(layers: Iterable[Any], detector: Detector) -> set[str]:
    """Secret values of a service's catalog layers, each `{name: document}`; a layer judged
    by this very detector to hold none (`secret_free_under`: the parse cache's) is skipped."""
    return {value for layer in layers
            if getattr(layer, "secret_free_under", "") != detector.identity
            for value in layer_secrets(layer.document, detector)}


def layer_secrets(document: Mapping[str, Any], detector: Detector) -> set[str]:
    """Secret values of one catalog layer (`{service: its fields}`): what `stack_secrets`
    takes from it, and what the parse cache asks before it keeps a file (only a file whose
    layer holds none is kept, so no secret is ever written there)."""
    return document_secrets({"services": document}, detector=detector)


def document_secrets(document: Any, key: str = "", path: tuple[str, ...] = (),
                     detector: Detector | None = None) -> set[str]:
    """Secret values in a configuration document (a layer or the merged stack document)."""
    detector = detector or detector_for()
    found: set[str] = set()
    if isinstance(document, Mapping):
        for k, v in document.items():
            k = str(k)
            if detect_name(k, detector):  # a secret used as a name: a tenant, a flag, a secret's name
                found.add(k)
            sub = (*path, k)
            if len(sub) == 4 and sub[0] == "services" and sub[2] == "secrets":
                found |= _spec_secrets(v, (), detector)
            else:
                found |= document_secrets(v, k, sub, detector)
    elif isinstance(document, list):
        for item in document:
            found |= document_secrets(item, key, path, detector)
    elif document is not None and not isinstance(document, bool) and (
            judged(key, document, detector) or url_userinfo(document)):
        found.update(_strings_of(document))
        info = url_userinfo(document)
        if info:
            found.add(info)
    return found


def _spec_secrets(spec: Any, rel: tuple[str, ...], detector: Detector) -> set[str]:
    if not spec_metadata(rel) or (rel and rel[:1] not in SPEC_BLOCKS and
                                  isinstance(spec, Mapping | list)):
        return set(_strings_of(spec))
    if isinstance(spec, Mapping):
        names = {str(k) for k in spec if detect_name(str(k), detector)}
        return names | {s for k, v in spec.items()
                        for s in _spec_secrets(v, (*rel, str(k)), detector)}
    if not rel:
        return set(_strings_of(spec))  # a spec pasted as a string: the value itself
    if isinstance(spec, list):
        if len(rel) >= 2 and rel[0] in SPEC_METADATA:  # metadata lists (dynamic.grants)
            return {s for item in spec for s in _spec_secrets(item, rel, detector)}
        return set(_strings_of(spec))
    if judged(rel[-1], spec, detector) or url_userinfo(spec):
        return set(_strings_of(spec))
    return set()


def url_userinfo(value: Any) -> str | None:
    """The `user:password` (or token) part of a URL, if it has one."""
    if not isinstance(value, str) or "@" not in value or "://" not in value:
        return None
    m = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#\s]*)@", value.strip())
    return m.group(1) if m and m.group(1) else None


def plaintext_rules(key: str, value: Any, detector: Detector | None = None) -> tuple[str, ...]:
    """Why a plain value in the slot `key` is a credential (the detector's rules, and
    `url-userinfo` for an address with `user:password@`); empty when it may stay plain. The
    one decision: `validate` refuses such a value in config, `import` makes it a secret.
    `detector`: the run's (the project's pack); None, the pack `detector_for()` finds."""
    if is_name_slot(key):
        return ()
    rules = detect(key, value, detector)
    return (*rules, "url-userinfo") if url_userinfo(value) else rules


def file_secrets(paths: Iterable[Path], secret_keys: Iterable[str] = (),
                 detector: Detector | None = None) -> set[str]:
    """Secret values found line by line in files, for when they cannot be parsed (a YAML
    syntax error's message may quote the line): every `key: value` the detector flags, every
    value of a `secure:` or credential key."""
    detector = detector or detector_for()
    found: set[str] = set()
    declared = set(secret_keys) | {k.split(":", 1)[-1] for k in secret_keys}
    for path in paths:
        path = Path(path)
        try:  # the project's own door: contained, size before read (a sparse 3 GiB file)
            data = read_bytes(path.parent, path.name)
        except (OSError, ProjectFileError):
            continue
        text = data.decode("utf-8", errors="replace")
        previous_key = ""
        for line in text.splitlines():
            m = _LINE.match(line)
            if not m:
                previous_key = line.strip().rstrip(":").strip("'\"") or previous_key
                continue
            key, value = m.group(1).strip("'\""), m.group(2)
            bare = value.strip("'\"")
            if detect_name(key, detector):
                found.add(key)
            if is_name_slot(key) and key != "secure":
                if judged(key, bare, detector):
                    found.add(bare)
                continue  # a leaf naming something; the enclosing key stays the same
            if not bare or bare.startswith(("#", "&", "*", "|", ">")):
                previous_key = key
                continue
            secret_slot = (key in PROVIDER_CREDENTIALS or key in declared
                           or previous_key in PROVIDER_CREDENTIALS
                           or (previous_key in declared and key in ("value", "default")))
            if (key == "secure" or secret_slot or detector.rules(key.rsplit(":", 1)[-1], bare)
                    or url_userinfo(bare)):
                found.add(bare)
                if url_userinfo(bare):
                    found.add(url_userinfo(bare) or "")
    found.discard("")
    return found


def text_secrets(*values: Any, detector: Detector | None = None) -> set[str]:
    """Secrets in text from outside configplane (preview diagnostics, policy messages, kubectl
    listings, manifests, .env files): what the detector's `find` picks out of every string and
    every mapping key of `values`, whatever slot holds them. `detector`: the run's (the
    project's pack); None, the pack `detector_for()` finds."""
    texts = {text for text in _texts(values) if text.strip()}
    if not texts:
        return set()
    try:
        find = (detector or detector_for()).module.find
    except OSError:  # an installed CLI outside a project (drift-report in a bare CI job) has
        return set()  # no pack: only what is known (and pulumi's own [secret]) is redacted
    # One pass over all of it (each call has a fixed cost). The separator ends a token, a
    # pair and a URL in every pattern, so nothing is found across two texts.
    return set(find(_APART.join(texts)))


_APART = "\n\x00\n"


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield str(k)
            yield from _texts(v)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _texts(item)
