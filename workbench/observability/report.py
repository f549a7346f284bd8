"""``workbench report SESSION -o report.html``: one self-contained HTML page about a session.

Headline figures, plotly charts of cost and latency per call, and tables of the calls,
tool calls, guard events and approvals, plus the audit chain's state. plotly.js is inlined
once, so the file opens offline and can be mailed or attached to a ticket. Text from the
store is HTML-escaped and scrubbed of secrets.
"""

from __future__ import annotations

import html
from typing import Any

from workbench.errors import WorkbenchError
from workbench.guardrails.scanners import scrub_clipped
from workbench.observability.calls import recorded_sessions
from workbench.store import Store, utcnow

_STYLE = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem} .sub{color:#666} .cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:8px;padding:.6rem 1rem;min-width:120px}
.card b{display:block;font-size:1.3rem}
table{border-collapse:collapse;font-size:.85rem;width:100%;margin:.5rem 0 1.5rem}
th,td{border-bottom:1px solid #eee;padding:4px 6px;text-align:left;vertical-align:top} th{background:#f6f6f6}
.ok{color:#2a7} .bad{color:#c33}"""


SIGNATURE = "<!doctype html><html><head><meta charset=utf-8><title>workbench · "  # how a report starts


def session_report(store: Store, session: str) -> str:
    """The HTML text of the report for ``session``."""
    import pandas as pd
    import plotly.graph_objects as go

    from workbench.audit import AuditLog

    calls = pd.DataFrame(
        store.query(
            "SELECT id, started_at, model, route, status, prompt, text, cost_usd, latency_ms, total_tokens, cache_hit, "
            "error, agent FROM calls WHERE session = ? ORDER BY started_at",
            (session,),
        )
    )
    if calls.empty:
        raise WorkbenchError(f"no calls in session {session!r}; sessions: {recorded_sessions(store)}")
    guard = pd.DataFrame(
        store.query(
            "SELECT at, stage, scanner, action, score, detail, call_id FROM guard_events WHERE session = ? ORDER BY at",
            (session,),
        )
    )
    approvals = pd.DataFrame(
        store.query(
            "SELECT created_at, tool, risk, status, decided_by, decision_reason, "
            "reason FROM approvals WHERE session = ? ORDER BY created_at",
            (session,),
        )
    )
    tools = pd.DataFrame(
        store.query(
            "SELECT t.started_at, t.tool, t.risk, t.status, t.latency_ms, t.result FROM "
            "tool_calls t JOIN agent_runs r ON r.id = t.run_id WHERE r.session = ? "
            "ORDER BY t.started_at",
            (session,),
        )
    )
    answered = calls[calls["status"] == "ok"]
    latency = answered[answered["cache_hit"] == 0]["latency_ms"]
    chain = AuditLog(store).verify()
    cards = [
        ("calls", len(calls)),
        ("errors", int((calls["status"] == "error").sum())),
        ("cost", f"${calls['cost_usd'].fillna(0).sum():.6f}"),
        ("tokens", f"{int(calls['total_tokens'].fillna(0).sum()):,}"),
        ("p50 latency", f"{latency.quantile(0.5):.0f} ms" if len(latency) else "-"),
        ("p95 latency", f"{latency.quantile(0.95):.0f} ms" if len(latency) else "-"),
        ("guard events", len(guard)),
        ("approvals", len(approvals)),
    ]
    n = list(range(1, len(calls) + 1))
    cost = go.Figure(go.Bar(x=n, y=calls["cost_usd"].fillna(0), name="cost", hovertext=calls["model"]))
    cost.add_scatter(x=n, y=calls["cost_usd"].fillna(0).cumsum(), name="cumulative", mode="lines", yaxis="y2")
    cost.update_layout(
        title="Cost per call (USD)",
        xaxis_title="call",
        template="plotly_white",
        height=320,
        yaxis2={"overlaying": "y", "side": "right", "title": "cumulative"},
    )
    speed = go.Figure()
    for model, part in calls.groupby("model", sort=True):
        speed.add_bar(x=[n[i] for i in part.index], y=part["latency_ms"], name=str(model))
    speed.update_layout(title="Latency per call (ms)", xaxis_title="call", template="plotly_white", height=320)
    parts = [
        f"<h1>Session {html.escape(session)}</h1>",
        f"<div class=sub>{html.escape(calls['started_at'].iloc[0][:19])} → "
        f"{html.escape(calls['started_at'].iloc[-1][:19])} · report written {utcnow()[:19]} UTC · store "
        f"{html.escape(str(store.path))}</div>",
        "<div class=cards>"
        + "".join(f"<div class=card>{html.escape(k)}<b>{html.escape(str(v))}</b></div>" for k, v in cards)
        + "</div>",
        cost.to_html(full_html=False, include_plotlyjs=True),
        speed.to_html(full_html=False, include_plotlyjs=False),
        "<h2>Calls</h2>",
        _table(
            calls.assign(prompt=calls["prompt"].map(_short), text=calls["text"].map(_short)).drop(columns=["cache_hit"])
        ),
        "<h2>Tool calls</h2>",
        _table(tools.assign(result=tools["result"].map(_short)) if len(tools) else tools),
        "<h2>Guardrail events</h2>",
        _table(guard),
        "<h2>Approvals</h2>",
        _table(approvals),
        "<h2>Audit</h2>",
        f"<p class={'ok' if chain.ok else 'bad'}>{html.escape(str(chain))}</p>",
    ]
    return (
        f"{SIGNATURE}{html.escape(session)}</title><style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )


def _short(text: Any, limit: int = 160) -> str:
    return scrub_clipped("" if text is None else str(text), limit)


def _table(df: Any) -> str:
    if df is None or len(df) == 0:
        return "<p class=sub>none</p>"
    return df.to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.6g}")
