"""Factor 10, safety and guardrails: scanners for secrets and personal data at the input and output stages."""

from workbench.guardrails.guard import Guard, ScanResult
from workbench.guardrails.scanners import Finding, find_pii, find_secrets, iban_valid, luhn, redact

__all__ = ["Finding", "Guard", "ScanResult", "find_pii", "find_secrets", "iban_valid", "luhn", "redact"]
