"""What a rotation setup must satisfy: the one home of the rules that `validate` applies to the
stack document and `components.rotation.SecretRotatorArgs` applies to its arguments, so the
two can never disagree (stdlib only)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from configplane.contract import DATABASE_ROTATION_STRATEGIES, ROTATION_STRATEGIES
from configplane.ownership import rotated_name

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
MAX_ENVIRONMENT = 43
# Secrets Manager's rotation schedules: rate(N unit) or a six-field cron expression.
RATE = re.compile(r"rate\(([1-9][0-9]{0,3}) (minute|minutes|hour|hours|day|days)\)")
CRON = re.compile(r"cron\((\S+ ){5}\S+\)")


def rotated_secrets(service: str, secrets: Mapping[str, Any]) -> dict[str, str]:
    """The secrets of one service that its rotation Lambda rotates, each with its rotation
    name: those configplane keeps in Secrets Manager (not references) with `rotation`. The
    program declares rotation for exactly these and `validate` checks exactly these."""
    return {key: rotated_name(service, key) for key, spec in secrets.items()
            if spec.store == "aws" and spec.rotation and spec.source != "reference"}


def schedule_problem(expression: str) -> str | None:
    if RATE.fullmatch(expression):
        return None
    if CRON.fullmatch(expression):
        return None
    return ("schedule_expression must be `rate(<n> days|hours|minutes)` or a six-field "
            "`cron(<min> <hour> <day> <month> <weekday> <year>)`")


def rotation_problems(environment: str, secrets: Sequence[tuple[str, str, bool]],
                      schedule_days: int | None, schedule_expression: str | None,
                      subnet_ids: Sequence[object], security_group_ids: Sequence[object],
                      ) -> list[tuple[str, str]]:
    """(where, problem) for a rotation setup. `secrets` are (name, strategy, has master
    secret); `where` is `environment`, `schedule`, `network` or `secret:<name>`."""
    problems: list[tuple[str, str]] = []
    if not NAME.fullmatch(environment) or len(environment) > MAX_ENVIRONMENT:
        problems.append(("environment", "environment must be letters, digits and '-', at most "
                         f"{MAX_ENVIRONMENT} characters"))
    if not secrets:
        problems.append(("secrets", "secrets is empty; build a SecretRotator only when a "
                         "secret rotates"))
    if (schedule_days is None) == (schedule_expression is None):
        problems.append(("schedule", "set exactly one of schedule_days and schedule_expression"))
    if schedule_days is not None and not 1 <= schedule_days <= 1000:
        problems.append(("schedule", "schedule_days must be from 1 to 1000"))
    if schedule_expression is not None:
        problem = schedule_problem(schedule_expression)
        if problem:
            problems.append(("schedule", problem))
    names = [name for name, _, _ in secrets]
    for name, strategy, has_master in secrets:
        where = f"secret:{name}"
        if not NAME.fullmatch(name):
            problems.append((where, f"rotation name `{name}` must be letters, digits and '-'"))
        elif names.count(name) > 1:
            problems.append((where, f"rotation name `{name}` is used by more than one secret "
                             "(names are normalised: lowercase, '_' becomes '-')"))
        if strategy not in ROTATION_STRATEGIES:
            problems.append((where, f"strategy must be one of {', '.join(ROTATION_STRATEGIES)}"))
        alternating = strategy == "postgres-alternating-users"
        if alternating and not has_master:
            problems.append((where, "postgres-alternating-users needs master_secret_arn"))
        if not alternating and has_master:
            problems.append((where, "only postgres-alternating-users uses a master secret"))
    if bool(subnet_ids) != bool(security_group_ids):
        problems.append(("network", "set both subnet_ids and security_group_ids, or neither"))
    if any(s in DATABASE_ROTATION_STRATEGIES for _, s, _ in secrets) and not subnet_ids:
        problems.append(("network", "database secrets need subnet_ids and security_group_ids so "
                         "the function can reach the database"))
    return problems
