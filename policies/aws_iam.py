"""IAM policies, roles and attachments name the secrets and keys they grant: no wildcard
actions, no secret or key on `*`, no broad AWS-managed policy, no public trust."""

from __future__ import annotations

from typing import Any

from packlib import (
    PolicyParseError,
    Reporter,
    as_list,
    config_schema,
    for_types,
    iam_statements,
    plain,
    resource_label,
)
from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy
from resource_types import IAM_ATTACHMENTS, IAM_POLICIES, IAM_ROLE

# --- iam-least-privilege --------------------------------------------------------------------------

FIX_UNPARSEABLE = "Fix: give a JSON policy document with a Statement list."
FIX_NOT_ACTION = "Fix: list the actions and resources granted."
FIX_ANY_PRINCIPAL = "Fix: name the service principal (lambda.amazonaws.com)."
WHY_FIX_BROAD_MANAGED = ("Why: it grants far more than any configplane function needs. Fix: "
                         "attach a policy that names the secrets and keys used.")
WHY_FIX_WILDCARD_ACTION = ("Why: they grant every current and future action of the service. "
                           "Fix: list the actions needed.")
WHY_FIX_EVERY_SECRET = ("Why: the function could read or change any secret of the account. "
                        "Fix: name the secrets' ARNs.")
WHY_FIX_EVERY_KEY = ("Why: the function could decrypt anything encrypted with any key it may "
                     "use. Fix: name the key, or add a condition such as "
                     "kms:EncryptionContext:SecretARN.")
WHY_FIX_PASS_ROLE = ("Why: it lets the holder hand any role to a service it controls. Fix: "
                     "name the role's ARN.")
RESOURCE_LESS = {"secretsmanager:getrandompassword"}  # AWS supports only "*" for these
BROAD_MANAGED = {"AdministratorAccess", "PowerUserAccess", "IAMFullAccess",
                 "SecretsManagerReadWrite", "AWSKeyManagementServicePowerUser"}


@for_types(IAM_POLICIES, IAM_ROLE, IAM_ATTACHMENTS)
def iam_least_privilege(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    report = Reporter("iam-least-privilege", args.get_config(), report_violation)
    documents: list[tuple[str, Any, bool]] = []  # (where, document, is trust policy)
    if args.resource_type in IAM_POLICIES:
        documents.append(("policy", props.get("policy"), False))
    elif args.resource_type == IAM_ROLE:
        documents.append(("assumeRolePolicy", props.get("assumeRolePolicy"), True))
        for i, inline in enumerate(props.get("inlinePolicies") or []):
            if isinstance(inline, dict):
                documents.append((f"inlinePolicies[{i}]", inline.get("policy"), False))
        for arn in props.get("managedPolicyArns") or []:
            _check_managed(args.name, label, arn, report)
    else:  # IAM_ATTACHMENTS
        _check_managed(args.name, label, props.get("policyArn"), report)
    for where, document, trust in documents:
        try:
            statements = iam_statements(document)
        except PolicyParseError as e:
            report(args.name, f"{label}: {where} cannot be checked: {e}. {FIX_UNPARSEABLE}")
            continue
        for n, statement in enumerate(statements or []):
            for problem in (_trust_problems if trust else _statement_problems)(statement):
                report(args.name, f"{label}: {where} statement {n}: {problem}")


def _check_managed(name: str, label: str, arn: Any, report: Reporter) -> None:
    if isinstance(arn, str) and arn.rsplit("/", 1)[-1] in BROAD_MANAGED \
            and arn.startswith("arn:aws:iam::aws:policy/"):
        report(name, f"{label} attaches the AWS-managed policy {arn.rsplit('/', 1)[-1]}. "
               f"{WHY_FIX_BROAD_MANAGED}")


def _statement_problems(statement: dict) -> list[str]:
    if statement.get("Effect") != "Allow":
        return []
    if "NotAction" in statement or "NotResource" in statement:
        return [f"Allow with NotAction/NotResource grants everything not listed. {FIX_NOT_ACTION}"]
    problems = []
    actions = [str(a) for a in as_list(statement.get("Action"))]
    resources = [str(r) for r in as_list(statement.get("Resource"))]
    wild = [a for a in actions if a == "*" or a.endswith(":*")]
    if wild:
        problems.append(f"wildcard action(s) {', '.join(wild)}. {WHY_FIX_WILDCARD_ACTION}")
    if "*" in resources:
        secret_actions = sorted(a for a in actions if a.lower().startswith("secretsmanager:")
                                and a.lower() not in RESOURCE_LESS)
        if secret_actions:
            problems.append(f"{', '.join(secret_actions)} on every secret (Resource \"*\"). "
                            f"{WHY_FIX_EVERY_SECRET}")
        kms = sorted(a for a in actions if a.lower().startswith("kms:"))
        if kms and not statement.get("Condition"):
            problems.append(f"{', '.join(kms)} on every key without a Condition. "
                            f"{WHY_FIX_EVERY_KEY}")
        if "iam:passrole" in (a.lower() for a in actions):
            problems.append(f"iam:PassRole on every role. {WHY_FIX_PASS_ROLE}")
    return problems


def _trust_problems(statement: dict) -> list[str]:
    if statement.get("Effect") != "Allow":
        return []
    principal = statement.get("Principal")
    aws = principal.get("AWS") if isinstance(principal, dict) else principal
    if principal == "*" or "*" in as_list(aws):
        return [f"anyone may assume the role (Principal \"*\"). {FIX_ANY_PRINCIPAL}"]
    return []


POLICIES = [
    ResourceValidationPolicy(
        name="iam-least-privilege",
        description="IAM policies name the secrets and keys they grant; no wildcard "
                    "actions, no public trust.",
        validate=iam_least_privilege,
        config_schema=config_schema(waivable=True),
    ),
]
