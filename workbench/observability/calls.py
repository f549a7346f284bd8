"""``wb.calls``: the recorded calls and their attempts as pandas DataFrames."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError, shown
from workbench.options import whole_number
from workbench.store import Store, cutoff

if TYPE_CHECKING:
    import pandas as pd

CALL_VIEW = (
    "id",
    "started_at",
    "session",
    "mode",
    "route",
    "model",
    "status",
    "prompt",
    "text",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_ms",
    "user",
    "task",
    "error",
    "routing",
    "context_spec",
    "context_version",
    "grounding",
)
ATTEMPT_VIEW = (
    "call_id",
    "n",
    "deployment",
    "model",
    "endpoint",
    "status",
    "error_class",
    "status_code",
    "retry_after",
    "latency_ms",
    "started_at",
    "error",
    "response_model",
    "system_fingerprint",
    "request_id",
)

_COLUMNS = ", ".join(f'"{c}"' for c in CALL_VIEW)


class CallLog:
    """Read-only views on the ``calls`` and ``attempts`` tables."""

    def __init__(self, store: Store):
        self.store = store

    def df(
        self,
        session: str | None = None,
        limit: int | None = None,
        route: str | None = None,
        status: str | None = None,
        since: str | None = None,
    ) -> pd.DataFrame:
        """Calls, oldest first (``limit`` keeps the most recent ones); a ``session``'s since its last reset,
        and only those started at or after ``since`` when given (an age such as ``30d``, or an ISO date or instant,
        as every ``since`` takes).
        """
        import pandas as pd

        where, params = _where(session=session, route=route, status=status)
        starts = [self.store.session_start(session) if session is not None else "", cutoff(since) if since else ""]
        if max(starts):
            where += (" AND " if where else "WHERE ") + "started_at >= ?"
            params.append(max(starts))
        sql = f"SELECT {_COLUMNS} FROM calls {where} ORDER BY started_at DESC"
        if limit is not None and not (whole_number(limit) and 0 <= limit < 2**63):
            raise WorkbenchError(f"limit is how many of the latest calls to show, a whole number, not {shown(limit)}")
        if limit:
            sql += f" LIMIT {int(limit)}"
        rows = self.store.query(sql, params)[::-1]
        return pd.DataFrame(rows, columns=list(CALL_VIEW)).rename(columns={"id": "call_id"})

    def last(self) -> dict[str, Any] | None:
        """The most recent call row, or ``None``."""
        rows = self.store.query("SELECT * FROM calls ORDER BY started_at DESC LIMIT 1")
        return rows[0] if rows else None

    def attempts(self, call_id: str | None = None) -> pd.DataFrame:
        """The attempts of one call (default: the most recent call)."""
        import pandas as pd

        if call_id is None:
            last = self.last()
            call_id = last["id"] if last else ""
        rows = self.store.query(
            f"SELECT {', '.join(ATTEMPT_VIEW)} FROM attempts WHERE call_id = ? ORDER BY n", (call_id,)
        )
        return pd.DataFrame(rows, columns=list(ATTEMPT_VIEW))


def served_models(store: Store, call_ids: list[str]) -> dict[str, str | None]:
    """What the provider said served each call (its answered attempt's response model), by call id."""
    out: dict[str, str | None] = dict.fromkeys(call_ids)
    for start in range(0, len(call_ids), 500):
        part = call_ids[start : start + 500]
        for row in store.query(
            f"SELECT call_id, response_model FROM attempts WHERE status = 'ok' AND call_id IN "
            f"({', '.join('?' * len(part))})",
            part,
        ):
            out[row["call_id"]] = row["response_model"]
    return out


def readable_costs(df: pd.DataFrame, columns: tuple[str, ...] = ("cost_usd",)) -> pd.DataFrame:
    """``df`` for showing: a cost the price table does not know (a model with no price) reads ``unknown``,
    as in a result's footer, not ``NaN``. For computing, use the DataFrame as returned.
    """
    out = df.copy()
    for column in columns:
        if column in out:
            out[column] = [("unknown" if v != v or v is None else v) for v in out[column]]  # v != v: NaN
    return out


def recorded_sessions(store: Store, limit: int = 20) -> str:
    """The first ``limit`` session names with calls, comma-separated (for "no such session" errors)."""
    rows = store.query(
        "SELECT DISTINCT session FROM calls WHERE session IS NOT NULL ORDER BY session LIMIT ?", (limit,)
    )
    return ", ".join(r["session"] for r in rows) or "none"


def _where(**filters: Any) -> tuple[str, list[Any]]:
    parts = [(f'"{k}" = ?', v) for k, v in filters.items() if v is not None]
    if not parts:
        return "", []
    return "WHERE " + " AND ".join(p for p, _ in parts), [v for _, v in parts]


def deployment_health(store: Store, window: int = 100) -> dict[str, dict[str, Any]]:
    """Per endpoint (model @ base URL [key variable]), over its last ``window`` attempts: counts, error rate, p50."""
    rows = store.query(
        "SELECT endpoint, status, latency_ms, error_class FROM ("
        " SELECT id, status, latency_ms, error_class, COALESCE(endpoint, deployment) AS endpoint,"
        " ROW_NUMBER() OVER (PARTITION BY COALESCE(endpoint, deployment) ORDER BY id DESC) AS k FROM attempts"
        ") WHERE k <= ? AND status != 'skipped' ORDER BY id",
        (window,),
    )
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        h = out.setdefault(row["endpoint"], {"attempts": 0, "errors": 0, "_lat": [], "last_error": None})
        h["attempts"] += 1
        if row["status"] == "ok":
            h["_lat"].append(row["latency_ms"] or 0.0)
        else:
            h["errors"] += 1
            h["last_error"] = row["error_class"]
    for h in out.values():
        lat = sorted(h.pop("_lat"))
        h["error_rate"] = round(h["errors"] / h["attempts"], 3)
        h["p50_ms"] = round(lat[len(lat) // 2], 1) if lat else None
    return out
