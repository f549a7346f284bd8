"""Evaluation, observability and audit, measured.

E1  Span cost. A ``local/echo`` call records ~11 spans. The cost of one span (open, attributes,
    close, serialise, insert with the call) is measured alone, over 20 000 spans written in
    batches of 11 as calls write them, and set against the median ``local/echo`` call.
E2  Replay rate. A 1 000-call session (10 calls per session turn, so requests carry history)
    recorded with ``local/echo``, then ``wb.replay(session)`` from a replay-mode Workbench:
    every request re-sent through the pipeline, answered from the recording, compared and
    recorded with ``replay_of``. Target >= 1 000 calls/s.
E3  Audit verify rate. 100 000 audit entries (call-shaped payloads), then ``wb.audit.verify()``.
E4  Eval throughput. The ``support`` suite (16 cases, 4 scorers incl. an LLM judge) with
    ``repeats=5`` on ``local/extractive`` at concurrency 1 and 4, against the same calls made
    by a plain ``wb.ask`` loop (the harness's overhead is the ratio).

Usage: python bench/observability.py [--rounds 3] [--only E1,E2,E3,E4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

ROOT = Path(__file__).parents[1]


def e1_span_cost(tmp: Path, rounds: int) -> None:
    from workbench.observability import Trace
    from workbench.runtime import Workbench
    from workbench.store import Store

    wb = Workbench.from_config(store=str(tmp / "e1.db"))
    for i in range(20):
        wb.ask(f"warm {i}")
    spans_per_call = len(wb.trace().df)
    store = Store(tmp / "e1-spans.db")
    call_ms, span_us = [], []
    for r in range(rounds):
        t = time.perf_counter()
        for i in range(200):
            wb.ask(f"round {r} call {i}")
        call_ms.append((time.perf_counter() - t) / 200 * 1000)
        n = 0
        t = time.perf_counter()
        for c in range(20_000 // spans_per_call):
            trace = Trace()
            for s in range(spans_per_call):
                with trace.span("stage", n=s, route="local/echo") as attrs:
                    attrs["hit"] = False
            rows = trace.for_store(f"c{r}-{c}")
            with store.transaction() as conn:
                conn.executemany("INSERT INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            n += len(rows)
        span_us.append((time.perf_counter() - t) / n * 1e6)
    call, span = statistics.median(call_ms), statistics.median(span_us)
    print(f"E1 span cost: {span:.1f} µs per span (median of {rounds} rounds of 20 000; one transaction per "
          f"{spans_per_call} spans, as a call writes them)")
    print(f"   local/echo call: {call:.2f} ms median; one span = {span / 1000 / call:.2%} of a call; the "
          f"{spans_per_call} spans of a call = {spans_per_call * span / 1000 / call:.1%} "
          f"(the transaction is shared with the call row, so this overstates it)")


def e2_replay(tmp: Path, rounds: int) -> None:
    from workbench.runtime import Workbench

    live = Workbench.from_config(store=str(tmp / "e2.db"))
    for i in range(1000):
        live.ask(f"question number {i} about the quarterly numbers", session=f"s{i // 10}", model="local/echo")
    with live.store.transaction() as conn:
        conn.execute("UPDATE calls SET session = 'big'")
    rates = []
    for _ in range(rounds):
        replay = Workbench.from_config(store=str(tmp / "e2.db"), mode="replay")
        t = time.perf_counter()
        report = replay.replay("big")
        rates.append(len(report) / (time.perf_counter() - t))
        assert len(report) == 1000 and report["identical"].all()
        replay.close()
    print(f"E2 replay: 1000-call session re-run from its recording at {statistics.median(rates):,.0f} calls/s "
          f"(median of {rounds}; runs: {', '.join(f'{r:,.0f}' for r in rates)}); all 1000 identical; "
          f"target >= 1,000")


def e3_audit(tmp: Path, rounds: int) -> None:
    from workbench.audit import AuditLog
    from workbench.store import Store

    store = Store(tmp / "e3.db")
    t = time.perf_counter()
    with store.transaction() as conn:
        for i in range(100_000):
            store.audit(conn, "call", f"{i:016x}", {"call": f"{i:016x}", "route": "local/echo", "model": "local/echo",
                                                    "status": "ok", "cost_usd": 1.2e-5, "tokens": 42,
                                                    "text_sha256": "ab" * 32})  # fmt: skip
    write = 100_000 / (time.perf_counter() - t)
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        result = AuditLog(store).verify()
        rates.append(100_000 / (time.perf_counter() - t))
        assert result.ok and result.entries == 100_000
    print(f"E3 audit: verify walks 100,000 entries at {statistics.median(rates):,.0f} entries/s "
          f"({100_000 / statistics.median(rates):.2f} s; median of {rounds}); written at {write:,.0f} entries/s")


def e4_evals(tmp: Path, rounds: int) -> None:
    from workbench.runtime import Workbench

    shutil.copytree(ROOT / "evals", tmp / "evals", dirs_exist_ok=True)
    shutil.copy(ROOT / "scripted.toml", tmp / "scripted.toml")
    (tmp / "workbench.toml").write_text('store = "e4.db"\n[scripted]\nfile = "scripted.toml"\n')
    wb = Workbench.from_config(tmp / "workbench.toml")
    suite = wb.evals.load("support")
    n = len(suite.cases) * 5
    plain, serial, parallel = [], [], []
    for _ in range(rounds):
        t = time.perf_counter()
        for case in suite.cases:
            for _ in range(5):
                wb.ask(case["input"], model="local/extractive", system=suite.system, context=case["context"],
                       cache=False)  # fmt: skip
        plain.append(n / (time.perf_counter() - t))
        for conc, out in ((1, serial), (4, parallel)):
            t = time.perf_counter()
            wb.evals.run("support", repeats=5, concurrency=conc, progress=False)
            out.append(n / (time.perf_counter() - t))
    p, s, q = (statistics.median(x) for x in (plain, serial, parallel))
    print(f"E4 evals: support suite x 5 repeats = {n} cases, 4 scorers each (the judge is a second call): "
          f"{s:.1f} cases/s at concurrency 1, {q:.1f} at 4; plain wb.ask loop (no scoring) {p:.1f} calls/s")
    print(f"   harness + scorers + judge per case = {p / s:.2f}x a bare call at concurrency 1 "
          f"(median of {rounds})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="E1,E2,E3,E4")
    args = parser.parse_args()
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, fn in (("E1", e1_span_cost), ("E2", e2_replay), ("E3", e3_audit), ("E4", e4_evals)):
            if name in only:
                fn(tmp, args.rounds)


if __name__ == "__main__":
    main()
