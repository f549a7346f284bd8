"""The panel's data (workbench/jupyter/panel.py): the once-a-second poll is one SQL statement and
says what the slower, Python-side views say (budgets, approvals, calls), on a real store."""

import sqlite3

import pytest

from workbench.errors import GuardrailViolation
from workbench.jupyter import panel

PRICES = {"local/echo": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.001}}


@pytest.fixture
def paid(make_wb):
    return make_wb(prices=PRICES)


def _statements(wb, fn, *args, **kwargs):
    """What ``fn`` returns, and the SQL statements it ran on the store's connection."""
    ran: list[str] = []
    wb.store.conn.set_trace_callback(ran.append)
    try:
        return fn(*args, **kwargs), ran
    finally:
        wb.store.conn.set_trace_callback(None)


def test_the_poll_is_one_statement_and_matches_the_budget_table(paid):
    wb = paid
    wb.budgets.set("global", 50.0, period="day")
    wb.budgets.set("user:ana", 1.0, period="month")
    wb.budgets.set("session:s2", 1.0, period="total")
    wb.budgets.set("task:t", 2.0, period="day", since="now")
    for i in range(3):
        wb.ask(f"question {i} for ana", model="local/echo", user="ana", session="s1", max_tokens=20)
    wb.ask("one for raj", model="local/echo", user="raj", session="s2", task="t", max_tokens=20)
    out, ran = _statements(wb, panel.poll, wb)
    assert len(ran) == 1  # one statement, however many budgets, calls and approvals
    slow = panel.spend(wb)  # the budget table's own (Python-side) figures
    assert out["spend"]["budget"] == slow["budget"]
    assert out["spend"]["budget"]["scope"] == "user:ana"  # the tightest: the most used
    assert out["spend"]["today_usd"] == pytest.approx(slow["today_usd"]) == pytest.approx(slow["total_usd"])
    table = {(b["scope"], b["period"]): b["spent_usd"] for b in wb.budgets.df().to_dict("records")}
    assert table[("session:s2", "total")] > 0 and table[("task:t", "day")] > 0
    assert [c["session"] for c in out["calls"]] == ["s2", "s1", "s1", "s1"]  # newest first
    slow_calls = panel.calls(wb)["calls"]  # the same rows (JSON from SQLite keeps 15 significant digits)
    assert [c["id"] for c in out["calls"]] == [c["id"] for c in slow_calls]
    assert [c["cost_usd"] for c in out["calls"]] == pytest.approx([c["cost_usd"] for c in slow_calls], rel=1e-12)
    again, ran = _statements(wb, panel.poll, wb, out["latest"])
    assert again["calls"] == [] and again["latest"] == out["latest"] and len(ran) == 1


def test_the_poll_carries_approvals_the_kill_switch_and_when_alerts_move(wb):
    first = wb.approvals.request("db.drop", {"table": "orders"}, risk="destructive", reason="asked")
    wb.approvals.request("db.drop", {"table": "old"}, risk="destructive", reason="asked")
    conn = sqlite3.connect(wb.store.path)  # one approval expired, as another process would see it
    conn.execute("UPDATE approvals SET expires_at = '2000-01-01' WHERE arguments LIKE '%old%'")
    conn.commit()
    out = panel.poll(wb)
    assert out["pending"] == 1 and out["approvals"][0]["id"] == first["id"]
    assert out["approvals"][0]["arguments"] == {"table": "orders"}  # JSON, not a string
    assert out["approvals"] == panel.approvals(wb)["approvals"]
    assert out["spend"] == {"budget": None, "killed": None, "today_usd": 0}
    assert out["alerts_at"] == [None, None]
    with pytest.raises(GuardrailViolation):  # the secrets guard blocks it: a guard event
        wb.ask("my key is sk-proj-Zx81bQ7pLm2Vn4Tc9Wd3Ke6Rf0Hy5Ju1", model="local/echo")
    guarded = panel.poll(wb)["alerts_at"]
    assert guarded[0] is None and guarded[1] is not None
    wb.alerts.add("slow", "p95_latency_ms", 0.0, min_calls=1)
    with pytest.warns(UserWarning):
        wb.ask("a slow one", model="local/echo")  # fires the rule
    fired = panel.poll(wb)["alerts_at"]
    assert fired[0] is not None and fired[1] == guarded[1]
    wb.kill("runaway agent")
    killed = panel.poll(wb)["spend"]["killed"]
    assert "runaway agent" in killed
    wb.budgets.lift()
    assert panel.poll(wb)["spend"]["killed"] is None
    conn.close()
