"""The one YAML loader for every file configplane reads: safe, bounded and exact about where.

- Limits: file size (MAX_BYTES), nesting depth (MAX_DEPTH) and alias expansion
  (MAX_ALIAS_NODES: nodes added by expanding aliases, so a "billion laughs" document is
  refused before anything is built). Past a limit, a clean YamlError, never a MemoryError,
  RecursionError or a crash of the C parser.
- Text: UTF-8 only (a UTF-8 byte-order mark is accepted); the message names the byte offset.
- Keys: strings only. A YAML 1.1 boolean, null or number used as a key (`no`, `on`, `5`)
  gets a message saying to quote it; a complex key (`? [a, b]`) is refused.
- Duplicate keys are reported with the full key path and line (`a.b.c`, line 12), and
  every mapping key's line is kept, so provenance can say `services/api/prod.yaml:12`.
Messages never quote the document's text (a secret may sit on the offending line).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from configplane.projectfiles import MAX_FILE_BYTES, ProjectFileError, read_bytes

MAX_BYTES = MAX_FILE_BYTES
MAX_DEPTH = 64
MAX_ALIAS_NODES = 100_000
# libyaml's composer recurses in C: a document this short cannot nest deeply enough to
# exhaust the stack (tested to 20,000 levels), so only longer ones get the event pre-check.
_COMPOSE_SAFE_CHARS = 8192

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_KEY_TAGS = {
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:timestamp": "a date",
}

KeyPath = tuple[str, ...]


class YamlError(Exception):
    """A file that cannot be read as configuration: the message names file, line and fix."""

    def __init__(self, file: str, message: str, line: int | None = None, path: KeyPath = ()):
        self.file, self.line, self.problem = file, line, message
        self.path = path  # the mapping that holds the problem, when known (a bad key's parent)
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}")


@dataclass
class Loaded:
    """A document, the line of every mapping key in it, and its duplicate keys."""

    document: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    duplicates: list[tuple[str, int]] = field(default_factory=list)  # (dotted path, line)
    explicit_null: bool = False  # the document is `null` itself (not an empty file)


def load_file(path: Path, display: str | None = None, prefix: KeyPath = ()) -> Loaded:
    """Read and load one YAML file; raises YamlError (missing, too large, not UTF-8...)."""
    name = display or path.name
    try:  # contained in its own directory, its size checked before it is read
        data = read_bytes(path.parent, path.name, limit=MAX_BYTES)
    except ProjectFileError as exc:
        raise YamlError(name, exc.problem) from None
    except FileNotFoundError:
        raise YamlError(name, f"file not found in {path.parent.resolve()}") from None
    except OSError as exc:
        raise YamlError(name, f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    return load_bytes(data, name, prefix)


def load_bytes(data: bytes, name: str, prefix: KeyPath = ()) -> Loaded:
    """`prefix`: prepended to the key paths of `lines` (not of messages or duplicates)."""
    if len(data) > MAX_BYTES:
        raise YamlError(name, f"document is {len(data)} bytes; configplane reads at most "
                        f"{MAX_BYTES}. Fix: split it.")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise YamlError(name, "file is UTF-16 (byte-order mark at byte 0). Fix: save it as UTF-8.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise YamlError(name, f"not UTF-8: invalid byte 0x{data[exc.start]:02x} at byte offset "
                        f"{exc.start}. Fix: save the file as UTF-8.", line) from None
    return load_text(text, name, prefix)


def load_text(text: str, name: str, prefix: KeyPath = ()) -> Loaded:
    return _load(text, name, prefix, lambda loader: [loader.get_single_node()])[0]


def load_documents(text: str, name: str) -> list[Loaded]:
    """Every document of a multi-document stream (`---`), within the same limits; the alias
    budget is the stream's, so a bomb cannot be spread over many small documents."""
    def nodes(loader: Any) -> list[Any]:
        found = []
        while loader.check_node():
            found.append(loader.get_node())
        return found

    return _load(text, name, (), nodes)


def _load(text: str, name: str, prefix: KeyPath, compose: Any) -> list[Loaded]:
    if len(text) > _COMPOSE_SAFE_CHARS:
        _check_depth(text, name)
    loader = _Loader(text)
    try:
        nodes = compose(loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        column = f", column {mark.column + 1}" if mark else ""
        raise YamlError(name, f"not valid YAML{column}: {problem}. Fix: correct the syntax "
                        "(a YAML linter shows the spot).", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise YamlError(name, f"not valid YAML: {type(exc).__name__}. Fix: correct the syntax.") \
            from None
    finally:
        loader.dispose()
    loaded = []
    builder = _Builder(name, loader, prefix)
    for node in nodes:
        if node is None:
            loaded.append(Loaded(None))
            continue
        builder.lines, builder.duplicates = {}, []
        if "&" in text:  # without an anchor there is no alias to expand
            builder.budget(node)
        document = builder.build(node, (), 0)
        loaded.append(Loaded(document, builder.lines, builder.duplicates, document is None))
    return loaded


def _check_depth(text: str, name: str) -> None:
    """Nesting depth from the event stream (iterative), before the recursive composer runs."""
    depth = 0
    starts = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
    ends = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, starts):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark else None
                    raise YamlError(name, f"nested deeper than {MAX_DEPTH} levels. Fix: flatten "
                                    "the structure.", line)
            elif isinstance(event, ends):
                depth -= 1
    except yaml.YAMLError:
        return  # reported with its position by the composer


class _Builder:
    """Builds Python values from composed nodes: checks keys, counts alias expansion,
    records key lines and duplicate keys (own keys; `<<` merge keys may be overridden)."""

    def __init__(self, name: str, loader: Any, prefix: KeyPath = ()):
        self.name = name
        self.prefix = prefix
        self.constructor = loader  # its yaml_constructors build scalars (int, bool, dates...)
        self.lines: dict[KeyPath, int] = {}
        self.duplicates: list[tuple[str, int]] = []
        self.expanded = 0  # values added by expanding aliases so far
        self._flattened: set[int] = set()

    def fail(self, node: yaml.Node, message: str, path: KeyPath = ()) -> YamlError:
        return YamlError(self.name, message, node.start_mark.line + 1 if node.start_mark else None,
                         (*self.prefix, *path) if path else ())

    def budget(self, root: yaml.Node) -> None:
        """Refuse documents whose aliases expand past MAX_ALIAS_NODES, or refer to themselves,
        from the node graph alone (memoised: linear in the document, whatever the expansion)."""
        sizes: dict[int, int] = {}
        unique: set[int] = set()
        on_path: set[int] = set()

        def size(node: yaml.Node) -> int:
            key = id(node)
            if key in sizes:
                return sizes[key]
            if key in on_path:
                raise self.fail(node, "an alias refers to the mapping or list that contains it "
                                "(a recursive document). Fix: remove the alias.")
            unique.add(key)
            if isinstance(node, yaml.ScalarNode):
                sizes[key] = 1
                return 1
            on_path.add(key)
            if isinstance(node, yaml.MappingNode):
                self._flatten(node)
                children: Iterable[yaml.Node] = (n for pair in node.value for n in pair)
            else:
                children = node.value
            total = 1
            for child in children:
                total += size(child)
                if total > MAX_ALIAS_NODES + len(unique) + 1:
                    break
            on_path.discard(key)
            sizes[key] = total
            return total

        try:
            total = size(root)
        except RecursionError:
            raise self.fail(root, f"nested deeper than {MAX_DEPTH} levels. Fix: flatten the "
                            "structure.") from None
        self.expanded += total - len(unique)  # over every document of a stream
        if self.expanded > MAX_ALIAS_NODES:
            raise self.fail(root, f"aliases expand to more than {MAX_ALIAS_NODES} extra values "
                            "(an alias bomb?). Fix: write the values out, or use fewer aliases.")

    def _flatten(self, node: yaml.MappingNode) -> None:
        if id(node) in self._flattened:
            return
        self._flattened.add(id(node))
        own = [(k, v) for k, v in node.value if k.tag != _MERGE]
        merged = [(k, v) for k, v in node.value if k.tag == _MERGE]
        if not merged:
            return
        for _, value in merged:
            sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    raise self.fail(source, "a `<<` merge key takes a mapping or a list of "
                                    "mappings. Fix: correct the merge.")
        # Mark own keys so duplicates are checked among them only (later wins over merged).
        node.own_count = len(own)  # type: ignore[attr-defined]
        pulled: list[tuple[yaml.Node, yaml.Node]] = []
        for _, value in merged:
            sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
            for source in reversed(sources):
                self._flatten(source)
                pulled = list(source.value) + pulled
        node.value = pulled + own

    def build(self, node: yaml.Node, path: KeyPath, depth: int) -> Any:
        """`depth`: collections around this node (the root has none)."""
        if depth >= MAX_DEPTH and not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"nested deeper than {MAX_DEPTH} levels. Fix: flatten the "
                            "structure.")
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR:
                return node.value
            return self._scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, str(i)), depth + 1) for i, item in enumerate(node.value)]
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, "unsupported YAML node. Fix: use mappings, lists and scalars.")
        self._flatten(node)
        own_from = len(node.value) - getattr(node, "own_count", len(node.value))
        result: dict[str, Any] = {}
        own_seen: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = self._key(key_node, path)
            key_path = (*path, key)
            line = key_node.start_mark.line + 1 if key_node.start_mark else 0
            if index >= own_from:
                if key in own_seen:
                    self.duplicates.append((".".join(key_path), line))
                own_seen.add(key)
            self.lines[self.prefix + key_path if self.prefix else key_path] = line
            result[key] = self.build(value_node, key_path, depth + 1)
        return result

    def _key(self, node: yaml.Node, path: KeyPath) -> str:
        where = ".".join(path) or "the top level"
        if not isinstance(node, yaml.ScalarNode):
            kind = "list" if isinstance(node, yaml.SequenceNode) else "mapping"
            raise self.fail(node, f"a complex key (a {kind} used as a key) under {where}. "
                            "Fix: use a plain string key.", path)
        if node.tag == _STR:
            return node.value
        kind = _KEY_TAGS.get(node.tag, f"a {node.tag.rsplit(':', 1)[-1]} value")
        shown = node.value if len(node.value) <= 20 else node.value[:20] + "..."
        raise self.fail(node, f"key `{shown}` under {where} is read as {kind} (YAML 1.1), "
                        f"not a string. Fix: quote it: \"{shown}\".", path)

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        construct = self.constructor.yaml_constructors.get(node.tag)
        if construct is None:
            raise self.fail(node, f"unsupported YAML tag {node.tag}. Fix: remove the tag.")
        try:
            return construct(self.constructor, node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            raise self.fail(node, f"cannot read a {node.tag.rsplit(':', 1)[-1]} value "
                            f"({type(exc).__name__}). Fix: quote it as a string or correct it.") \
                from None
