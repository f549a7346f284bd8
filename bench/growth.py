"""What budgets and alert rules cost a call as the store's calls pile up, and what the panel's poll costs.

B1  Two stores side by side in one process, each with a day budget (global) and a month budget
    (user): one empty, one holding N calls from today (written straight into the file, so the
    triggers keep the hourly totals as the runtime's own writes do). Alternating blocks of
    budgeted ``wb.ask`` on local/echo; prints ms per call on each and the ratio (target ~1: a
    budget's check reads the hourly totals, not every call of its period). Beside it, on the
    full store, what summing the period's calls costs (how budgets were read before the
    totals), and the panel's once-a-second poll (``workbench/jupyter/panel.py``).

B2  The same with three alert rules (error rate, p95 latency, spend over 300 s) instead of
    budgets: an empty store against one whose rules' window holds 15,000 calls (50 calls/s
    for 5 minutes). A rule's value is read from the calls in its window (index only), so
    this grows with the window's calls; the team's rules (``[team]``) keep windows in Redis.

Usage: python bench/growth.py [--calls 20000,100000] [--window-calls 15000] [--block 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PRICES = {"local/echo": {"input_cost_per_token": 1e-7, "output_cost_per_token": 1e-7}}
OLD_SUM = (
    "SELECT COALESCE(SUM(cost_usd), 0), COALESCE(SUM(total_tokens), 0) FROM calls "
    "WHERE status = 'ok' AND mode = 'live' AND started_at >= ? AND \"user\" = ?"
)


def _store(folder: str, name: str, calls: int):
    from workbench.cost.budgets import period_start
    from workbench.runtime import Workbench
    from workbench.store import utcnow

    wb = Workbench.from_config(store=os.path.join(folder, f"{name}.db"), prices=PRICES)
    wb.budgets.set("global", 1000.0, period="day")
    wb.budgets.set("user:ana", 1000.0, period="month")
    if calls:
        day, now = period_start("day"), utcnow()
        prompt = "How many orders shipped late last week, by region? " * 8
        with wb.store.transaction() as conn:  # a day of calls, spread over the hours so far
            conn.execute(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                "INSERT INTO calls (id, started_at, session, status, mode, route, model, prompt, text, "
                "prompt_tokens, completion_tokens, total_tokens, cost_usd, latency_ms, user) "
                "SELECT printf('bulk%08d', i), ?, 's' || (i % 20), 'ok', 'live', 'local/echo', 'local/echo', ?, ?, "
                "100, 20, 120, 0.00012, 3.0, CASE i % 3 WHEN 0 THEN 'ana' ELSE 'raj' END FROM n",
                (calls - 1, now, prompt, prompt),
            )
        assert day <= now
    return wb


def _block(wb, n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        wb.ask(f"question {i}", model="local/echo", user="ana", max_tokens=20)
    return (time.perf_counter() - t) * 1000 / n


def _compare(empty, full, block: int, rounds: int) -> tuple[float, float, list[float]]:
    """Alternating blocks on the two stores: medians of ms/call, and the sorted per-round ratios."""
    base, loaded = [], []
    for _ in range(rounds):
        base.append(_block(empty, block))
        loaded.append(_block(full, block))
    ratios = sorted(b / a for a, b in zip(base, loaded, strict=True))
    return statistics.median(base), statistics.median(loaded), ratios


def _with_rules(wb):
    """Budgets off, three alert rules on (none of them fires on these calls)."""
    wb.budgets.remove("global", period="day")
    wb.budgets.remove("user:ana", period="month")
    for name, metric, above in (
        ("errors", "error_rate", 0.5),
        ("slow", "p95_latency_ms", 5000),
        ("spend", "spend_usd", 1e6),
    ):
        wb.alerts.add(name, metric, above, window_s=300)
    return wb


def _timed(fn, n: int = 20) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", default="20000,100000")
    parser.add_argument("--window-calls", type=int, default=15_000)
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from workbench.cost.budgets import period_start
    from workbench.jupyter import panel

    folder = tempfile.mkdtemp(prefix="wb-bench-growth-")
    empty = _store(folder, "empty", 0)
    _block(empty, 20)  # warm: litellm, the tokenizer
    print(f"B1  budgeted wb.ask on local/echo (day + month budgets), {args.rounds} rounds x {args.block} calls")
    for n in [int(x) for x in args.calls.split(",")]:
        full = _store(folder, f"full{n}", n)
        _block(full, 5)
        base, median, ratios = _compare(empty, full, args.block, args.rounds)
        latest = panel.poll(full)["latest"]
        with full.store.lock:
            conn, since = full.store.conn, period_start("month")
            old = _timed(lambda: conn.execute(OLD_SUM, (since, "ana")).fetchone(), 5)  # noqa: B023 - used at once
        poll = _timed(lambda: panel.poll(full, latest))  # noqa: B023 - used at once
        print(
            f"    {n:>7,} calls today: {median:6.2f} ms/call vs {base:6.2f} "
            f"on an empty store: ratio min/median/max {ratios[0]:.2f}/{statistics.median(ratios):.2f}/{ratios[-1]:.2f}"
            f" | summing the period's calls (before): {old:7.1f} ms per budget | panel poll: {poll:.2f} ms"
        )
        full.close()
    print(f"B2  wb.ask on local/echo with 3 alert rules (300 s window), {args.rounds} rounds x {args.block} calls")
    rules_empty = _with_rules(_store(folder, "rules-empty", 0))
    rules_full = _with_rules(_store(folder, "rules-full", args.window_calls))
    for wb in (rules_empty, rules_full):
        _block(wb, 5)  # warm
    base, median, ratios = _compare(rules_empty, rules_full, args.block, args.rounds)
    print(
        f"    {args.window_calls:>7,} calls in the window: {median:6.2f} ms/call vs {base:6.2f} on an empty store "
        f"(+{median - base:.1f} ms); ratio min/median/max "
        f"{ratios[0]:.2f}/{statistics.median(ratios):.2f}/{ratios[-1]:.2f}"
    )
    for wb in (empty, rules_empty, rules_full):
        wb.close()


if __name__ == "__main__":
    main()
