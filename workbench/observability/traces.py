"""``wb.trace(ref)``: one trace's spans as a tree, a DataFrame and a plotly waterfall.

``ref`` is ``"last"`` (the most recent call), a call id, an agent or workflow run id, or a
trace id. A call made by an agent belongs to its run's trace, so asking for the call shows
the whole run: every step, tool call, guard check and approval, in order.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError, shown
from workbench.observability.spans import run_trace
from workbench.store import Store

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ["span_id", "parent_id", "depth", "name", "start_ms", "duration_ms", "status", "call_id", "attributes"]
_COLOURS = {
    "llm": "#4C78A8",
    "serving": "#72B7B2",
    "guardrails": "#F58518",
    "tool": "#54A24B",
    "agent": "#B279A2",
    "workflow": "#B279A2",
    "approvals": "#EECA3B",
    "memory": "#9D755D",
    "context": "#BAB0AC",
    "cost": "#79706E",
    "limits": "#D67195",
}


def resolve(store: Store, ref: str = "last") -> str:
    """The trace id ``ref`` names (see the module docstring), or a one-line error saying what exists."""
    if ref is not None and not isinstance(ref, str):
        raise WorkbenchError(f"a trace is named by a call, run or trace id (text) or 'last', not {type(ref).__name__}")
    ref = (ref or "last").strip()
    if ref == "last":
        rows = store.query("SELECT trace_id FROM calls ORDER BY started_at DESC LIMIT 1")
        if not rows:
            raise WorkbenchError("no calls recorded yet: make one (%%llm or wb.ask), then %llm_trace")
        return rows[0]["trace_id"]
    for sql in ("SELECT trace_id FROM calls WHERE id = ?", "SELECT trace_id FROM spans WHERE trace_id = ? LIMIT 1"):
        rows = store.query(sql, (ref,))
        if rows:
            return rows[0]["trace_id"]  # a call an agent made carries its run's trace id
    for kind, table in (("agent", "agent_runs"), ("workflow", "workflow_runs")):
        if store.query(f"SELECT 1 FROM {table} WHERE id = ?", (ref,)):
            return run_trace(kind, ref)[0]
    raise WorkbenchError(f"no call, run or trace {shown(ref)}: %llm_calls lists call ids; use 'last' for the newest")


class TraceView:
    """The spans of one trace; ``df`` in tree order, ``figure()`` a waterfall."""

    def __init__(self, store: Store, ref: str = "last"):
        self.trace_id = resolve(store, ref)
        rows = store.query(
            "SELECT span_id, parent_id, call_id, name, start_ns, end_ns, status, attributes FROM spans "
            "WHERE trace_id = ? ORDER BY start_ns",
            (self.trace_id,),
        )
        self.df = _tree(rows)

    def __repr__(self) -> str:
        return f"TraceView({self.trace_id}, {len(self.df)} spans)"

    def figure(self) -> Any:
        """A plotly waterfall: one bar per span, indented by depth, hover with its attributes."""
        import plotly.graph_objects as go

        df = self.df
        labels = [f"{'· ' * d}{n}" for d, n in zip(df["depth"], df["name"], strict=True)]
        labels = [f"{label} ({i})" if labels.count(label) > 1 else label for i, label in enumerate(labels)]
        colours = [
            "#E45756" if s == "error" else _COLOURS.get(n.split(".")[0].split(" ")[0], "#888")
            for s, n in zip(df["status"], df["name"], strict=True)
        ]
        spans = zip(df["name"], df["duration_ms"], df["start_ms"], df["attributes"], strict=True)
        hover = [
            f"<b>{n}</b><br>{d:.2f} ms at +{s:.2f} ms<br>" + "<br>".join(f"{k}: {v}" for k, v in a.items())
            for n, d, s, a in spans
        ]
        fig = go.Figure(
            go.Bar(
                y=labels,
                x=[max(d, 0.01) for d in df["duration_ms"]],
                base=df["start_ms"],
                orientation="h",
                marker_color=colours,
                hovertext=hover,
                hoverinfo="text",
            )
        )
        total = float((df["start_ms"] + df["duration_ms"]).max()) if len(df) else 0.0
        fig.update_layout(
            title=f"Trace {self.trace_id[:12]}… · {len(df)} spans · {total:.1f} ms",
            xaxis_title="ms from the start",
            yaxis_autorange="reversed",
            template="plotly_white",
            height=max(260, 24 * len(df) + 120),
            margin={"l": 10},
        )
        return fig


def _tree(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows in depth-first order (children by start time) with depth and ms offsets."""
    import pandas as pd

    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    ids = {r["span_id"] for r in rows}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for row in rows:
        parent = row["parent_id"] if row["parent_id"] in ids else None
        children.setdefault(parent, []).append(row)
    t0 = min(r["start_ns"] for r in rows)
    out: list[dict[str, Any]] = []

    def visit(parent: str | None, depth: int) -> None:
        for row in children.get(parent, []):
            end = row["end_ns"] or row["start_ns"]
            out.append(
                {
                    "span_id": row["span_id"],
                    "parent_id": row["parent_id"],
                    "depth": depth,
                    "name": row["name"],
                    "start_ms": (row["start_ns"] - t0) / 1e6,
                    "duration_ms": (end - row["start_ns"]) / 1e6,
                    "status": row["status"],
                    "call_id": row["call_id"],
                    "attributes": json.loads(row["attributes"]) if row["attributes"] else {},
                }
            )
            visit(row["span_id"], depth + 1)

    visit(None, 0)
    return pd.DataFrame(out, columns=COLUMNS)
