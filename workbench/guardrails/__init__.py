"""Factor 10, safety and guardrails: scanners at every stage of a call, tool boundaries, a circuit breaker."""

from workbench.guardrails.boundaries import register_check, sql_problems
from workbench.guardrails.guard import Guard, ScanResult, Screened, SessionLocked, ToolDenied
from workbench.guardrails.injection import find_injection
from workbench.guardrails.output import SINKS, SecretSafeStream, canary_for
from workbench.guardrails.registry import ScanContext, Scanner, register_scanner, scanners
from workbench.guardrails.scanners import (
    Finding,
    check_name,
    find_pii,
    find_secrets,
    iban_valid,
    luhn,
    redact,
    scrub,
)
from workbench.guardrails.schema import SchemaViolation, conform, reask_prompt
from workbench.guardrails.schema import instruction as schema_instruction

__all__ = [
    "SINKS",
    "Finding",
    "Guard",
    "ScanContext",
    "ScanResult",
    "Scanner",
    "SchemaViolation",
    "Screened",
    "SecretSafeStream",
    "SessionLocked",
    "ToolDenied",
    "canary_for",
    "check_name",
    "conform",
    "find_injection",
    "find_pii",
    "find_secrets",
    "iban_valid",
    "luhn",
    "reask_prompt",
    "redact",
    "register_check",
    "register_scanner",
    "scanners",
    "schema_instruction",
    "scrub",
    "sql_problems",
]
