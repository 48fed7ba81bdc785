"""Everything that needs no program: the validation pipeline, the stack and service checks,
the config-size budget, and loading a stack or every problem that keeps it from loading."""

from configplane.validation.configsize import (
    CONFIG_BUDGET,
    ENV_NAME,
    MAX_ARG_STRLEN,
    cli_config,
    config_size,
    go_json,
)
from configplane.validation.load import (
    issues_of,
    load_or_issues,
    run_issues,
    stack_file_problem,
    undecodable,
)
from configplane.validation.pipeline import load_stack
from configplane.validation.stack_checks import looks_like_ciphertext

__all__ = [
    "cli_config",
    "CONFIG_BUDGET",
    "config_size",
    "ENV_NAME",
    "go_json",
    "issues_of",
    "load_or_issues",
    "run_issues",
    "load_stack",
    "looks_like_ciphertext",
    "MAX_ARG_STRLEN",
    "stack_file_problem",
    "undecodable",
]
