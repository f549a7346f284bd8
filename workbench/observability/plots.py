"""Plotly figures of spend, latency and the cache, each from one function returning a Figure.

plotly is imported inside each function, so importing workbench never pays for it.
"""

from __future__ import annotations

from typing import Any

from workbench.errors import WorkbenchError
from workbench.store import Store
from workbench.store.records import spent

_DIMENSIONS = {
    "user": '"user"',
    "task": "task",
    "agent": "agent",
    "session": "session",
    "model": "model",
    "route": "route",
}
_FREQ = {"hour": 13, "day": 10, "month": 7}  # characters of the ISO timestamp that name the bucket


def _frame(store: Store, sql: str, params: tuple[Any, ...] = ()) -> Any:
    import pandas as pd

    return pd.DataFrame(store.query(sql, params))


def spend_over_time(store: Store, by: str = "model", freq: str = "day") -> Any:
    """Stacked bars of spend per ``freq`` (hour | day | month), coloured by ``by``."""
    import plotly.graph_objects as go

    if by not in _DIMENSIONS or freq not in _FREQ:
        raise WorkbenchError(f"spend_over_time: by is one of {', '.join(_DIMENSIONS)}; freq one of {', '.join(_FREQ)}")
    df = _frame(
        store,
        f"SELECT substr(started_at, 1, {_FREQ[freq]}) AS bucket, COALESCE({_DIMENSIONS[by]}, '(none)') "
        f"AS dim, SUM(cost_usd) AS usd FROM calls WHERE {spent()} GROUP BY 1, 2 "
        "ORDER BY 1, 2",
    )
    fig = go.Figure()
    for dim, part in df.groupby("dim", sort=True) if len(df) else []:
        fig.add_bar(x=part["bucket"], y=part["usd"], name=str(dim))
    fig.update_layout(
        barmode="stack", title=f"Spend per {freq} by {by}", xaxis_title=freq, yaxis_title="USD", template="plotly_white"
    )
    return fig


def latency_by_model(store: Store, last: int = 1000) -> Any:
    """Box plots of call latency per model over the last calls, with p50 and p95 in the hover."""
    import plotly.graph_objects as go

    df = _frame(
        store,
        "SELECT model, latency_ms FROM calls WHERE status = 'ok' AND mode = 'live' AND cache_hit = 0 "
        "ORDER BY started_at DESC LIMIT ?",
        (last,),
    )
    fig = go.Figure()
    for model, part in df.groupby("model", sort=True) if len(df) else []:
        p50, p95 = part["latency_ms"].quantile(0.5), part["latency_ms"].quantile(0.95)
        fig.add_box(y=part["latency_ms"], name=f"{model}<br>p50 {p50:.0f} · p95 {p95:.0f} ms", boxpoints=False)
    fig.update_layout(title="Latency per model (ms)", yaxis_title="ms", showlegend=False, template="plotly_white")
    return fig


def cache_hit_rate(store: Store, freq: str = "day") -> Any:
    """The share of live calls answered from the cache, per ``freq``, with the USD it saved."""
    import plotly.graph_objects as go

    if freq not in _FREQ:
        raise WorkbenchError(f"cache_hit_rate: freq is one of {', '.join(_FREQ)}")
    df = _frame(
        store,
        f"SELECT substr(started_at, 1, {_FREQ[freq]}) AS bucket, AVG(cache_hit) AS rate, "
        "COALESCE(SUM(saved_usd), 0) AS saved FROM calls WHERE status = 'ok' AND mode = 'live' "
        "GROUP BY 1 ORDER BY 1",
    )
    fig = go.Figure()
    if len(df):
        fig.add_bar(
            x=df["bucket"],
            y=df["rate"],
            name="hit rate",
            customdata=df["saved"],
            hovertemplate="%{y:.0%} hits, saved $%{customdata:.6f}",
        )
    fig.update_layout(
        title=f"Cache hit rate per {freq}", yaxis_tickformat=".0%", yaxis_range=[0, 1], template="plotly_white"
    )
    return fig
