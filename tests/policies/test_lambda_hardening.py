"""rotation-lambda-hardening: the rotation Lambda and who may invoke it
(policies/lambda_hardening.py)."""

from __future__ import annotations

from tests.policies.builders import (
    CANARY,
    lambda_function,
    only,
    pack_module,
    permission,
)

HARDENING = pack_module("lambda_hardening")


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
    runtime_why = HARDENING.WHY_FIX_RUNTIME
    assert only("rotation-lambda-hardening", prod.violations(resources)) == [
        ("rotation-lambda-hardening", name, "mandatory", text) for name, text in [
            ("old-fn", 'Function "old-fn" has runtime "python3.8"; allowed: python3.12, '
                       f"python3.13. {runtime_why}"),
            ("old-fn", 'Function "old-fn" has a timeout of 900 s; at most 300 s allowed. '
                       f"{HARDENING.WHY_FIX_TIMEOUT}"),
            ("old-fn", 'Function "old-fn": environment variable(s) DB_PASSWORD look like '
                       f"credentials. {HARDENING.WHY_FIX_SECRET_ENV}"),
            ("image-fn", 'Function "image-fn" has no runtime (a container image?); allowed: '
                         f"python3.12, python3.13. {runtime_why}"),
            ("no-source", 'Permission "no-source" lets Secrets Manager invoke the function '
                          f"without source_account. {HARDENING.WHY_FIX_NO_SOURCE_ACCOUNT}"),
            ("other-account", 'Permission "other-account": source_account 444444444444 is not '
                              "this environment's account 333333333333. "
                              f"{HARDENING.FIX_OTHER_ACCOUNT.format(account='333333333333')}"),
            ("public", 'Permission "public" lets any principal invoke the function. '
                       f"{HARDENING.FIX_ANY_PRINCIPAL}"),
            ("s3-perm", 'Permission "s3-perm" lets s3.amazonaws.com invoke the function without '
                        "source_account or source_arn (confused deputy). "
                        f"{HARDENING.FIX_NO_SOURCE}"),
            ("wide-action", 'Permission "wide-action" grants action "lambda:*". '
                            f"{HARDENING.WHY_FIX_ACTION}"),
        ]]
