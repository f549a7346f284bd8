"""Factor 6, human in the loop: approval policies, the pending queue, decisions."""

from workbench.approvals.queue import DECISIONS, ApprovalError, Approvals, Decision

__all__ = ["DECISIONS", "ApprovalError", "Approvals", "Decision"]
