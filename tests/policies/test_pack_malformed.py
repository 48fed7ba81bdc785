"""Every policy of the pack reports or skips a resource whose properties have an unexpected
shape; none fails. `pulumi preview` hands the pack what the engine knows, and a drift check's
preview hands it what the cloud returned: an unknown, a missing field, a value of another
type. A policy that raises fails the whole preview (PolicyPackError here)."""

from __future__ import annotations

import dataclasses
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configplane.redaction import is_secret_wrapper
from tests.documents import paths
from tests.policies.test_identities import JUNK, replaced


def junk_slots(props: dict) -> list[tuple]:
    """Every path of `props` a value can take another shape at: not inside a secret's
    wrapper (the engine's own envelope, never malformed)."""
    def inside_secret(path: tuple) -> bool:
        node = props
        for step in path[:-1]:
            node = node[step]
            if is_secret_wrapper(node):
                return True
        return False

    return [path for path in list(paths(props))[1:] if not inside_secret(path)]


@settings(max_examples=int(os.environ.get("PACK_FUZZ", 30)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_malformed_properties_never_break_a_policy(prod, good, data):
    candidates = [r for r in good if junk_slots(dict(r.outputs))]
    plan = good
    for _ in range(data.draw(st.integers(1, 6))):
        victim = data.draw(st.sampled_from(candidates))
        victim = next(r for r in plan if r.urn == victim.urn)
        path = data.draw(st.sampled_from(junk_slots(dict(victim.outputs))))
        junk = data.draw(JUNK)
        plan = [dataclasses.replace(r, inputs=replaced(dict(r.outputs), path, junk),
                                    outputs=replaced(dict(r.outputs), path, junk))
                if r.urn == victim.urn else r for r in plan]
    prod.run(plan)  # raises PolicyPackError if a policy fails
