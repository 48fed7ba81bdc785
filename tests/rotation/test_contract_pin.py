"""The rotation Lambda ships as a standalone archive, so it keeps its own copy of the rotation
contract (the tags it reads, the strategies it knows). This pins that copy to the one home,
configplane/contract.py, which the program writes the tags from."""

from __future__ import annotations

import handler

from configplane import contract


def test_the_lambda_reads_the_tags_the_program_writes() -> None:
    assert handler.TAG_PREFIX == contract.ROTATION_TAG_PREFIX
    assert handler.STRATEGY_TAG == contract.ROTATION_STRATEGY_TAG
    assert handler.FIELD_TAG == contract.ROTATION_FIELD_TAG


def test_the_lambda_knows_exactly_the_strategies_the_program_accepts() -> None:
    assert tuple(handler.STRATEGY_NAMES) == contract.ROTATION_STRATEGIES
