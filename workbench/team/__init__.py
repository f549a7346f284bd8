"""Team scale: budgets, rate limits, the kill switch and breakers shared through Redis (``[team] redis_url``).

Each analyst's SQLite store still records every call, attempt and audit entry; Redis holds
only what several machines must agree on. Imported by the runtime only when ``[team]``
names a server (the ``redis`` package is imported on the first command).
"""

from workbench.team.budgets import Refusal, TeamBudgets, display
from workbench.team.state import TeamState, TeamWarning, Unreachable

__all__ = ["Refusal", "TeamBudgets", "TeamState", "TeamWarning", "Unreachable", "display"]
