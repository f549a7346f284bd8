"""``wb.metrics.df()``: the health of the system per time bucket and dimension, as a DataFrame.

Per bucket (``minute | hour | day | month``) and ``by`` (model, route, user, task, agent,
session, or none): calls, errors and error rate (refusals by a budget or the kill switch are
not errors), p50/p95 latency of answered calls (cache hits excluded, they would flatter it),
cache hit rate, cost, tokens. Replayed calls are left out: they are not traffic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.errors import WorkbenchError
from workbench.store import Store, cutoff

if TYPE_CHECKING:
    import pandas as pd

FREQS = {"minute": 16, "hour": 13, "day": 10, "month": 7}  # characters of the ISO timestamp naming the bucket
DIMENSIONS = ("model", "route", "user", "task", "agent", "session")
COLUMNS = [
    "calls",
    "errors",
    "refused",
    "interrupted",
    "error_rate",
    "p50_ms",
    "p95_ms",
    "cache_hit_rate",
    "cost_usd",
    "prompt_tokens",
    "completion_tokens",
    "tokens",
]


class Metrics:
    """``wb.metrics``."""

    def __init__(self, store: Store):
        self.store = store

    def calls(self, since: str | None = None) -> pd.DataFrame:
        """The live calls (since ``since``: ``24h``, ``7d`` or an ISO date) with what the metrics need."""
        import pandas as pd

        where, params = "mode = 'live'", []
        if since:
            where += " AND started_at >= ?"
            params.append(cutoff(since))
        rows = self.store.query(
            'SELECT started_at, model, route, "user", task, agent, session, status, latency_ms, '
            "cache_hit, cost_usd, prompt_tokens, completion_tokens, total_tokens FROM calls "
            f"WHERE {where} ORDER BY started_at",
            params,
        )
        columns = [
            "started_at",
            *DIMENSIONS,
            "status",
            "latency_ms",
            "cache_hit",
            "cost_usd",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
        ]
        return pd.DataFrame(rows, columns=columns)

    def df(self, by: str | None = "model", freq: str = "hour", since: str | None = None) -> pd.DataFrame:
        """One row per ``freq`` bucket (and ``by`` value): calls, errors, latency p50/p95, cache, cost, tokens."""

        if freq not in FREQS:
            raise WorkbenchError(f"freq is one of {', '.join(FREQS)}, not {freq!r}")
        if by is not None and by not in DIMENSIONS:
            raise WorkbenchError(f"by is one of {', '.join(DIMENSIONS)} (or None for totals), not {by!r}")
        return self.frame(self.calls(since), by, freq)

    @staticmethod
    def frame(calls: pd.DataFrame, by: str | None, freq: str) -> pd.DataFrame:
        """:meth:`df` of calls already read with :meth:`calls` (the dashboard reads them once)."""
        import pandas as pd

        calls = calls.copy()
        keys = ["bucket"] + ([by] if by else [])
        if calls.empty:
            return pd.DataFrame(columns=[*keys, *COLUMNS])
        calls["bucket"] = calls["started_at"].str.slice(0, FREQS[freq])
        if by:
            calls[by] = calls[by].fillna("(none)")
        rows = []
        for key, part in calls.groupby(keys, sort=True):
            key = key if isinstance(key, tuple) else (key,)
            answered = part[part["status"] == "ok"]
            timed = answered[answered["cache_hit"] == 0]["latency_ms"]
            errors = int((part["status"] == "error").sum())
            judged = int(part["status"].isin(["ok", "error"]).sum())
            rows.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    "calls": len(part),
                    "errors": errors,
                    "refused": int((part["status"] == "refused").sum()),
                    "interrupted": int((part["status"] == "interrupted").sum()),
                    "error_rate": errors / judged if judged else 0.0,
                    "p50_ms": timed.quantile(0.5) if len(timed) else None,
                    "p95_ms": timed.quantile(0.95) if len(timed) else None,
                    "cache_hit_rate": float(answered["cache_hit"].mean()) if len(answered) else 0.0,
                    "cost_usd": float(part["cost_usd"].fillna(0).sum()),
                    "prompt_tokens": int(part["prompt_tokens"].fillna(0).sum()),
                    "completion_tokens": int(part["completion_tokens"].fillna(0).sum()),
                    "tokens": int(part["total_tokens"].fillna(0).sum()),
                }
            )
        return pd.DataFrame(rows, columns=[*keys, *COLUMNS])

    def summary(self, since: str | None = None, calls: pd.DataFrame | None = None) -> dict[str, float]:
        """Headline figures over all live calls (since ``since``, or of ``calls`` already read)."""
        calls = self.calls(since) if calls is None else calls
        df = self.frame(calls, None, "month")
        answered = calls[(calls["status"] == "ok") & (calls["cache_hit"] == 0)]["latency_ms"]
        judged = int(calls["status"].isin(["ok", "error"]).sum()) if len(calls) else 0
        return {
            "calls": int(df["calls"].sum()),
            "errors": int(df["errors"].sum()),
            "error_rate": float(df["errors"].sum() / judged) if judged else 0.0,
            "p50_ms": float(answered.quantile(0.5)) if len(answered) else 0.0,
            "p95_ms": float(answered.quantile(0.95)) if len(answered) else 0.0,
            "cost_usd": float(df["cost_usd"].sum()),
            "tokens": int(df["tokens"].sum()),
        }
