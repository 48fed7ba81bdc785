"""configplane's CrossGuard policy pack: this file only assembles it.

Run it with the Pulumi CLI (`pulumi preview --policy-pack policies --policy-pack-config
policies/config/<env>.json`) or offline (`configplane plan --stack <env>`). Each module next
to this one holds one concern: its validators, each policy's config schema beside its
validator, and a list `POLICIES`. Thresholds come from the config schemas, per environment from
policies/config/<env>.json. Messages name the resource, say what is wrong and why, and how to
fix it; they never echo a value that could be a secret.
"""

from __future__ import annotations

import aws_iam
import backups
import certificates
import configmaps
import dynamic_credentials
import environment
import flags_live
import identities
import lambda_hardening
import plaintext_secrets
import rotation
import secret_stores
import stack_once
import vault
from pulumi_policy import EnforcementLevel, PolicyPack

stack_once.install()  # the stack's resources deserialised once, not once per stack policy

PolicyPack(
    name="configplane",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        *plaintext_secrets.POLICIES,
        *rotation.POLICIES,
        *vault.POLICIES,
        *configmaps.POLICIES,
        *environment.POLICIES,
        *lambda_hardening.POLICIES,
        *aws_iam.POLICIES,
        *secret_stores.POLICIES,
        *identities.POLICIES,
        *certificates.POLICIES,
        *dynamic_credentials.POLICIES,
        *flags_live.POLICIES,
        *backups.POLICIES,
    ],
)
