"""Factor 11, reproducibility and audit: the hash-chained log and session re-runs."""

from workbench.audit.log import AuditLog, Verification, verify_export
from workbench.audit.replay import replay_against, rerun_session

__all__ = ["AuditLog", "Verification", "replay_against", "rerun_session", "verify_export"]
