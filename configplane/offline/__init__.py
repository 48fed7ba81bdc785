"""The offline plan: the project's program under the Pulumi SDK's mocks, and the real policy
pack driven as a process over the Analyzer gRPC protocol."""

from configplane.offline.compare import changed_paths, compare, compare_plans, resource_owners, snapshot
from configplane.offline.fleet import FleetPlan, FleetSelectionError, plan_environment, select_stacks
from configplane.offline.marshal import (
    ARCHIVE_SIG,
    ASSET_SIG,
    OUTPUT_SIG,
    RESOURCE_SIG,
    SIG_KEY,
    UNKNOWN,
    marshal_properties,
    secret,
)
from configplane.offline.plan import (
    Plan,
    PlanMocks,
    analyzed_resources,
    collector_paused,
    plan_config,
    project_imports,
    redact,
    run_plan,
    run_program,
)
from configplane.offline.policyconfig import PolicyConfig, default_policy_config, load_policy_config_file
from configplane.offline.results import (
    AnalyzedResource,
    PlannedResource,
    PolicyConfigError,
    PolicyPackError,
    PolicyReport,
    Remediation,
    ResourceOptions,
    Violation,
)
from configplane.offline.session import PolicyPackSession, run_policy_pack
from configplane.offline.split import MIN_PULUMI, SplitPlan, StackMove, split_environment, split_of

__all__ = [
    "analyzed_resources",
    "AnalyzedResource",
    "ARCHIVE_SIG",
    "ASSET_SIG",
    "changed_paths",
    "collector_paused",
    "compare",
    "compare_plans",
    "default_policy_config",
    "FleetPlan",
    "FleetSelectionError",
    "load_policy_config_file",
    "marshal_properties",
    "MIN_PULUMI",
    "OUTPUT_SIG",
    "Plan",
    "plan_config",
    "plan_environment",
    "PlanMocks",
    "PlannedResource",
    "PolicyConfig",
    "PolicyConfigError",
    "PolicyPackError",
    "PolicyPackSession",
    "PolicyReport",
    "project_imports",
    "redact",
    "Remediation",
    "resource_owners",
    "RESOURCE_SIG",
    "ResourceOptions",
    "run_plan",
    "run_policy_pack",
    "run_program",
    "secret",
    "select_stacks",
    "SIG_KEY",
    "snapshot",
    "split_environment",
    "split_of",
    "SplitPlan",
    "StackMove",
    "UNKNOWN",
    "Violation",
]
