"""``wb.costs``: every call's cost attributed to user, task, agent, session, model and route."""

from __future__ import annotations

from typing import Any

from workbench.errors import WorkbenchError
from workbench.store import Store, cutoff
from workbench.store.records import spent

DIMENSIONS = {
    "user": '"user"',
    "task": "task",
    "agent": "agent",
    "session": "session",
    "model": "model",
    "route": "route",
    "day": "substr(started_at, 1, 10)",
    "month": "substr(started_at, 1, 7)",
}


class Costs:
    """Spend from the recorded calls (live mode; cache hits cost nothing and record what they saved)."""

    def __init__(self, store: Store):
        self.store = store

    def df(self, by: str = "model", since: str | None = None) -> Any:
        """Spend grouped by ``user|task|agent|session|model|route|day|month``, most expensive first; ``since``: an age
        (``30d``, ``12h``) or an ISO date.
        """
        import pandas as pd

        if by not in DIMENSIONS:
            raise WorkbenchError(f"cannot group costs by {by!r}: use one of {', '.join(DIMENSIONS)}")
        rows = self.store.query(
            f"SELECT {DIMENSIONS[by]} AS {by!r}, COUNT(*) AS calls, SUM(cost_usd) AS cost_usd, "
            "COALESCE(SUM(saved_usd), 0) AS saved_usd, SUM(cache_hit) AS cache_hits, "
            "SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens "
            f"FROM calls WHERE {spent()} AND started_at >= ? "
            "GROUP BY 1 ORDER BY cost_usd DESC, 1",
            (cutoff(since) if since else "",),
        )
        columns = [by, "calls", "cost_usd", "saved_usd", "cache_hits", "prompt_tokens", "completion_tokens"]
        return pd.DataFrame(rows, columns=columns)

    def total(self, since: str | None = None) -> float:
        """All spend since an age (``30d``) or an ISO date (default: ever)."""
        row = self.store.query(
            f"SELECT COALESCE(SUM(cost_usd), 0) AS usd FROM calls WHERE {spent()} AND started_at >= ?",
            (cutoff(since) if since else "",),
        )
        return float(row[0]["usd"])
