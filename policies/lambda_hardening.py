"""Lambda functions (the rotation function): an allowed runtime, a bounded timeout, no secret
in their environment, and only Secrets Manager of this account may invoke them."""

from __future__ import annotations

from contract import AWS_ACCOUNT_ID
from packlib import UNKNOWN, Reporter, config_schema, for_types, get, num, plain, resource_label
from plaintext_secrets import config_value_findings
from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy
from resource_types import LAMBDA_FUNCTION, LAMBDA_PERMISSION

WHY_FIX_RUNTIME = ("Why: other runtimes are deprecated or unreviewed and stop getting security "
                   "patches. Fix: set runtime to one of the allowed.")
WHY_FIX_TIMEOUT = ("Why: a hung rotation holds a database connection and delays the retry. "
                   "Fix: lower timeout.")
WHY_FIX_SECRET_ENV = ("Why: a rotation function must read secrets from Secrets Manager, never "
                      "carry them. Fix: pass ARNs, not values, and rotate the exposed ones.")
WHY_FIX_NO_SOURCE_ACCOUNT = (
    "Why: any account's Secrets Manager could then call it (the confused-deputy problem). "
    "Fix: set source_account to this environment's account id.")
FIX_ANY_PRINCIPAL = ("Fix: name the service principal (secretsmanager.amazonaws.com) and "
                     "source_account.")
FIX_OTHER_ACCOUNT = "Fix: use {account}."
FIX_NO_SOURCE = "Fix: set one of them."
WHY_FIX_ACTION = ("Why: a permission for a service should allow invoking the function and "
                  "nothing else. Fix: use lambda:InvokeFunction.")

# --- rotation-lambda-hardening --------------------------------------------------------------------


@for_types(LAMBDA_FUNCTION, LAMBDA_PERMISSION)
def rotation_lambda_hardening(args: ResourceValidationArgs,
                              report_violation: ReportViolation) -> None:
    cfg = args.get_config()
    report = Reporter("rotation-lambda-hardening", cfg, report_violation)
    props = plain(args.props)
    label = resource_label(args.resource_type, args.name)
    if args.resource_type == LAMBDA_FUNCTION:
        allowed = list(cfg["allowedRuntimes"])
        runtime = props.get("runtime")
        if runtime is not UNKNOWN and runtime not in allowed:
            shown = f'runtime "{runtime}"' if runtime else "no runtime (a container image?)"
            report(args.name, f"{label} has {shown}; allowed: {', '.join(allowed)}. "
                   f"{WHY_FIX_RUNTIME}")
        timeout = props.get("timeout")
        limit = cfg["maxTimeoutSeconds"]
        if isinstance(timeout, int | float) and timeout > limit:
            report(args.name, f"{label} has a timeout of {num(timeout)} s; at most "
                   f"{num(limit)} s allowed. {WHY_FIX_TIMEOUT}")
        variables = get(props, "environment", "variables", default={}) or {}
        secret_vars = sorted(
            var for var, value in (variables.items() if isinstance(variables, dict) else ())
            if config_value_findings(var, var, value))
        if secret_vars:
            report(args.name, f"{label}: environment variable(s) {', '.join(secret_vars)} look "
                   f"like credentials. {WHY_FIX_SECRET_ENV}", waivable=False)
    else:  # LAMBDA_PERMISSION
        principal = props.get("principal")
        if principal is UNKNOWN:
            return
        account = cfg.get("accountId")
        if principal == "*":
            report(args.name, f"{label} lets any principal invoke the function. "
                   f"{FIX_ANY_PRINCIPAL}", waivable=False)
        elif principal == "secretsmanager.amazonaws.com":
            source = props.get("sourceAccount")
            if source is UNKNOWN:
                pass
            elif not source:
                report(args.name, f"{label} lets Secrets Manager invoke the function without "
                       f"source_account. {WHY_FIX_NO_SOURCE_ACCOUNT}")
            elif account and source != account:
                report(args.name, f"{label}: source_account {source} is not this "
                       f"environment's account {account}. "
                       f"{FIX_OTHER_ACCOUNT.format(account=account)}")
        elif str(principal).endswith(".amazonaws.com") and not (
                props.get("sourceAccount") or props.get("sourceArn")):
            report(args.name, f"{label} lets {principal} invoke the function without "
                   f"source_account or source_arn (confused deputy). {FIX_NO_SOURCE}")
        action = props.get("action")
        if action and action not in (UNKNOWN, "lambda:InvokeFunction"):
            report(args.name, f'{label} grants action "{action}". {WHY_FIX_ACTION}')


POLICIES = [
    ResourceValidationPolicy(
        name="rotation-lambda-hardening",
        description="Lambda functions use an allowed runtime and a bounded timeout, carry "
                    "no secret, and only Secrets Manager of this account may invoke them.",
        validate=rotation_lambda_hardening,
        config_schema=config_schema({
            "allowedRuntimes": {"type": "array", "items": {"type": "string"},
                                "default": ["python3.12", "python3.13"]},
            "maxTimeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 900,
                                  "default": 300},
            "accountId": {"type": "string", "pattern": AWS_ACCOUNT_ID},
        }, waivable=True),
    ),
]
