"""The secret declarations and grants an import (and `secret set`) adds to Pulumi.yaml, and the
secret spec `secret set` adds to a service's file, edited with ruamel.yaml's round-trip loader,
so each file keeps its comments, quoting and layout.

The edit is proven before anything is written: the file must dump back byte for byte with the
indentation chosen for it (else its layout is one ruamel.yaml would change), the new text must
be the old text with one block of lines inserted and nothing else changed, and it must parse to
the intended document. On any failure nothing is written and the user is told to add the
printed declarations by hand. New declarations go after the last existing secret declaration,
so secret inputs stay together; the comment lines that followed it (ruamel.yaml keeps them on
the previous value) move below the new block, so they still introduce what they introduced.
"""

from __future__ import annotations

import copy
import difflib
import io
from collections.abc import Mapping
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from configplane.inputs import NAMESPACE, PROJECT_FILE
from configplane.ops.importer.entry import ImportProblem

# (mapping, sequence, offset) indentations tried, most common first: the one that dumps the
# file back unchanged is used for the edit.
_INDENTS = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0))
_LAYOUT = (" could not add the declarations without changing something else (unusual layout). "
           "Fix: add them by hand; run without --write to print them.")


def add_declarations(text: str, declarations: Mapping[str, Any], file: str = PROJECT_FILE) -> str:
    """`text` (a Pulumi.yaml) with `declarations` added under `config:` (see the module doc)."""
    expected = copy.deepcopy(yaml.safe_load(text) or {})
    if not isinstance(expected, dict) or not isinstance(expected.get("config") or {}, dict):
        raise ImportProblem(f"{file}: the file or its `config` is not a mapping. Fix: correct it.")
    expected["config"] = {**(expected.get("config") or {}), **declarations}

    yml, document = _round_trip(text, file)
    if document is None or "config" not in document:
        text_with_config = text + ("\n" if text and not text.endswith("\n") else "") + "config:\n"
        try:
            document = yml.load(text_with_config)
        except YAMLError:  # a flow-style document (`{}`) takes no block key after it
            raise ImportProblem(file + ":" + _LAYOUT) from None
    if document["config"] is None:
        document["config"] = CommentedMap()
    config = document["config"]
    at, moved = 0, None
    for index, spec in enumerate(config.values()):
        if isinstance(spec, Mapping) and spec.get("secret") is True:
            at = index + 1
    if at:
        moved = _take_trailing_comment(config, list(config)[at - 1])
    for offset, (key, spec) in enumerate(declarations.items()):
        config.insert(at + offset, key, _commented(spec))
    if moved is not None:
        _give_trailing_comment(config, list(config)[at + len(declarations) - 1], moved)
    result = _dump(yml, document)
    if not _only_inserted(text, result) or yaml.safe_load(result) != expected:
        raise ImportProblem(file + ":" + _LAYOUT)
    return result


GRANTS_PATH = ("value", "platform", "grants", "secure_keys")  # under configplane:defaults


def add_grants(text: str, service: str, keys: list[str], file: str = PROJECT_FILE) -> str:
    """`text` (a Pulumi.yaml) with `keys` granted to `service` in the platform's defaults
    (`platform.grants.secure_keys.<service>`): the grant goes to review with the platform
    file it is written in (CODEOWNERS), like the declarations. Proven like them: the result
    parses to the intended document, and at most the service's own grant line is rewritten
    (a flow-style list), everything else kept byte for byte."""
    expected = copy.deepcopy(yaml.safe_load(text) or {})
    yml, document = _round_trip(text, file)
    for tree, make in ((expected, dict), (document, CommentedMap)):
        node = tree.setdefault("config", make()) if isinstance(tree, dict) else None
        for key in (f"{NAMESPACE}:defaults", *GRANTS_PATH):
            if not isinstance(node, dict):
                raise ImportProblem(f"{file}: `{key}` is not a mapping. Fix: correct it.")
            if node.get(key) is None:
                node[key] = make()
            node = node[key]
        if not isinstance(node, dict) or not isinstance(node.setdefault(
                service, CommentedSeq() if make is CommentedMap else []), list):
            raise ImportProblem(f"{file}: the grants of {service} are not a list. Fix: correct it.")
        node[service].extend(key for key in keys if key not in node[service])
    result = _dump(yml, document)
    if yaml.safe_load(result) != expected or not _grant_line_only(text, result, service):
        raise ImportProblem(file + ":" + _LAYOUT)
    return result


def add_secret(text: str, key: str, spec: Mapping[str, Any], file: str) -> str:
    """`text` (a service's file) with `secrets.<key>: spec` added after its last secret (or a
    `secrets:` section appended), proven like the declarations: one inserted block, nothing
    else changed, parsing to the intended document; the comment lines that followed the block
    it extends stay below the new lines."""
    expected = copy.deepcopy(yaml.safe_load(text))
    if not isinstance(expected, dict) or not isinstance(expected.get("secrets") or {}, dict):
        raise ImportProblem(f"{file}: the file or its `secrets` is not a mapping. Fix: correct it.")
    expected["secrets"] = {**(expected.get("secrets") or {}), key: dict(spec)}
    yml, document = _round_trip(text, file)
    value: Mapping[str, Any]
    if "secrets" not in document:
        container, new_key, value = document, "secrets", {key: spec}
    else:
        if document["secrets"] is None:
            document["secrets"] = CommentedMap()
        container, new_key, value = document["secrets"], key, spec
    moved = _take_trailing_comment(container, list(container)[-1]) if len(container) else None
    container[_commented(new_key)] = _commented(value)
    if moved is not None:
        _give_trailing_comment(container, new_key, moved)
    result = _dump(yml, document)
    if not _only_inserted(text, result) or yaml.safe_load(result) != expected:
        flow = ", ".join(f"{k}: {v}" for k, v in spec.items())
        raise ImportProblem(f"{file}: could not add secrets.{key} without changing something "
                            f"else (unusual layout). Fix: add it by hand under `secrets:`: "
                            f"`{key}: {{{flow}}}`.")
    return result


def _grant_line_only(old: str, new: str, service: str) -> bool:
    """`new` is `old` with lines inserted and at most one line rewritten: the service's own."""
    before, after = old.splitlines(keepends=True), new.splitlines(keepends=True)
    changed = [before[i] for tag, i1, i2, _, _ in difflib.SequenceMatcher(
        None, before, after, autojunk=False).get_opcodes() if tag in ("replace", "delete")
        for i in range(i1, i2)]
    return len(changed) <= 1 and all(line.strip().startswith(f"{service}:") for line in changed)


def _round_trip(text: str, file: str) -> tuple[YAML, Any]:
    """A round-trip YAML set to this file's indentation, and the file loaded with it."""
    for mapping, sequence, offset in _INDENTS:
        yml = YAML()
        yml.preserve_quotes = True
        yml.width = 4096
        yml.indent(mapping=mapping, sequence=sequence, offset=offset)
        try:
            document = yml.load(text)
        except YAMLError:
            raise ImportProblem(f"{file}: not valid YAML. Fix: correct it first.") from None
        if document is None or _dump(yml, document) == (text if text.endswith("\n") else text + "\n"):
            return yml, document
    raise ImportProblem(file + ":" + _LAYOUT)


def _dump(yml: YAML, document: Any) -> str:
    out = io.StringIO()
    yml.dump(document, out)
    return out.getvalue()


def _commented(value: Any) -> Any:
    if isinstance(value, Mapping):
        return CommentedMap((_commented(k), _commented(v)) for k, v in value.items())
    if isinstance(value, list):
        return CommentedSeq(_commented(v) for v in value)
    if isinstance(value, str) and not _plain_text(value):
        return DoubleQuotedScalarString(value)
    return value


_PLAIN = yaml.SafeLoader("")


def _plain_text(value: str) -> bool:
    """Whether `value`, written without quotes, reads back as this text with configplane's
    loader (PyYAML, YAML 1.1: `Off`, `yes`, `~`, `0x1F`, `2026-01-02` are not text there).
    ruamel.yaml writes YAML 1.2, which leaves such words unquoted."""
    return _PLAIN.resolve(yaml.ScalarNode, value, (True, False)) == "tag:yaml.org,2002:str"


def _last_leaf(container: Any, key: Any) -> tuple[Any, Any]:
    """The (container, key) whose value is the last scalar written under `container[key]`:
    ruamel.yaml keeps the comment lines that follow a block on it."""
    value = container[key]
    while isinstance(value, (CommentedMap, CommentedSeq)) and len(value):
        container, key = value, (list(value)[-1] if isinstance(value, CommentedMap) else len(value) - 1)
        value = container[key]
    return container, key


def _slot(container: Any) -> int:
    return 2 if isinstance(container, CommentedMap) else 0  # where a post-value comment sits


def _take_trailing_comment(container: Any, key: Any) -> Any:
    """Remove the full comment lines after `container[key]`'s block (its own end-of-line
    comment stays) and return them."""
    holder, leaf = _last_leaf(container, key)
    entry = holder.ca.items.get(leaf)
    token = entry[_slot(holder)] if entry else None
    if token is None or "\n" not in token.value:
        return None
    own, after = token.value.split("\n", 1)
    if not after:
        return None
    token.value = own + "\n"
    if not own.strip():
        entry[_slot(holder)] = None
    moved = copy.copy(token)
    moved.value = "\n" + after
    return moved


def _give_trailing_comment(container: Any, key: Any, token: Any) -> None:
    holder, leaf = _last_leaf(container, key)
    entry = holder.ca.items.setdefault(leaf, [None, None, None, None])
    entry[_slot(holder)] = token


def _only_inserted(old: str, new: str) -> bool:
    """True when `new` is `old` with one run of whole lines inserted."""
    before, after = old.splitlines(keepends=True), new.splitlines(keepends=True)
    if before and not before[-1].endswith("\n"):
        before[-1] += "\n"
    ops = [op for op in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes()
           if op[0] != "equal"]
    return len(ops) <= 1 and all(op[0] == "insert" for op in ops)
