"""Write an import: a new services/<name>/<stack>.yaml, and the secret declarations added to
Pulumi.yaml with ruamel.yaml's round-trip loader, so the file keeps its comments, quoting and
layout.

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
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from configplane.inputs import PROJECT_FILE, SERVICES_KEY, YamlError, load_text, stack_file_name
from configplane.ops.importer.entry import ImportProblem
from configplane.ops.importer.proposal import ImportProposal, catalog_file
from configplane.projectfiles import ProjectFileError, Writer, is_file, kind_of, shown

# (mapping, sequence, offset) indentations tried, most common first: the one that dumps the
# file back unchanged is used for the edit.
_INDENTS = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0))
_LAYOUT = (" could not add the declarations without changing something else (unusual layout). "
           "Fix: add them by hand; run without --write to print them.")


def write_import(project_dir: Path, plan: ImportProposal, writer: Writer) -> list[str]:
    """Write the section to services/<name>/<stack>.yaml (a new file) and add the
    declarations to Pulumi.yaml: one change, all or nothing, read and written under the
    project's write lock (`writer`), so concurrent imports cannot lose each other's edits."""
    stack_file = stack_file_name(plan.stack)
    if not is_file(project_dir, stack_file):
        raise ImportProblem(f"{shown(stack_file)}: file not found in {project_dir.resolve()}. "
                            f"Fix: create the stack first (`pulumi stack init {plan.stack}`).")
    target = catalog_file(plan.service, plan.stack)
    try:
        stack_document = load_text(writer.read_text(stack_file), stack_file).document
    except (YamlError, ProjectFileError) as exc:
        raise ImportProblem(str(exc)) from None
    config = stack_document.get("config") if isinstance(stack_document, dict) else None
    legacy = config.get(SERVICES_KEY) if isinstance(config, dict) else None
    # anything at the target (a file, a link, even a dangling one) is refused, never followed
    if kind_of(project_dir, target) is not None or (isinstance(legacy, dict)
                                                    and plan.service in legacy):
        where = target if kind_of(project_dir, target) is not None else \
            f"{stack_file}: {SERVICES_KEY}.{plan.service}"
        raise ImportProblem(f"{where} already exists. Fix: merge the printed section by hand "
                            "(run without --write).")
    text = yaml.safe_dump(plan.section, sort_keys=False, default_flow_style=False,
                          allow_unicode=True, width=1000)
    if yaml.safe_load(text) != plan.section:
        raise ImportProblem(f"{target}: the section does not read back as imported. Fix: add it "
                            "by hand; run without --write to print it.")
    edits = {target: text}
    if plan.declarations:
        edits[PROJECT_FILE] = add_declarations(writer.read_text(PROJECT_FILE), plan.declarations)
    return writer.commit(edits, new={target})  # all edits were checked before any is written


def add_declarations(text: str, declarations: Mapping[str, Any], file: str = PROJECT_FILE) -> str:
    """`text` (a Pulumi.yaml) with `declarations` added under `config:` (see the module doc)."""
    expected = copy.deepcopy(yaml.safe_load(text) or {})
    if not isinstance(expected, dict) or not isinstance(expected.get("config") or {}, dict):
        raise ImportProblem(f"{file}: the file or its `config` is not a mapping. Fix: correct it.")
    expected["config"] = {**(expected.get("config") or {}), **declarations}

    yml, document = _round_trip(text, file)
    if document is None or "config" not in document:
        text_with_config = text + ("\n" if text and not text.endswith("\n") else "") + "config:\n"
        document = yml.load(text_with_config)
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
        return CommentedMap((k, _commented(v)) for k, v in value.items())
    if isinstance(value, list):
        return CommentedSeq(_commented(v) for v in value)
    return value


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
