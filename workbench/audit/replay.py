"""Re-run a recorded session: exactly (is every answer identical?) or ``against`` another model.

``rerun_session(wb, "s")`` sends each recorded request again as recorded; in replay mode
the recording answers it, so the report proves the session reproduces. ``against="m"``
sends the same messages and parameters to another model or route (live: it is a real
call, recorded with ``replay_of``) and reports, per call, the two answers side by side
with a similarity, a short diff, and the cost and latency deltas; with ``suite=`` the
suite's scorers grade both answers (the recorded answer is the case's ``expected``, the
messages the call was given before the prompt its ``context``).
"""

from __future__ import annotations

import difflib
import json
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.observability.calls import recorded_sessions
from workbench.serving import Request

if TYPE_CHECKING:
    import pandas as pd

    from workbench.runtime import Workbench

BATCH = 250  # re-runs recorded per commit
REPORT_COLUMNS = [
    "call_id",
    "prompt",
    "identical",
    "recorded",
    "replayed",
    "served_recorded",
    "served",
    "served_changed",
    "new_call_id",
]
AGAINST_COLUMNS = [
    "call_id",
    "prompt",
    "recorded_model",
    "model",
    "identical",
    "similarity",
    "recorded",
    "replayed",
    "diff",
    "served_recorded",
    "served",
    "served_changed",
    "cost_recorded",
    "cost",
    "cost_delta",
    "latency_recorded_ms",
    "latency_ms",
    "latency_delta_ms",
    "new_call_id",
]


def _recorded(wb: Workbench, session: str) -> list[dict[str, Any]]:
    wb.store.check_session_calls(session, "replay")  # none deleted from the file
    rows = wb.store.query(
        "SELECT id, latency_ms FROM calls "
        "WHERE session = ? AND status = 'ok' AND mode = 'live' AND replay_of IS NULL AND compacted_at IS NULL "
        "AND started_at >= ? ORDER BY started_at",
        (session, wb.store.session_start(session)),  # since the session's last reset
    )
    if not rows:
        raise WorkbenchError(
            f"no recorded calls in session {session!r}; recorded sessions: {recorded_sessions(wb.store)}"
        )
    # Each row as read and checked against its audit entry: an edited request or answer is refused before anything
    # is re-sent (latency, which no entry binds, is only reported).
    return [{**wb.store.recorded_call(row["id"]), "latency_ms": row["latency_ms"]} for row in rows]


def rerun_session(wb: Workbench, session: str) -> pd.DataFrame:
    """Send each recorded request of ``session`` again (as recorded) and compare answers.

    In live mode the requests go to their routes again; in replay mode they are
    answered from the recording. The re-runs are recorded with ``replay_of``.
    """
    import pandas as pd

    report = []
    rows = _recorded(wb, session)
    for start in range(0, len(rows), BATCH):
        with wb.store.batch():  # one commit per BATCH re-runs; each stays atomic (a savepoint)
            for row in rows[start : start + BATCH]:
                stored = json.loads(row["request"])
                request = Request(stored["route"], stored["messages"], stored.get("params", {}))
                result = wb.rerun(
                    request, row["prompt"], replay_of=row["id"], request_json=row["request"], recorded=row
                )
                recorded_tools = json.loads(row["tool_calls"]) if row["tool_calls"] else None
                identical = result.text == (row["text"] or "") and (result.tool_calls or None) == recorded_tools
                report.append(
                    [
                        row["id"],
                        row["prompt"],
                        identical,
                        row["text"],
                        result.text,
                        _served_recorded(row),
                        _served(result),
                        result.call_id,
                    ]
                )
    df = pd.DataFrame(report, columns=[c for c in REPORT_COLUMNS if c != "served_changed"])
    df.insert(REPORT_COLUMNS.index("served_changed"), "served_changed", _changed(df))
    return df


def _served_recorded(row: dict[str, Any]) -> str | None:
    """What the provider said served a recorded call (its answered attempt, as checked against the audit log)."""
    return next((a["response_model"] for a in row["attempts"] if a["status"] == "ok"), None)


def _served(result: Any) -> str | None:
    """What the provider said served a result (its answered attempt)."""
    return next((a.response_model for a in result.attempts if a.status == "ok"), None)


def _changed(df: pd.DataFrame) -> list[bool]:
    """Where both the recording and the re-run say which model version served them, and they differ."""
    return [bool(a and b and a != b) for a, b in zip(df["served_recorded"], df["served"], strict=True)]


def replay_against(wb: Workbench, session: str, against: str, suite: Any = None) -> pd.DataFrame:
    """Re-execute ``session``'s recorded requests on ``against``; a side-by-side table (see the module doc)."""
    import pandas as pd

    if wb.mode != "live":
        raise WorkbenchError(
            f"replaying against {against} calls it, so it needs live mode (this Workbench is in "
            "replay mode); the offline models need no keys"
        )
    wb.resolve(against, check=True)  # an unknown model fails before anything is sent
    scorers = wb.evals.load(suite).scorers if suite is not None else []
    rows = []
    recorded = _recorded(wb, session)
    for row in recorded:
        stored = json.loads(row["request"])
        request = Request(against, stored["messages"], stored.get("params", {}))
        result = wb.rerun(request, row["prompt"], replay_of=row["id"])
        text, replayed = row["text"] or "", result.text
        out = {
            "call_id": row["id"],
            "prompt": row["prompt"],
            "recorded_model": row["model"],
            "model": result.model,
            "identical": text == replayed,
            "similarity": round(difflib.SequenceMatcher(None, text, replayed).ratio(), 3),
            "recorded": text,
            "replayed": replayed,
            "diff": _diff(text, replayed),
            "served_recorded": _served_recorded(row),
            "served": _served(result),
            "cost_recorded": row["cost_usd"],
            "cost": result.cost_usd,
            "cost_delta": (result.cost_usd or 0.0) - (row["cost_usd"] or 0.0),
            "latency_recorded_ms": row["latency_ms"],
            "latency_ms": round(result.latency_ms, 3),
            "latency_delta_ms": round(result.latency_ms - (row["latency_ms"] or 0.0), 3),
            "new_call_id": result.call_id,
        }
        if scorers:
            out.update(_scores(wb, scorers, row, text, replayed))
        rows.append(out)
    columns = AGAINST_COLUMNS + [c for c in (rows[0] if rows else {}) if c not in AGAINST_COLUMNS]
    df = pd.DataFrame(rows, columns=columns)
    df["served_changed"] = _changed(df)
    return df


def _diff(a: str, b: str, limit: int = 400) -> str:
    """The changed words, ``-old`` / ``+new``, shortened."""
    words = [w for w in difflib.ndiff(a.split(), b.split()) if w[:1] in "-+"]
    text = " ".join(w.replace(" ", "", 1) for w in words)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scores(wb: Workbench, scorers: list[Any], row: dict[str, Any], recorded: str, replayed: str) -> dict[str, float]:
    from workbench.evals.scorers import ScoreContext, score

    messages = json.loads(row["request"])["messages"]
    given = "\n".join(m["content"] for m in messages[:-1] if isinstance(m.get("content"), str))
    case = {"id": row["id"], "input": row["prompt"], "expected": recorded, "context": given or recorded}
    ctx = ScoreContext(wb)
    out = {}
    for spec in scorers:
        out[f"{spec.label}_recorded"] = score(spec.name, recorded, case, ctx, spec.options).value
        out[spec.label] = score(spec.name, replayed, case, ctx, spec.options).value
    return out
