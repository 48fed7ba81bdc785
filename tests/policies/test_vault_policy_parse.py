"""policies/packlib.py's Vault policy reader (HCL): the regex-driven scan decides exactly as the
character-by-character reader it replaced, kept below as the reference, on any text made of
what matters to it (quotes, escapes, braces, comment markers, newlines, the words it looks
for) and on policies as configplane writes them. (Why it changed, measured: the old reader's
step per character cost the pack seconds per stack on a fleet's deploy policies of tens of
KiB each: docs/benchmarks.md.)"""

from __future__ import annotations

import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policies.conftest import PACK

sys.path.insert(0, str(PACK))
import packlib

sys.path.remove(str(PACK))


def reference_strip_comments(text: str) -> str:
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif c == "#" or text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def reference_parse_hcl(text: str) -> list[tuple[str, list[str]]]:
    rules, pos = [], 0
    while text[pos:].strip():
        m = packlib._PATH_HEAD.match(text, pos)
        if not m:
            raise packlib.PolicyParseError("expected `path \"...\" { ... }` blocks only")
        depth, i, in_string = 1, m.end(), False
        while i < len(text) and depth:
            c = text[i]
            if in_string:
                if c == "\\":
                    i += 1
                elif c == '"':
                    in_string = False
            elif c == '"':
                in_string = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            i += 1
        if depth:
            raise packlib.PolicyParseError(f'unclosed block for path "{m.group(1)}"')
        body = text[m.end():i - 1]
        caps = [c for group in packlib._CAPS.findall(body) for c in packlib._QUOTED.findall(group)]
        caps += [c for word in packlib._LEGACY.findall(body)
                 for c in packlib._LEGACY_POLICY.get(word, [word])]
        rules.append((m.group(1), caps))
        pos = i
    return rules


def outcome(parse, text: str):
    try:
        return ("rules", parse(text))
    except packlib.PolicyParseError as exc:
        return ("error", str(exc))


PIECES = ['"', "\\", "{", "}", "#", "/", "*", "//", "/*", "*/", "\n", " ", "\t", "\x1f",
          "\u00a0", "path", "capabilities", "=", "[", "]", ",", "policy", "read", "x", "é"]
TEXT = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)
CAPABILITY = st.sampled_from(["read", "list", "create", "update", "delete", "sudo", "deny"])
COMMENT = st.sampled_from(["", "# a note\n", "// a note\n", "/* a { note } */", "/* \" */"])
PATH = st.text(st.sampled_from('ab/*+-_"\\{}# '), min_size=1, max_size=12).map(
    lambda p: p.replace("\\", "\\\\").replace('"', '\\"'))
BLOCK = st.builds(lambda path, caps, before, inside: (
    f'{before}path "{path}" {{\n  {inside}capabilities = [{", ".join(map(repr, caps))}]\n}}\n'
    .replace("'", '"')), PATH, st.lists(CAPABILITY, max_size=4), COMMENT, COMMENT)
POLICY = st.lists(BLOCK, max_size=6).map("".join)


@settings(max_examples=600, deadline=None)
@given(st.one_of(TEXT, POLICY, st.tuples(POLICY, TEXT).map("".join)))
def test_the_reader_decides_as_the_character_by_character_reference(text):
    assert packlib._strip_comments(text) == reference_strip_comments(text)
    stripped = reference_strip_comments(text)
    assert outcome(packlib._parse_hcl, stripped) == outcome(reference_parse_hcl, stripped)
    assert outcome(packlib._parse_hcl, text) == outcome(reference_parse_hcl, text)


def test_a_policy_as_configplane_writes_it_reads_into_its_rules():
    text = ('# configplane: what the deployer may write\npath "auth/token/create" {\n'
            '  capabilities = ["update"]\n}\n/* one */ path "kv/data/a-*" { capabilities = '
            '["create", "read"] policy = "write" }\n')
    assert packlib.parse_vault_policy(text) == [
        ("auth/token/create", ["update"]),
        ("kv/data/a-*", ["create", "read", *packlib._LEGACY_POLICY["write"]])]
