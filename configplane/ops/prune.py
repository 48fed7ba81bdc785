"""Which config generations `configplane prune` deletes: per ConfigMap, all but the current one,
the newest N and those a workload (or its rollout history) still uses.

Input is configplane.ops.generations' reading of the cluster; this module says what to delete and
never calls kubectl.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Any

from configplane.ops.generations import Generation, newest_first


@dataclass(frozen=True)
class PruneDecision:
    generation: Generation
    keep: bool
    reason: str  # current | newest N | in use | beyond keep

    def as_dict(self) -> dict[str, Any]:
        return {**self.generation.as_dict(), "keep": self.keep, "reason": self.reason}


def prune_decisions(generations: Iterable[Generation], current: Mapping[tuple[str, str], str],
                    keep: int, used: Set[tuple[str, str]] = frozenset()) -> list[PruneDecision]:
    """Per ConfigMap the stack declares (`current`: (namespace, base name) -> its hash): keep
    the current generation, the `keep` newest and any a workload still uses; everything older
    goes. Generations of anything else (another stack's, a namespace the stack does not own)
    are not the stack's to decide: they are left out. Newest first within each group."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    groups: dict[tuple[str, str], list[Generation]] = {}
    for g in generations:
        if g.group in current:
            groups.setdefault(g.group, []).append(g)
    decisions = []
    for group in sorted(groups):
        for rank, g in enumerate(newest_first(groups[group])):
            if current.get(group) == g.hash:
                decisions.append(PruneDecision(g, True, "current"))
            elif rank < keep:
                decisions.append(PruneDecision(g, True, f"newest {keep}"))
            elif (g.namespace, g.name) in used:
                decisions.append(PruneDecision(g, True, "in use"))
            else:
                decisions.append(PruneDecision(g, False, "beyond keep"))
    return decisions


def delete_command(g: Generation) -> list[str]:
    """The argv that deletes one generation (print it with shlex.join)."""
    return ["kubectl", "delete", "configmap", g.name, "-n", g.namespace]
