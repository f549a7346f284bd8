"""Evaluation, observability and audit, measured.

E1  Span cost. ``local/echo`` calls with their spans recorded, against the same calls with a
    Trace that records nothing, in alternating blocks in one process; the difference divided
    by the spans per call is the cost of one span (open, attributes, close, serialise, insert
    in the call's transaction).
E2  Replay rate. 1 000 calls in 100 sessions of 10 (so requests carry history) recorded with
    ``local/echo``, then ``wb.replay(session)`` of each from a replay-mode Workbench: every
    recorded call checked against its audit entry, every request re-sent through the
    pipeline, answered from the recording, compared and recorded with ``replay_of``.
    Target >= 4 000 calls/s.
E3  Audit verify rate. 100 000 audit entries (call-shaped payloads), then ``wb.audit.verify()``.
E4  Eval throughput. The ``support`` suite (16 cases, 4 scorers incl. an LLM judge) with
    ``repeats=5`` on ``local/extractive`` at concurrency 1 and 4, against the same calls made
    by a plain ``wb.ask`` loop (the harness's overhead is the ratio); then on a model behind
    the chaos server answering in 100 ms, at concurrency 1 and 8.

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


class _NoSpans:
    """A Trace that records nothing: the baseline of E1 (same pipeline, no span rows)."""

    def __init__(self, trace_id=None, parent_id=None):
        from workbench.store import new_id

        self.trace_id = trace_id or new_id(16)

    def begin(self, name, **attributes):
        return attributes

    def end(self, error=None):
        pass

    def span(self, name, **attributes):
        from contextlib import nullcontext

        return nullcontext(attributes)

    def add(self, *args, **kwargs):
        pass

    def for_store(self, call_id):
        return []


def e1_span_cost(tmp: Path, rounds: int) -> None:
    import workbench.pipeline as pipeline
    from workbench.runtime import Workbench

    wb = Workbench.from_config(store=str(tmp / "e1.db"))
    for i in range(50):
        wb.ask(f"warm {i}")
    spans_per_call = len(wb.trace().df)
    real = pipeline.Trace
    traced, bare = [], []
    for r in range(rounds):
        for label, trace_class, out in (("traced", real, traced), ("bare", _NoSpans, bare)):
            pipeline.Trace = trace_class
            t = time.perf_counter()
            for i in range(300):
                wb.ask(f"round {r} {label} call {i}")
            out.append((time.perf_counter() - t) / 300 * 1000)
    pipeline.Trace = real
    with_spans, without = statistics.median(traced), statistics.median(bare)
    per_span_us = (with_spans - without) / spans_per_call * 1000
    print(
        f"E1 span cost: a local/echo call records {spans_per_call} spans; {with_spans:.3f} ms per call with them, "
        f"{without:.3f} ms without (medians of {rounds} alternating blocks of 300 calls)"
    )
    print(
        f"   = {per_span_us:.1f} µs per span, {per_span_us / 1000 / without:.2%} of a call per span; all "
        f"{spans_per_call}: ratio {with_spans / without:.3f} (runs with: {', '.join(f'{x:.2f}' for x in traced)}; "
        f"without: {', '.join(f'{x:.2f}' for x in bare)})"
    )


def e2_replay(tmp: Path, rounds: int) -> None:
    from workbench.runtime import Workbench

    live = Workbench.from_config(store=str(tmp / "e2.db"))
    for i in range(1000):
        live.ask(f"question number {i} about the quarterly numbers", session=f"s{i // 10}", model="local/echo")
    live.close()  # (the rows are not edited into one session: a replay refuses a recording edited in the file)
    rates = []
    for _ in range(rounds):
        replay = Workbench.from_config(store=str(tmp / "e2.db"), mode="replay")
        t = time.perf_counter()
        reports = [replay.replay(f"s{s}") for s in range(100)]
        rates.append(1000 / (time.perf_counter() - t))
        assert sum(len(r) for r in reports) == 1000 and all(r["identical"].all() for r in reports)
        replay.close()
    print(
        f"E2 replay: 100 sessions of 10 calls re-run from their recording at {statistics.median(rates):,.0f} "
        f"calls/s (median of {rounds}; runs: {', '.join(f'{r:,.0f}' for r in rates)}); all 1000 identical; "
        f"target >= 4,000"
    )


def e3_audit(tmp: Path, rounds: int) -> None:
    from workbench.audit import AuditLog
    from workbench.store import Store

    store = Store(tmp / "e3.db")
    t = time.perf_counter()
    with store.transaction() as conn:
        for i in range(100_000):
            store.audit(
                conn,
                "call",
                f"{i:016x}",
                {
                    "call": f"{i:016x}",
                    "route": "local/echo",
                    "model": "local/echo",
                    "status": "ok",
                    "cost_usd": 1.2e-5,
                    "tokens": 42,
                    "text_sha256": "ab" * 32,
                },
            )
    write = 100_000 / (time.perf_counter() - t)
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        result = AuditLog(store).verify()
        rates.append(100_000 / (time.perf_counter() - t))
        assert result.ok and result.entries == 100_000
    print(
        f"E3 audit: verify walks 100,000 entries at {statistics.median(rates):,.0f} entries/s "
        f"({100_000 / statistics.median(rates):.2f} s; median of {rounds}); written at {write:,.0f} entries/s"
    )


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
                wb.ask(
                    case["input"], model="local/extractive", system=suite.system, context=case["context"], cache=False
                )
        plain.append(n / (time.perf_counter() - t))
        for conc, out in ((1, serial), (4, parallel)):
            t = time.perf_counter()
            wb.evals.run("support", repeats=5, concurrency=conc, progress=False)
            out.append(n / (time.perf_counter() - t))
    p, s, q = (statistics.median(x) for x in (plain, serial, parallel))
    print(
        f"E4 evals: support suite x 5 repeats = {n} cases, 4 scorers each (the judge is a second call): "
        f"{s:.1f} cases/s at concurrency 1, {q:.1f} at 4; plain wb.ask loop (no scoring) {p:.1f} calls/s"
    )
    print(f"   harness + scorers + judge per case = {p / s:.2f}x a bare call at concurrency 1 (median of {rounds})")
    # A remote model: the chaos server answers after 100 ms. The judge stays local/scripted.
    from workbench.limits import ChaosServer

    with ChaosServer(latency_ms=100) as server:
        wb.add_route("remote", [{"model": "openai/remote", "api_base": server.url}])
        rates = {}
        for conc in (1, 8):
            runs = []
            for _ in range(rounds):
                t = time.perf_counter()
                wb.evals.run("support", models="remote", repeats=5, concurrency=conc, progress=False)
                runs.append(n / (time.perf_counter() - t))
            rates[conc] = statistics.median(runs)
    print(
        f"   on a model answering in 100 ms: {rates[1]:.1f} cases/s at concurrency 1, {rates[8]:.1f} at 8 "
        f"({rates[8] / rates[1]:.1f}x; the ideal at 8 is 80 cases/s)"
    )


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
