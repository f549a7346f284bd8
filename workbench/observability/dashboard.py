"""``wb.dashboard()``: one plotly figure grid of the whole system's health.

Six panels: calls and errors over time; latency p50/p95 over time; spend by model over time;
cache hit rate and tokens; guard events by stage and action; approvals and tool calls by
outcome. The title carries the headline figures. plotly is imported only here.
"""

from __future__ import annotations

from typing import Any

from workbench.errors import WorkbenchError
from workbench.observability.metrics import FREQS, Metrics
from workbench.store import Store, cutoff


def dashboard(store: Store, since: str | None = None, freq: str | None = None) -> Any:
    """The grid (``since``: ``24h``, ``7d`` or an ISO date; ``freq``: bucket, chosen from the span if None)."""
    import pandas as pd
    from plotly.subplots import make_subplots

    metrics = Metrics(store)
    calls = metrics.calls(since)
    freq = freq or _freq(calls)
    if freq not in FREQS:
        raise WorkbenchError(f"freq is one of {', '.join(FREQS)}, not {freq!r}")
    totals, by_model = metrics.frame(calls, None, freq), metrics.frame(calls, "model", freq)
    head = metrics.summary(calls=calls)
    fig = make_subplots(
        rows=3,
        cols=2,
        vertical_spacing=0.11,
        horizontal_spacing=0.08,
        specs=[[{}, {}], [{}, {"secondary_y": True}], [{}, {}]],
        subplot_titles=(
            f"Calls and errors per {freq}",
            "Latency of answered calls (ms)",
            f"Spend per {freq} by model (USD)",
            "Cache hit rate · tokens",
            "Guardrail events",
            "Approvals · tool calls",
        ),
    )
    if len(totals):
        fig.add_bar(
            x=totals["bucket"],
            y=totals["calls"] - totals["errors"] - totals["refused"] - totals["interrupted"],
            name="ok",
            marker_color="#4C78A8",
            row=1,
            col=1,
        )
        fig.add_bar(x=totals["bucket"], y=totals["errors"], name="errors", marker_color="#E45756", row=1, col=1)
        fig.add_bar(x=totals["bucket"], y=totals["refused"], name="refused", marker_color="#EECA3B", row=1, col=1)
        fig.add_bar(
            x=totals["bucket"], y=totals["interrupted"], name="interrupted", marker_color="#BAB0AC", row=1, col=1
        )
        fig.add_scatter(x=totals["bucket"], y=totals["p50_ms"], name="p50", mode="lines+markers", row=1, col=2)
        fig.add_scatter(x=totals["bucket"], y=totals["p95_ms"], name="p95", mode="lines+markers", row=1, col=2)
        fig.add_bar(
            x=totals["bucket"], y=totals["cache_hit_rate"], name="cache hit rate", marker_color="#72B7B2", row=2, col=2
        )
        fig.add_scatter(
            x=totals["bucket"],
            y=totals["tokens"],
            name="tokens",
            mode="lines+markers",
            marker_color="#9D755D",
            row=2,
            col=2,
            secondary_y=True,
        )
    for model, part in by_model.groupby("model", sort=True) if len(by_model) else []:
        fig.add_bar(x=part["bucket"], y=part["cost_usd"], name=str(model), row=2, col=1)
    since_ts = cutoff(since) if since else ""
    guard = pd.DataFrame(
        store.query(
            "SELECT stage || ':' || action AS what, COUNT(*) AS n FROM guard_events "
            "WHERE at >= ? GROUP BY 1 ORDER BY 2 DESC LIMIT 12",
            (since_ts,),
        )
    )
    if len(guard):
        fig.add_bar(x=guard["what"], y=guard["n"], name="guard events", marker_color="#F58518", row=3, col=1)
    outcomes = store.query(
        "SELECT 'approval ' || status AS what, COUNT(*) AS n FROM approvals WHERE created_at >= ? "
        "GROUP BY 1 UNION ALL SELECT 'tool ' || status, COUNT(*) FROM tool_calls "
        "WHERE started_at >= ? GROUP BY 1",
        (since_ts, since_ts),
    )
    if outcomes:
        out = pd.DataFrame(outcomes)
        fig.add_bar(x=out["what"], y=out["n"], name="outcomes", marker_color="#54A24B", row=3, col=2)
    fig.update_layout(
        barmode="stack",
        template="plotly_white",
        height=900,
        showlegend=True,
        title=(
            f"workbench · {head['calls']} calls · error rate {head['error_rate']:.1%} · "
            f"p50 {head['p50_ms']:.0f} ms · p95 {head['p95_ms']:.0f} ms · "
            f"${head['cost_usd']:.4f} · {head['tokens']:,} tokens"
        ),
    )
    fig.update_yaxes(tickformat=".0%", range=[0, 1], row=2, col=2, secondary_y=False)
    return fig


def _freq(calls: Any) -> str:
    """A bucket that gives a readable number of bars for the span of the calls."""
    if len(calls) < 2:
        return "hour"
    from datetime import datetime

    first, last = (datetime.fromisoformat(calls["started_at"].iloc[i]) for i in (0, -1))
    hours = (last - first).total_seconds() / 3600
    return "minute" if hours <= 3 else "hour" if hours <= 72 else "day" if hours <= 24 * 90 else "month"
