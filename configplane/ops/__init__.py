"""Operations on a stack: drift reports, config generations (prune, rollback), parity, explain,
import, migrate and CODEOWNERS."""

from configplane.ops.affected import (
    MATRIX_LIMIT,
    Affected,
    AffectedError,
    AffectedStack,
    Scope,
    affected,
    every_stack,
    scope_of,
    select,
)
from configplane.ops.drift import (
    CONFIG_CHANGED,
    CREATION,
    DELETION,
    DRIFT,
    EXIT_DRIFT,
    EXIT_ERROR,
    EXIT_OK,
    OUTSIDE,
    REPLACEMENT,
    SECRET_ROTATED,
    DriftReport,
    build_report,
)
from configplane.ops.drift_input import EXPECTED, DriftInputError, parse_events, parse_preview, preview_schema
from configplane.ops.explain import ExplainError, explain
from configplane.ops.generations import (
    LISTING_COMMAND,
    WORKLOADS_COMMAND,
    Generation,
    ListingError,
    in_use,
    parse_configmaps,
    parse_workloads,
)
from configplane.ops.gitbase import (
    BaseCommit,
    GitRefError,
    branch_point,
    changed_files,
    materialise,
    resolve_base,
)
from configplane.ops.importer.entry import ImportProblem
from configplane.ops.importer.envfile import read_dotenv
from configplane.ops.importer.proposal import (
    STORES,
    ImportProposal,
    config_key_for,
    emit_value,
    plan_import,
    read_input,
)
from configplane.ops.importer.result import catalog_text, import_edits, result_problems
from configplane.ops.importer.yamledit import add_declarations, add_grants
from configplane.ops.migrate import MigrationError, plan_migration
from configplane.ops.operator import (
    MANAGED,
    OperatorError,
    Source,
    operator_objects,
    role_template_problem,
)
from configplane.ops.owners import CODEOWNERS, OwnersError, codeowners
from configplane.ops.parity import PARITY_KEY, ParityConfigError, compare, load_expectations
from configplane.ops.prune import delete_command, prune_decisions
from configplane.ops.pulumi_paths import parse_path, urn_parts
from configplane.ops.rollback import RollbackError, rollback_commands

__all__ = [
    "MANAGED",
    "OperatorError",
    "Source",
    "operator_objects",
    "role_template_problem",
    "MATRIX_LIMIT",
    "Affected",
    "AffectedError",
    "AffectedStack",
    "Scope",
    "affected",
    "every_stack",
    "scope_of",
    "select",
    "BaseCommit",
    "branch_point",
    "changed_files",
    "GitRefError",
    "materialise",
    "resolve_base",
    "add_declarations",
    "add_grants",
    "build_report",
    "catalog_text",
    "CODEOWNERS",
    "codeowners",
    "compare",
    "CONFIG_CHANGED",
    "config_key_for",
    "CREATION",
    "delete_command",
    "DELETION",
    "DRIFT",
    "DriftInputError",
    "DriftReport",
    "emit_value",
    "EXIT_DRIFT",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXPECTED",
    "explain",
    "ExplainError",
    "Generation",
    "import_edits",
    "ImportProblem",
    "ImportProposal",
    "in_use",
    "LISTING_COMMAND",
    "ListingError",
    "load_expectations",
    "MigrationError",
    "OUTSIDE",
    "OwnersError",
    "PARITY_KEY",
    "ParityConfigError",
    "parse_configmaps",
    "parse_events",
    "parse_path",
    "parse_preview",
    "parse_workloads",
    "plan_import",
    "plan_migration",
    "preview_schema",
    "prune_decisions",
    "read_dotenv",
    "read_input",
    "REPLACEMENT",
    "result_problems",
    "rollback_commands",
    "RollbackError",
    "SECRET_ROTATED",
    "STORES",
    "urn_parts",
    "WORKLOADS_COMMAND",
]
