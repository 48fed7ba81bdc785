"""The plan's own checks, run beside the pack (not pack policies): a secret value that reaches
a resource input unmarked, and a URN registered twice. Messages name the property and the
resource, never the value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import re2

from configplane.offline.results import PlannedResource
from configplane.redaction import MIN_SECRET_LEN, marked_strings, sort_strings

SECRET_MARKING_CHECK = "configplane-secret-marking"  # the plan's own check, not a pack policy
UNIQUE_URN_CHECK = "configplane-unique-urns"  # the engine refuses a URN registered twice


def unmarked_secret_violations(resources: Sequence[PlannedResource],
                               config_secrets: list[str]) -> list[dict[str, str]]:
    """A value that is secret somewhere (config, or marked on any resource) but reaches a
    resource input unmarked. The message names the property, never the value."""
    secret_texts = list(config_secrets)
    unmarked: list[list[str]] = []
    for resource in resources:  # every input walked once, for both questions
        texts: list[str] = []
        sort_strings(resource.inputs, texts, secret_texts)
        sort_strings(resource.outputs, None, secret_texts)
        unmarked.append(texts)
    secrets = {s for s in secret_texts if len(s) >= MIN_SECRET_LEN}
    search = _SecretSearch(secrets)
    violations = []
    for resource, texts in zip(resources, unmarked, strict=True):
        if not any(search.found_in(text) for text in texts):
            continue
        for path, text, marked in marked_strings(resource.inputs):  # where, for the message
            if not marked and search.found_in(text):
                violations.append({
                    "policy": SECRET_MARKING_CHECK,
                    "urn": resource.urn,
                    "level": "mandatory",
                    "message": f"input `{path}` of {resource.name} carries a secret value that is "
                               "not marked secret, so it would be stored and shown in plaintext. "
                               "Fix: wrap it with pulumi.Output.secret() where the component "
                               "builds it.",
                })
    return violations


def duplicate_urn_violations(resources: Sequence[PlannedResource]) -> list[dict[str, str]]:
    """A URN registered twice: `pulumi preview` fails with "Duplicate resource URN"; the mocks
    would not. `validate` reports the known causes by name; this catches any other."""
    seen: set[str] = set()
    violations = []
    for resource in resources:
        if resource.urn in seen:
            violations.append({
                "policy": UNIQUE_URN_CHECK, "urn": resource.urn, "level": "mandatory",
                "message": f"{resource.name} is declared twice (same URN): `pulumi preview` "
                           "would fail. Fix: rename the service, tenant or secret whose name "
                           "collides once normalised (lowercase, '_' becomes '-')."})
        seen.add(resource.urn)
    return violations


_HEAD = 16  # the characters of a secret an automaton looks for; a longer one is then confirmed
_CHUNK_CHARS = 16 * 1024  # the heads of one RE2 set: far inside its memory bound


class _SecretSearch:
    """Whether a text contains any of many secrets, in time linear in the text: the secrets'
    heads (their first _HEAD characters) in RE2 sets, automata that tell in one scan of a text
    which heads occur in it, whatever the number of secrets (a backtracking `re` alternation,
    or testing each secret, grows with the fleet's count of secrets). Each head found is
    confirmed by looking for the secrets it begins. A secret never enters an automaton whole:
    a long repetitive one would outgrow RE2's DFA."""

    def __init__(self, secrets: set[str]) -> None:
        self._by_head: dict[str, list[str]] = {}
        for secret in sorted(secrets):
            self._by_head.setdefault(secret[:_HEAD], []).append(secret)
        self._sets: list[tuple[list[str], Any]] = []
        chunk: list[str] = []
        size = 0
        for head in self._by_head:
            chunk.append(head)
            size += len(head)
            if size >= _CHUNK_CHARS:
                self._sets.append((chunk, self._automaton(chunk)))
                chunk, size = [], 0
        if chunk:
            self._sets.append((chunk, self._automaton(chunk)))

    @staticmethod
    def _automaton(heads: list[str]) -> Any:
        options = re2.Options()
        options.log_errors = False  # RE2's error log would quote the pattern: the secrets
        options.max_mem = 64 << 20
        automaton = re2.Set.SearchSet(options)
        for head in heads:
            automaton.Add(re2.escape(head))
        automaton.Compile()
        return automaton

    def found_in(self, text: str) -> bool:
        # Match: the heads found, None for none (with this memory RE2's DFA cannot fail)
        return any(secret in text for heads, automaton in self._sets
                   for index in automaton.Match(text) or ()
                   for secret in self._by_head[heads[index]])
