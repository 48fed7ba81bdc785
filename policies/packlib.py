"""What the policies share: plain property access, waivers, Kubernetes/Vault/IAM parsing, and
kustomize's ConfigMap hash.

The pack runs on its own (the Pulumi CLI starts it in policies/ with only
policies/requirements.txt installed), so this module imports only the standard library,
pulumi and pulumi_policy.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pulumi
from contract import DNS_LABEL
from hashing import configmap_hash
from pulumi_policy import PolicyConfigSchema, proxy
from pulumi_policy.proxy import UnknownValueError
from resource_types import WORKLOADS

Validator = Callable[[Any, Any], None]


class _Unknown:
    """A value the engine does not know yet (preview): checks that need it are skipped; the
    pack runs again during `pulumi up`, when the value is known."""

    def __repr__(self) -> str:
        return "UNKNOWN"

    # One object, compared by identity: copies of a converted value keep it.
    def __copy__(self) -> _Unknown:
        return self

    def __deepcopy__(self, memo: dict) -> _Unknown:
        return self

    def __reduce__(self) -> str:
        return "UNKNOWN"  # pickled by reference to this module's name


UNKNOWN: Any = _Unknown()


def plain(value: Any) -> Any:
    """pulumi_policy's unknown-checking proxies as plain dicts and lists, unknowns as UNKNOWN
    (the proxies raise on access, which would abort a whole policy for one unknown field).

    Within `sharing(...)` (one pack call, stack_once), a proxy the call registered is converted
    once, from the value it wraps, and every policy gets that same read-only result."""
    shared = _SHARED
    if shared is not None:
        converted = shared.of(value)
        if converted is not _NOT_SHARED:
            return converted
    return _walk(value)


def _walk(value: Any) -> Any:
    """plain() through the proxy's own access (each step checked for unknowns)."""
    if isinstance(value, Mapping):
        out = {}
        for key in value:
            try:
                out[key] = _walk(value[key])
            except UnknownValueError:
                out[key] = UNKNOWN
        return out
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items = []
        for i in range(len(value)):
            try:
                items.append(_walk(value[i]))
            except UnknownValueError:
                items.append(UNKNOWN)
        return items
    return value


def _refusing(kind: str) -> Callable[..., Any]:
    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"plain(): this {kind} is shared by every policy of the call; "
                        f"change a copy ({kind}(value))")
    return refuse


class ReadOnlyDict(dict):
    """A dict shared by every policy of one pack call: changing it would change what the
    policies after this one see, so it refuses (copy it first: `dict(value)`). Copies, deep
    copies and pickles of it are plain dicts."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _refusing("dict")
    clear = pop = popitem = setdefault = update = _refusing("dict")

    def __reduce__(self) -> Any:
        return dict, (dict(self),)


class ReadOnlyList(list):
    """A list shared by every policy of one pack call (see ReadOnlyDict)."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refusing("list")
    append = extend = insert = pop = remove = clear = sort = reverse = _refusing("list")

    def __reduce__(self) -> Any:
        return list, (list(self),)


# What pulumi_policy's proxy raises UnknownValueError for (its `_is_unknown`: a str among these).
_UNKNOWN_SENTINELS = frozenset((
    proxy.UNKNOWN_BOOLEAN_VALUE, proxy.UNKNOWN_NUMBER_VALUE, proxy.UNKNOWN_STRING_VALUE,
    proxy.UNKNOWN_ARRAY_VALUE, proxy.UNKNOWN_ASSET_VALUE, proxy.UNKNOWN_ARCHIVE_VALUE,
    proxy.UNKNOWN_OBJECT_VALUE))
_LEAVES = frozenset((int, float, bool, type(None)))  # plain() returns them as they are


def _child(value: Any) -> Any:
    """plain() of what a proxy's item access returns for `value`, the item's deserialised
    value: UNKNOWN where the access would raise."""
    if isinstance(value, str):
        return UNKNOWN if value in _UNKNOWN_SENTINELS else value
    if value.__class__ in _LEAVES:
        return value
    return converted(value)


def converted(value: Any) -> Any:
    """plain(unknown_checking_proxy(value)), read-only, without the proxy: what the proxy
    wraps (dicts and lists) converted directly, their items' unknowns as UNKNOWN; anything
    else as plain() has it."""
    if isinstance(value, dict):
        return ReadOnlyDict({key: _child(item) for key, item in value.items()})
    if isinstance(value, list):
        return ReadOnlyList([_child(item) for item in value])
    return _walk(value)


_NOT_SHARED: Any = object()


class SharedConversions:
    """plain() of the proxies one pack call hands its policies: each converted once, from the
    value it wraps, on first use (stack_once registers each proxy with its value)."""

    def __init__(self) -> None:
        self._by_proxy: dict[int, list[Any]] = {}  # id -> [proxy (held: id not reused), value, plain]

    def register(self, value: Any, proxy_: Any) -> None:
        self._by_proxy[id(proxy_)] = [proxy_, value, _NOT_SHARED]

    def of(self, proxy_: Any) -> Any:
        """The proxy's shared conversion, or _NOT_SHARED if it was not registered."""
        entry = self._by_proxy.get(id(proxy_))
        if entry is None or entry[0] is not proxy_:
            return _NOT_SHARED
        if entry[2] is _NOT_SHARED:
            entry[2] = converted(entry[1])
        return entry[2]

    def handed_out(self) -> Iterator[tuple[Any, Any]]:
        """(value, its shared conversion) of each proxy converted so far."""
        for _, value, result in self._by_proxy.values():
            if result is not _NOT_SHARED:
                yield value, result


_SHARED: SharedConversions | None = None


@contextmanager
def sharing(conversions: SharedConversions) -> Iterator[SharedConversions]:
    """plain() shares `conversions` meanwhile (one pack call at a time: stack_once's lock)."""
    global _SHARED
    saved, _SHARED = _SHARED, conversions
    try:
        yield conversions
    finally:
        _SHARED = saved


def get(obj: Any, *path: str | int, default: Any = None) -> Any:
    """obj[path[0]][path[1]]..., or `default` where a step is missing or of the wrong type."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(obj, list) or not -len(obj) <= step < len(obj):
                return default
        elif not isinstance(obj, dict) or step not in obj:
            return default
        obj = obj[step]
    return obj


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str, str]]:
    """Every string leaf as (property path, nearest key, value)."""
    yield from _strings(value, path, "")


def _strings(value: Any, path: str, key: str) -> Iterator[tuple[str, str, str]]:
    if isinstance(value, str):
        yield path, key, value
    elif isinstance(value, dict):
        for k, v in sorted(value.items()):  # protobuf maps have no order; reports do
            yield from _strings(v, f"{path}.{k}" if path else str(k), str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]", key)


def short_type(resource_type: str) -> str:
    """`kubernetes:core/v1:ConfigMap` -> `ConfigMap`."""
    return resource_type.rsplit(":", 1)[-1]


def resource_label(resource_type: str, name: str) -> str:
    return f'{short_type(resource_type)} "{name}"'


def whole_stack(validate: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """A stack validator whose failure on a stack of unexpected shapes is its verdict, not the
    preview's end (see for_types): the stack fails this policy, every other policy still runs."""
    @functools.wraps(validate)
    def judged(args: Any, report_violation: Any) -> None:
        try:
            validate(args, report_violation)
        except Exception as exc:  # noqa: BLE001 - the stack's verdict; no value is shown
            report_violation(f"this policy cannot judge the stack: a resource's property has a "
                             f"shape it does not expect ({type(exc).__name__}). Fix: compare "
                             "the resources with what configplane declares (`configplane "
                             "plan`), and correct the one that differs.")
    return judged


def for_types(*types: str | Iterable[str]) -> Callable[[Validator], Validator]:
    """A resource validator that runs only for these resource types (tokens from resource_types.py;
    a tuple or dict of them counts as its members); other resources pass untouched."""
    wanted = frozenset(t for group in types
                       for t in ((group,) if isinstance(group, str) else group))

    def decorate(validate: Validator) -> Validator:
        @functools.wraps(validate)
        def filtered(args: Any, report_violation: Any) -> None:
            if args.resource_type not in wanted:
                return
            try:
                validate(args, report_violation)
            except Exception as exc:  # noqa: BLE001 - one resource's verdict, not the preview's
                # A property of a shape the policy does not expect (what a drift check's
                # refresh returns, a hand-edited resource): without this the exception aborts
                # the whole `pulumi preview`; here the resource fails this policy, by name,
                # and every other policy and resource is still judged. No value is shown.
                report_violation(
                    f"{resource_label(args.resource_type, args.name)}: this policy cannot judge "
                    f"it: a property has a shape it does not expect ({type(exc).__name__}). "
                    "Fix: compare the resource's properties with what configplane declares "
                    "(`configplane plan`), and correct it.", args.urn)

        filtered.resource_types = wanted  # type: ignore[attr-defined]
        return filtered

    return decorate


def num(value: Any) -> str:
    """A number as people write it (protobuf turns config integers into floats)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


ENVIRONMENT_PROPERTY = {  # the `environment` property of the policies that take one
    "type": "string", "pattern": DNS_LABEL,
    "description": "The stack's environment; default: the stack name.",
}


def environment(config: Mapping[str, Any]) -> str:
    """The stack's environment: the policy config's `environment`, else the stack name."""
    return str(config.get("environment") or pulumi.get_stack())


# --- reviewed exceptions ---------------------------------------------------------------------

WAIVER_SCHEMA = {
    "type": "array",
    "description": "Reviewed exceptions: the named resource is exempt from this policy until "
                   "`expires` (ISO date). Only the policies that list this property honour it.",
    "default": [],
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["resource", "ticket", "reason", "expires"],
        "properties": {
            "resource": {"type": "string", "minLength": 1,
                         "description": "The resource's Pulumi name (the URN's last part)."},
            "ticket": {"type": "string", "pattern": "^[A-Z][A-Z0-9]+-[0-9]+$"},
            "reason": {"type": "string", "minLength": 10},
            "expires": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
        },
    },
}


@dataclass(frozen=True)
class Waiver:
    resource: str
    ticket: str
    expires: datetime.date


def waivers(config: Mapping[str, Any]) -> dict[str, Waiver]:
    out = {}
    for entry in config.get("exceptions") or []:
        expires = datetime.date.fromisoformat(entry["expires"])
        out[entry["resource"]] = Waiver(entry["resource"], entry["ticket"], expires)
    return out


class Reporter:
    """report_violation with reviewed exceptions applied.

    A waivable finding for a resource named in the policy's `exceptions` is dropped while the
    exception is current (and logged); after it expires the finding is reported and says so.
    Findings marked `waivable=False` are always reported.
    """

    def __init__(self, policy: str, config: Mapping[str, Any], report_violation: Any,
                 today: datetime.date | None = None):
        self.policy = policy
        self.waivers = waivers(config)
        self.report_violation = report_violation
        self.today = today or datetime.date.today()

    def __call__(self, name: str, message: str, urn: str | None = None,
                 waivable: bool = True) -> None:
        waiver = self.waivers.get(name) if waivable else None
        if waiver is not None:
            if waiver.expires >= self.today:
                pulumi.log.info(f"{self.policy}: {name}: waived by {waiver.ticket} until "
                                f"{waiver.expires.isoformat()}")
                return
            message += (f" (exception {waiver.ticket} expired on {waiver.expires.isoformat()}: "
                        "renew it after review or fix the resource)")
        self.report_violation(message, urn)


# --- Kubernetes ------------------------------------------------------------------------------

def container_env(resource_type: str, props: dict) -> Iterator[tuple[str, str, str]]:
    """(container, variable, literal value) of a workload's containers' `env[].value`;
    `valueFrom` (secretKeyRef, configMapKeyRef, ...) and `envFrom` are references."""
    pod_path = WORKLOADS.get(resource_type)
    pod = get(props, *pod_path) if pod_path else None
    if not isinstance(pod, dict):
        return
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for container in get(pod, group, default=[]) or []:
            if not isinstance(container, dict):
                continue
            for var in container.get("env") or []:
                value = var.get("value") if isinstance(var, dict) else None
                if isinstance(value, str):
                    yield str(container.get("name", "?")), str(var.get("name", "?")), value


# --- kustomize's ConfigMap hash: the program's own (policies/hashing.py is a symlink to
# configplane/hashing.py, stdlib only), so the pack checks names with the very function that
# made them; kustomize's vectors and `kubectl kustomize` test it (tests/test_hashing.py).


def kustomize_hash(data: Mapping[str, Any], binary_data: Mapping[str, Any] | None) -> str:
    return configmap_hash(data, binary_data)


# --- Vault policies --------------------------------------------------------------------------

_LEGACY_POLICY = {
    "deny": ["deny"],
    "read": ["read", "list"],
    "write": ["create", "read", "update", "delete", "list"],
    "sudo": ["create", "read", "update", "delete", "list", "sudo"],
}


class PolicyParseError(ValueError):
    pass


def parse_vault_policy(text: str) -> list[tuple[str, list[str]]]:
    """(path, capabilities) of each rule of a Vault policy in HCL or JSON."""
    return [(path, list(capabilities)) for path, capabilities in _parsed_policy(text)]


@functools.lru_cache(maxsize=1024)
def _parsed_policy(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """parse_vault_policy, kept per text: a policy is read by the resource policy and again by
    the stack policy that maps identities (a deploy policy is tens of KiB)."""
    return tuple((path, tuple(capabilities)) for path, capabilities in _parse_policy(text))


def _parse_policy(text: str) -> list[tuple[str, list[str]]]:
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise PolicyParseError(f"invalid JSON policy (line {e.lineno})") from None
        paths = doc.get("path") if isinstance(doc, dict) else None
        if not isinstance(paths, dict):
            raise PolicyParseError('a JSON policy needs a top-level "path" object')
        return [(p, _capabilities(body)) for p, body in paths.items()]
    return _parse_hcl(_strip_comments(text))


def _capabilities(body: Any) -> list[str]:
    if not isinstance(body, dict):
        raise PolicyParseError("a path rule must be an object")
    caps = list(body.get("capabilities") or [])
    if "policy" in body:
        caps += _LEGACY_POLICY.get(str(body["policy"]), [str(body["policy"])])
    return [str(c) for c in caps]


# Text to keep -- a run of anything but comments, strings included whole (a `#` inside one is
# text; unterminated, one runs to the end) -- or a comment: `#` or `//` to the end of the line
# (the newline stays), `/* ... */` (unclosed: to the end). The regex engine does the scan: a
# loop per character cost the pack seconds per stack on a fleet's deploy policies (tens of
# KiB each), and a match per string most of that again.
_KEPT_OR_COMMENT = re.compile(
    r'((?:[^"#/]++|"(?:[^"\\]|\\[\s\S])*+"?|/(?![/*]))++)'
    r'|#[^\n]*|//[^\n]*|/\*(?:[\s\S]*?\*/|[\s\S]*)')


def _strip_comments(text: str) -> str:
    return _KEPT_OR_COMMENT.sub(r"\1", text)  # a comment matches no group: it goes


_PATH_HEAD = re.compile(r'\s*path\s+"((?:[^"\\]|\\.)*)"\s*\{')
_CAPS = re.compile(r'\bcapabilities\s*=\s*\[([^\]]*)\]')
_LEGACY = re.compile(r'\bpolicy\s*=\s*"(\w+)"')
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_REST_BLANK = re.compile(r"\s*\Z")
# what moves a block's scan: a whole string (unterminated: the rest of the text), or a brace
_STRING_OR_BRACE = re.compile(r'"(?:[^"\\]|\\[\s\S])*"|"[\s\S]*|[{}]')


def _parse_hcl(text: str) -> list[tuple[str, list[str]]]:
    rules, pos = [], 0
    while not _REST_BLANK.match(text, pos):
        m = _PATH_HEAD.match(text, pos)
        if not m:
            raise PolicyParseError("expected `path \"...\" { ... }` blocks only")
        depth, i = 1, m.end()
        while depth:
            found = _STRING_OR_BRACE.search(text, i)
            if found is None:
                break
            i = found.end()
            token = found.group()
            if token == "{":
                depth += 1
            elif token == "}":
                depth -= 1
        if depth:
            raise PolicyParseError(f'unclosed block for path "{m.group(1)}"')
        body = text[m.end():i - 1]
        caps = [c for group in _CAPS.findall(body) for c in _QUOTED.findall(group)]
        caps += [c for word in _LEGACY.findall(body) for c in _LEGACY_POLICY.get(word, [word])]
        rules.append((m.group(1), caps))
        pos = i
    return rules


# --- IAM policy documents -------------------------------------------------------------------


def iam_statements(document: Any) -> list[dict] | None:
    """The statements of an IAM policy document given as JSON text or an object; None when
    the document is not known yet."""
    if document is UNKNOWN or document is None:
        return None
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as e:
            raise PolicyParseError(f"not valid JSON (line {e.lineno})") from None
    statements = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not all(isinstance(s, dict) for s in statements):
        raise PolicyParseError("no Statement list")
    return statements


def as_mapping(value: Any) -> dict:
    """The value if it is an object, else an empty one (missing, unknown or malformed)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def config_schema(properties: dict[str, Any] | None = None,
                  waivable: bool = False) -> PolicyConfigSchema | None:
    """A policy's config schema: thresholds with defaults (so validators may index them);
    `exceptions` where a reviewed exception is safe to honour."""
    props = dict(properties or {})
    if waivable:
        props["exceptions"] = WAIVER_SCHEMA
    if not props:
        return None
    return PolicyConfigSchema(properties=props, required=[
        k for k, v in props.items() if "default" in v and k != "exceptions"])
