"""How the program runs under the plan's harness (configplane.offline.plan): on a thread of its
own, so that a caller with an event loop running can plan; and without the stack trace the
SDK records per resource for the engine's messages, which the mock monitor throws away."""

from __future__ import annotations

import asyncio
import threading

from pulumi.runtime import resource as sdk_resource

from configplane.offline import PlanMocks, run_plan
from tests.conftest import REPO


def resource_keys(plan):
    return sorted((r.urn, r.type) for r in plan.resources)


def test_a_caller_with_a_running_event_loop_plans_as_any_other():
    async def from_async_code():
        asyncio.get_running_loop()  # the caller's loop runs while the program runs
        return run_plan(REPO, "dev")

    planned = []  # asyncio.run on a thread of the test's own: it leaves that thread loopless
    caller = threading.Thread(target=lambda: planned.append(asyncio.run(from_async_code())))
    caller.start()
    caller.join(timeout=600)
    assert len(planned) == 1
    assert resource_keys(planned[0]) == resource_keys(run_plan(REPO, "dev"))


class Base:
    """Three constructors deep, as a resource's (Resource < CustomResource < the provider's
    class): the SDK records the frames above the third `__init__`."""

    def __init__(self):
        self.frames = len(sdk_resource._get_stack_trace().frames)


class Middle(Base):
    def __init__(self):
        super().__init__()


class Leaf(Middle):
    def __init__(self):
        super().__init__()


class FramesSeen(PlanMocks):
    """Mocks that ask the SDK, as each resource registers, what stack trace it would record."""

    frames: list[int]

    def new_resource(self, args):
        self.frames.append(Leaf().frames)
        return super().new_resource(args)


def test_no_stack_trace_is_recorded_during_a_run_and_the_sdk_records_them_again_after():
    recorded = sdk_resource._get_stack_trace  # the pinned SDK has it: an upgrade shows here
    assert Leaf().frames > 0
    probe = run_plan(REPO, "dev")  # for the model the mocks need
    mocks = FramesSeen(probe.model)
    mocks.frames = []
    plan = run_plan(REPO, "dev", mocks=mocks)
    assert len(mocks.frames) == len(plan.resources) > 0
    assert set(mocks.frames) == {0}
    assert sdk_resource._get_stack_trace is recorded and Leaf().frames > 0
    assert resource_keys(plan) == resource_keys(probe)
