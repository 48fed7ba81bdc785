"""rotation-lambda-hardening: the rotation Lambda and who may invoke it
(policies/lambda_hardening.py)."""

from __future__ import annotations

from tests.policies.builders import (
    CANARY,
    lambda_function,
    only,
    permission,
)


def test_rotation_lambda_hardening(prod):
    resources = [
        lambda_function("good-fn"),
        lambda_function("old-fn", runtime="python3.8", timeout=900,
                        variables={"DB_PASSWORD": f"Zq8{CANARY}x", "LOG_LEVEL": "INFO"}),
        lambda_function("image-fn", runtime=None, timeout=None),  # property missing
        permission("good-perm"),
        permission("no-source", source_account=None),
        permission("other-account", source_account="444444444444"),
        permission("public", principal="*"),
        permission("s3-perm", principal="s3.amazonaws.com", source_account=None),
        permission("s3-scoped", principal="s3.amazonaws.com", source_account=None,
                   sourceArn="arn:aws:s3:::shop-prod-uploads"),
        permission("wide-action", action="lambda:*"),
        permission("no-principal", principal=None),  # property missing
    ]
    runtime_why = ("Why: other runtimes are deprecated or unreviewed and stop getting security "
                   "patches. Fix: set runtime to one of the allowed.")
    assert only("rotation-lambda-hardening", prod.violations(resources)) == [
        ("rotation-lambda-hardening", name, "mandatory", text) for name, text in [
            ("old-fn", 'Function "old-fn" has runtime "python3.8"; allowed: python3.12, '
                       f"python3.13. {runtime_why}"),
            ("old-fn", 'Function "old-fn" has a timeout of 900 s; at most 300 s allowed. Why: a '
                       "hung rotation holds a database connection and delays the retry. Fix: "
                       "lower timeout."),
            ("old-fn", 'Function "old-fn": environment variable(s) DB_PASSWORD look like '
                       "credentials. Why: a rotation function must read secrets from Secrets "
                       "Manager, never carry them. Fix: pass ARNs, not values, and rotate the "
                       "exposed ones."),
            ("image-fn", 'Function "image-fn" has no runtime (a container image?); allowed: '
                         f"python3.12, python3.13. {runtime_why}"),
            ("no-source", 'Permission "no-source" lets Secrets Manager invoke the function '
                          "without source_account. Why: any account's Secrets Manager could "
                          "then call it (the confused-deputy problem). Fix: set source_account "
                          "to this environment's account id."),
            ("other-account", 'Permission "other-account": source_account 444444444444 is not '
                              "this environment's account 333333333333. Fix: use 333333333333."),
            ("public", 'Permission "public" lets any principal invoke the function. Fix: name '
                       "the service principal (secretsmanager.amazonaws.com) and "
                       "source_account."),
            ("s3-perm", 'Permission "s3-perm" lets s3.amazonaws.com invoke the function without '
                        "source_account or source_arn (confused deputy). Fix: set one of them."),
            ("wide-action", 'Permission "wide-action" grants action "lambda:*". Why: a '
                            "permission for a service should allow invoking the function and "
                            "nothing else. Fix: use lambda:InvokeFunction."),
        ]]
