"""What a rotation setup must satisfy: the one home of the rules that `validate` applies to the
stack document and `components.rotation.SecretRotatorArgs` applies to its arguments, so the
two can never disagree (stdlib only)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from configplane.contract import DATABASE_ROTATION_STRATEGIES, ROTATION_STRATEGIES
from configplane.ownership import rotated_name

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
MAX_ENVIRONMENT = 43
# Secrets Manager's rotation schedules: rate(N unit) or a six-field cron expression.
RATE = re.compile(r"rate\(([1-9][0-9]{0,3}) (minute|minutes|hour|hours|day|days)\)")
CRON = re.compile(r"cron\((\S+ ){5}\S+\)")


# What each rule is about: callers pick problems by code, never by their wording.
ENVIRONMENT_NAME = "environment-name"
NO_SECRETS = "no-secrets"
SCHEDULE_CHOICE = "schedule-choice"  # exactly one of schedule_days and schedule_expression
SCHEDULE_DAYS = "schedule-days"
SCHEDULE_EXPRESSION = "schedule-expression"
ROTATION_NAME = "rotation-name"
ROTATION_NAME_SHARED = "rotation-name-shared"
STRATEGY = "strategy"
MASTER_SECRET_MISSING = "master-secret-missing"
MASTER_SECRET_UNUSED = "master-secret-unused"
NETWORK_PAIR = "network-pair"  # subnet_ids and security_group_ids together
DATABASE_NETWORK = "database-network"
SCHEDULE_CODES = frozenset({SCHEDULE_CHOICE, SCHEDULE_DAYS, SCHEDULE_EXPRESSION})
NETWORK_CODES = frozenset({NETWORK_PAIR, DATABASE_NETWORK})
CODES = frozenset({ENVIRONMENT_NAME, NO_SECRETS, *SCHEDULE_CODES, ROTATION_NAME,
                   ROTATION_NAME_SHARED, STRATEGY, MASTER_SECRET_MISSING, MASTER_SECRET_UNUSED,
                   *NETWORK_CODES})


@dataclass(frozen=True)
class RotationProblem:
    """One broken rule: its `code`, the rotation name of the secret it concerns (None: the
    whole setup) and a value-free message."""

    code: str
    secret: str | None
    message: str


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
                      ) -> list[RotationProblem]:
    """The problems of a rotation setup. `secrets` are (name, strategy, has master secret)."""
    problems: list[RotationProblem] = []
    if not NAME.fullmatch(environment) or len(environment) > MAX_ENVIRONMENT:
        problems.append(RotationProblem(
            ENVIRONMENT_NAME, None, "environment must be letters, digits and '-', at most "
            f"{MAX_ENVIRONMENT} characters"))
    if not secrets:
        problems.append(RotationProblem(NO_SECRETS, None, "secrets is empty; build a "
                                        "SecretRotator only when a secret rotates"))
    problems += _schedule_problems(schedule_days, schedule_expression)
    names = [name for name, _, _ in secrets]
    for name, strategy, has_master in secrets:
        problems += _secret_problems(name, strategy, has_master, names.count(name) > 1)
    if bool(subnet_ids) != bool(security_group_ids):
        problems.append(RotationProblem(NETWORK_PAIR, None, "set both subnet_ids and "
                                        "security_group_ids, or neither"))
    if any(s in DATABASE_ROTATION_STRATEGIES for _, s, _ in secrets) and not subnet_ids:
        problems.append(RotationProblem(
            DATABASE_NETWORK, None, "database secrets need subnet_ids and security_group_ids "
            "so the function can reach the database"))
    return problems


def _schedule_problems(schedule_days: int | None,
                       schedule_expression: str | None) -> list[RotationProblem]:
    """The schedule's problems: exactly one of days and expression, each well-formed."""
    problems = []
    if (schedule_days is None) == (schedule_expression is None):
        problems.append(RotationProblem(SCHEDULE_CHOICE, None, "set exactly one of "
                                        "schedule_days and schedule_expression"))
    if schedule_days is not None and not 1 <= schedule_days <= 1000:
        problems.append(RotationProblem(SCHEDULE_DAYS, None,
                                        "schedule_days must be from 1 to 1000"))
    if schedule_expression is not None:
        problem = schedule_problem(schedule_expression)
        if problem:
            problems.append(RotationProblem(SCHEDULE_EXPRESSION, None, problem))
    return problems


def _secret_problems(name: str, strategy: str, has_master: bool,
                     shared: bool) -> list[RotationProblem]:
    """One rotated secret's problems (`shared`: another secret has its rotation name)."""
    problems = []
    if not NAME.fullmatch(name):
        problems.append(RotationProblem(
            ROTATION_NAME, name, f"rotation name `{name}` must be letters, digits and '-'"))
    elif shared:
        problems.append(RotationProblem(
            ROTATION_NAME_SHARED, name, f"rotation name `{name}` is used by more than one "
            "secret (names are normalised: lowercase, '_' becomes '-')"))
    if strategy not in ROTATION_STRATEGIES:
        problems.append(RotationProblem(
            STRATEGY, name, f"strategy must be one of {', '.join(ROTATION_STRATEGIES)}"))
    alternating = strategy == "postgres-alternating-users"
    if alternating and not has_master:
        problems.append(RotationProblem(MASTER_SECRET_MISSING, name,
                                        "postgres-alternating-users needs master_secret_arn"))
    if not alternating and has_master:
        problems.append(RotationProblem(MASTER_SECRET_UNUSED, name,
                                        "only postgres-alternating-users uses a master secret"))
    return problems
