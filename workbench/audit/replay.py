"""Re-run a recorded session and report, per call, whether the answer is identical."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from workbench.errors import WorkbenchError
from workbench.serving import Request

if TYPE_CHECKING:
    import pandas as pd

    from workbench.runtime import Workbench

REPORT_COLUMNS = ["call_id", "prompt", "identical", "recorded", "replayed", "new_call_id"]


def rerun_session(wb: Workbench, session: str) -> pd.DataFrame:
    """Send each recorded request of ``session`` again (as recorded) and compare answers.

    In live mode the requests go to their routes again; in replay mode they are
    answered from the recording. The re-runs are recorded with ``replay_of``.
    """
    import pandas as pd

    rows = wb.store.query(
        "SELECT id, prompt, request, text, tool_calls FROM calls WHERE session = ? "
        "AND status = 'ok' AND mode = 'live' AND replay_of IS NULL AND compacted_at IS NULL ORDER BY started_at",
        (session,),
    )
    if not rows:
        known = [r["session"] for r in wb.store.query(
            "SELECT DISTINCT session FROM calls WHERE session IS NOT NULL ORDER BY session LIMIT 20")]  # fmt: skip
        raise WorkbenchError(
            f"no recorded calls in session {session!r}; recorded sessions: {', '.join(known) or 'none'}"
        )
    report = []
    for row in rows:
        stored = json.loads(row["request"])
        request = Request(stored["route"], stored["messages"], stored.get("params", {}))
        result = wb.rerun(request, row["prompt"], replay_of=row["id"])
        recorded_tools = json.loads(row["tool_calls"]) if row["tool_calls"] else None
        identical = result.text == (row["text"] or "") and (result.tool_calls or None) == recorded_tools
        report.append([row["id"], row["prompt"], identical, row["text"], result.text, result.call_id])
    return pd.DataFrame(report, columns=REPORT_COLUMNS)
