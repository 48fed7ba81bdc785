"""The one redaction boundary: the redactor, the inventory of a stack's secrets, the pack's detector."""

from configplane.redaction.detector import Detector, detector_for, load_detector
from configplane.redaction.redactor import (
    HIDDEN,
    MIN_SECRET_LEN,
    PROVIDER_CREDENTIALS,
    REDACTED,
    SECRET_SIG_KEY,
    SECRET_SIG_VALUE,
    SPEC_METADATA,
    Redactor,
    detect,
    file_secrets,
    is_name_slot,
    is_secret_wrapper,
    marked_strings,
    plaintext_rules,
    stack_secrets,
    url_userinfo,
)

__all__ = [
    "detect",
    "Detector",
    "detector_for",
    "file_secrets",
    "HIDDEN",
    "is_name_slot",
    "is_secret_wrapper",
    "load_detector",
    "marked_strings",
    "MIN_SECRET_LEN",
    "plaintext_rules",
    "PROVIDER_CREDENTIALS",
    "REDACTED",
    "Redactor",
    "SECRET_SIG_KEY",
    "SECRET_SIG_VALUE",
    "SPEC_METADATA",
    "stack_secrets",
    "url_userinfo",
]
