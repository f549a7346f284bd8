"""Budgets are never overspent: by threads, by an event loop, or by several processes on one store."""

import asyncio
import multiprocessing
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from workbench import BudgetExceeded, KillSwitchActive, WorkbenchError
from workbench.cost import BudgetWarning
from workbench.runtime import Workbench

PRICES = {"local/echo": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.001}}
LIMIT = 0.2


def priced(path, **overrides) -> Workbench:
    return Workbench.from_config(store=str(path), prices=PRICES, **overrides)


def outcome(wb, prompt, **kw):
    try:
        return wb.ask(prompt, max_tokens=5, **kw)
    except BudgetExceeded:
        return None


def spent(wb, user="ana"):
    return float(wb.costs.df(by="user").set_index("user").loc[user, "cost_usd"])


def test_threads_never_overspend(tmp_path):
    wb = priced(tmp_path / "w.db")
    wb.budgets.set("user:ana", LIMIT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BudgetWarning)
        with ThreadPoolExecutor(max_workers=100) as pool:
            results = list(pool.map(lambda i: outcome(wb, f"question {i} " * 3, user="ana"), range(100)))
    done = [r for r in results if r is not None]
    assert 0 < len(done) < 100  # the budget was binding
    assert spent(wb) <= LIMIT
    assert wb.calls.df(status="refused")["error"].str.startswith("budget user:ana (total) would be exceeded").all()
    assert wb.store.query("SELECT COUNT(*) n FROM reservations")[0]["n"] == 0


def test_asyncio_never_overspends(tmp_path):
    wb = priced(tmp_path / "w.db")
    wb.budgets.set("global", LIMIT)

    async def one(i):
        try:
            return await wb.aask(f"question {i} " * 3, max_tokens=5)
        except BudgetExceeded:
            return None

    async def main():
        return await asyncio.gather(*(one(i) for i in range(100)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BudgetWarning)
        results = asyncio.run(main())
    assert 0 < sum(r is not None for r in results) < 100
    assert wb.costs.total() <= LIMIT


def _worker(path: str, n: int, worker: int, queue) -> None:
    import warnings as w

    w.simplefilter("ignore")
    wb = priced(path)
    queue.put(sum(outcome(wb, f"process {worker} question {i} " * 3, user="ana") is not None for i in range(n)))


def test_four_processes_never_overspend(tmp_path):
    path = tmp_path / "w.db"
    priced(path).budgets.set("user:ana", LIMIT)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(path), 25, i, queue)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
        assert p.exitcode == 0
    done = sum(queue.get(timeout=5) for _ in procs)
    assert 0 < done < 100
    assert spent(priced(path)) <= LIMIT


def test_thresholds_warn_once_per_crossing_and_are_recorded(wb):
    wb.budgets.set("task:report", tokens=60, thresholds=(0.5, 0.8))
    seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(8):
            try:
                wb.ask(f"ten words of prompt to use the budget {i}", task="report", max_tokens=1)
            except BudgetExceeded:
                break
        seen = [str(w.message) for w in caught if w.category is BudgetWarning]
    assert [s.split(" has reached ")[1].split(" ")[0] for s in seen] == ["50%", "80%"]
    events = wb.store.query("SELECT threshold FROM budget_events ORDER BY id")
    assert [e["threshold"] for e in events] == [0.5, 0.8]


def test_over_budget_sends_nothing(tmp_path, chaos):
    server = chaos(name="paid")
    wb = Workbench.from_config(store=str(tmp_path / "w.db"))
    wb.add_route(
        "paid",
        [{"model": "openai/chaos", "api_base": server.url, "input_cost_per_token": 1.0, "output_cost_per_token": 1.0}],
    )
    wb.budgets.set("global", 1.0)
    with pytest.raises(BudgetExceeded, match=r"nothing was sent"):
        wb.ask("this costs more than a dollar", model="paid", max_tokens=10)
    assert server.stats.requests == 0
    assert wb.calls.last()["status"] == "refused"


def test_kill_switch_stops_every_process_until_lifted(tmp_path):
    first, second = priced(tmp_path / "w.db"), priced(tmp_path / "w.db")
    first.kill("incident 42")
    with pytest.raises(KillSwitchActive, match=r"incident 42"):
        second.ask("anything")
    first.budgets.lift()
    assert second.ask("anything").text == "anything"
    kinds = [r["kind"] for r in first.store.query("SELECT kind FROM audit ORDER BY id")]
    assert kinds.count("kill") == 2
    assert first.audit.verify()


@pytest.mark.parametrize(
    "edits",
    [
        ["DELETE FROM switches"],
        ["UPDATE switches SET active = 0"],
        ["DELETE FROM switches", "UPDATE audit SET payload = replace(payload, 'true', 'false') WHERE kind = 'kill'"],
    ],
    ids=["row deleted", "row turned off", "row deleted and its entry edited"],
)
def test_a_kill_switch_removed_in_the_file_still_refuses_every_call_until_lifted(tmp_path, edits):
    """The kill switch is a row and the audit entry that set it: a row deleted or turned off in the SQLite file (and
    the entry edited to match) leaves the log saying it is on, so every call is refused, with an alert, until a
    human lifts it (which is recorded, and leaves the log whole again)."""
    from tests.tampering import tamper
    from workbench import AuditChainBroken

    first, second = priced(tmp_path / "w.db"), priced(tmp_path / "w.db")
    first.kill("incident 43")
    tamper(first, *edits)
    for wb in (first, second):
        with pytest.raises(
            AuditChainBroken,
            match=r"^kill switch refused: .* by audit entry \d+ was deleted or turned "
            r"off in the file, so no call is sent|^kill switch refused: the audit entry \d+ about the kill",
        ):
            wb.ask("anything")
    assert first.store.query("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 0
    assert not first.audit.verify().ok  # named there too
    if len(edits) > 1:
        return  # (an edited entry is not lifted over: the store is restored)
    first.budgets.lift()
    assert second.ask("anything").text == "anything"
    assert first.audit.verify().ok


def test_bad_budget_settings_are_clear(wb):
    with pytest.raises(WorkbenchError, match="write 'global' or one of user:NAME"):
        wb.budgets.set("team:x", 1)
    with pytest.raises(WorkbenchError, match="period 'week'"):
        wb.budgets.set("global", 1, period="week")
    with pytest.raises(WorkbenchError, match="needs a limit"):
        wb.budgets.set("global")
    for huge in ({"usd": [1] * 1_000_000}, {"tokens": "9" * 1_000_000}, {"thresholds": [2] * 1_000_000}):
        with pytest.raises(WorkbenchError) as caught:
            wb.budgets.set("global", **huge)
        assert len(str(caught.value)) < 200  # (it quoted the whole value: 3 MB)


def test_a_kill_switch_with_a_long_reason_still_goes_on_and_its_refusals_stay_short(wb):
    """The reason is shown in every refusal (and sent to the team's Redis): a 1 MB one made each refusal 1 MB."""
    wb.budgets.kill("runaway agent " + "x" * 1_000_000)
    with pytest.raises(KillSwitchActive, match="the kill switch is on \\(runaway agent x+…\\)") as caught:
        wb.ask("hi", model="local/echo")
    assert len(str(caught.value)) < 700
    wb.budgets.lift()
    assert wb.ask("hi", model="local/echo").text
    key = "sk-proj-" + "A1b2C3d4" * 4  # where the cut falls: redacted first, so no part of it is kept
    wb.budgets.kill("x" * 484 + " " + key)
    stored = [r["reason"] for r in wb.store.query("SELECT reason FROM switches")]
    stored += [r["payload"] for r in wb.store.query("SELECT payload FROM audit WHERE kind = 'kill'")]
    assert stored and not any("sk-proj-A1b2" in text for text in stored)
    wb.budgets.lift()


def test_daily_budget_counts_only_today(wb):
    wb.budgets.set("global", 0.001, period="day")
    wb.store.execute(
        "INSERT INTO calls (id, started_at, status, mode, cost_usd, total_tokens) "
        "VALUES ('old', '2020-01-01T00:00:00', 'ok', 'live', 5.0, 10)"
    )
    assert wb.budgets.df()["spent_usd"].tolist() == [0.0]


def test_a_call_budget_refuses_a_worst_case_over_it(wb):
    from workbench.runtime import Workbench

    paid = Workbench.from_config(store=str(wb.store.path), prices=PRICES)
    with pytest.raises(BudgetExceeded, match=r"over its budget of \$0\.001000; nothing was sent"):
        paid.ask("hello there", max_tokens=50, budget=0.001)
    assert paid.ask("hi", max_tokens=1, budget=0.1).text == "hi"


def test_a_budget_since_now_counts_from_then_and_says_a_total_does_not_renew(tmp_path):
    wb = priced(tmp_path / "s.db")
    for _ in range(3):
        wb.ask("earlier spend", user="bob", max_tokens=5)
    before = spent(wb, "bob")
    wb.budgets.set("user:bob", before / 2)  # counted over everything: already over
    with pytest.raises(BudgetExceeded, match=r"lower --max-tokens \(a total budget does not renew\)"):
        wb.ask("more", user="bob", max_tokens=5)
    wb.budgets.set("user:bob", before / 2, since="now")  # from now on: the earlier spend no longer counts
    assert outcome(wb, "more", user="bob") is not None
    row = wb.budgets.df().set_index("scope").loc["user:bob"]
    assert row["since"]
    assert row["spent_usd"] < before / 2
    wb.budgets.set("user:bob", before)  # a change without since keeps it
    assert wb.budgets.df().set_index("scope").loc["user:bob", "since"] == row["since"]
    assert wb.audit.verify().ok
    wb.budgets.remove("user:bob")
    wb.budgets.remove("user:bob", missing_ok=True)
    with pytest.raises(WorkbenchError, match="no total budget on user:bob"):
        wb.budgets.remove("user:bob")
    with pytest.raises(WorkbenchError, match="since='yesterday'"):
        wb.budgets.set("user:bob", 1, since="yesterday")
    wb.budgets.set("user:ann", 0.0000001, period="day")
    with pytest.raises(BudgetExceeded, match="or wait for the next period"):
        wb.ask("x", user="ann", max_tokens=5)


def test_editing_a_budgets_since_in_the_file_is_caught(tmp_path):
    import sqlite3

    wb = priced(tmp_path / "e.db")
    wb.budgets.set("user:bob", 1, since="2026-01-01")
    with sqlite3.connect(tmp_path / "e.db") as conn:
        conn.execute("UPDATE budgets SET since = '2099-01-01T00:00:00+00:00'")  # spend before 2099 would not count
    report = wb.audit.verify()
    assert not report.ok
    assert "budgets row" in report.reason


def test_budgets_read_hourly_totals_that_always_equal_the_calls(tmp_path):
    """A budget check sums the hourly totals triggers keep (not every call of its period); the totals
    follow the calls through inserts, an edit in the file and a delete, and a budget counted since an
    instant inside an hour counts only that hour's calls after it."""
    import sqlite3

    wb = priced(tmp_path / "h.db")
    wb.budgets.set("user:ana", 10.0, period="day")
    wb.budgets.set("session:s1", 10.0, period="month")
    wb.budgets.set("task:t", 10.0)
    for i in range(4):
        wb.ask(f"question {i}", user="ana", session="s1", task="t" if i % 2 else None, max_tokens=5)
    wb.ask("another user's", user="raj", session="s1", max_tokens=5)
    for day in ("2020-01-01T00:00:00+00:00", "2020-01-01T23:59:59+00:00"):  # an earlier day, before every period
        wb.store.execute(
            "INSERT INTO calls (id, started_at, status, mode, cost_usd, total_tokens, user) "
            f"VALUES ('old{day[11:13]}', '{day}', 'ok', 'live', 5.0, 10, 'ana')"
        )

    def by_sum(scope, column, since=""):
        return wb.store.query(
            f"SELECT COALESCE(SUM(cost_usd), 0) AS usd, COALESCE(SUM(total_tokens), 0) AS tokens FROM calls "
            f"WHERE status = 'ok' AND mode = 'live' AND started_at >= ? AND \"{scope}\" = ?",
            (since, column),
        )[0]

    def check():
        table = wb.budgets.df().set_index("scope")
        usage = wb.budgets._usage  # noqa: SLF001 - the figures a reservation compares with its limit
        for scope, key, period in (("user", "ana", "day"), ("session", "s1", "month"), ("task", "t", "total")):
            budget = wb.store.query("SELECT * FROM budgets WHERE scope = ? AND key = ?", (scope, key))[0]
            with wb.store.lock:
                usd, tokens, _, _ = usage(wb.store.conn, budget)
            want = by_sum(scope, key, max(period_start(period), budget["since"] or ""))
            assert usd == pytest.approx(want["usd"]) and tokens == want["tokens"], (scope, key)
            assert table.loc[f"{scope}:{key}", "spent_usd"] == pytest.approx(want["usd"], abs=1e-6)

    from workbench.cost.budgets import period_start

    check()
    assert by_sum("user", "ana")["usd"] > 10  # the old day's calls count for a total, not for today
    conn = sqlite3.connect(wb.store.path)  # an edit and a delete made in the file, by another program
    conn.execute("UPDATE calls SET cost_usd = cost_usd * 3, total_tokens = 7 WHERE session = 's1' AND user = 'raj'")
    conn.execute("UPDATE calls SET user = 'raj' WHERE id = (SELECT id FROM calls WHERE user = 'ana' LIMIT 1)")
    conn.execute("DELETE FROM calls WHERE id = (SELECT id FROM calls WHERE task = 't' LIMIT 1)")
    conn.commit()
    check()
    totals = conn.execute("SELECT COUNT(*), SUM(usd) FROM spend WHERE scope = 'global' GROUP BY scope").fetchone()
    assert totals[0] >= 3 and totals[1] == pytest.approx(conn.execute("SELECT SUM(cost_usd) FROM calls").fetchone()[0])
    wb.budgets.set("session:s1", 10.0, period="month", since="now")  # an instant inside the current hour
    assert wb.budgets.df().set_index("scope").loc["session:s1", "spent_usd"] == 0
    wb.ask("after the instant", user="ana", session="s1", max_tokens=5)
    check()
    assert wb.budgets.df().set_index("scope").loc["session:s1", "spent_usd"] == pytest.approx(
        by_sum("session", "s1", wb.budgets.df().set_index("scope").loc["session:s1", "since"])["usd"]
    )
    # verify names the calls edited above, and checks the totals against the calls: they agree
    assert not [p for _, p in wb.audit.verify().problems if "spend" in p]
    conn.execute("UPDATE spend SET usd = 0 WHERE scope = 'user' AND key = 'ana'")  # spend hidden from the budget
    conn.commit()
    assert [p for _, p in wb.audit.verify().problems if "the spend totals of user:ana at" in p]
    conn.execute("DROP TRIGGER calls_spend_insert")
    conn.commit()
    assert any("calls_spend_insert" in p for _, p in wb.audit.verify().problems)
    conn.close()


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"usd": float("nan")}, "a budget's usd is dollars, zero or more, not nan"),  # NaN compares false: no cap
        ({"usd": -1.0}, "a budget's usd is dollars, zero or more, not -1.0"),
        ({"usd": "5"}, "a budget's usd is dollars, zero or more, not '5'"),
        ({"tokens": float("nan")}, "a budget's tokens is a whole number from 0 to 10\\*\\*15, not nan"),
        ({"tokens": 2.5}, "a budget's tokens is a whole number from 0 to 10\\*\\*15, not 2.5"),
        ({"tokens": 2**63}, "a budget's tokens is a whole number from 0 to 10\\*\\*15, not 9223372036854775808"),
        ({"usd": 1.0, "thresholds": [float("nan")]}, r"budget thresholds are fractions of the limit, each in \(0, 1\]"),
        ({"usd": 1.0, "thresholds": "0.5"}, r"budget thresholds are fractions of the limit, each in \(0, 1\]"),
    ],
)
def test_a_limit_that_would_cap_nothing_or_is_not_a_number_is_refused(tmp_path, limits, message):
    wb = priced(tmp_path / "b.db")
    with pytest.raises(WorkbenchError, match=f"^{message}"):
        wb.budgets.set("user:ana", **limits)
    assert wb.store.query("SELECT COUNT(*) AS n FROM budgets")[0]["n"] == 0
    wb.budgets.set("user:ana", 0.002)  # a real cap still caps
    with pytest.raises(BudgetExceeded):
        wb.ask("hello there, how are you", model="local/echo", user="ana", max_tokens=50)
