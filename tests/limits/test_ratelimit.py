"""Limits are enforced before sending: paced, queued by priority, capped in flight, shared by processes."""

import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor

from tests.servers import FREE
from workbench.limits import RateLimiter
from workbench.runtime import Workbench


def span_s(server):
    """Seconds from the first request the server saw to the last."""
    return max(server.stats.arrivals) - min(server.stats.arrivals)


def test_threads_are_paced_at_the_limit_and_none_fails(wb, chaos):
    server = chaos(name="paced")
    wb.add_route("r", [{"name": "paced", "model": "openai/c", "api_base": server.url, "rpm": 600}])  # 0.1 s apart
    wb.ask("warm up the HTTP client", model="r")  # the first request in a process pays one-off setup
    time.sleep(0.1)
    server.stats.arrivals.clear()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        texts = list(pool.map(lambda i: wb.ask(f"q{i}", model="r").text, range(16)))
    assert len(texts) == 16
    assert all(t.startswith("[paced]") for t in texts)
    # Slots are 0.1 s apart: 15 gaps, less the 0.05 s a late waker may catch up on the schedule.
    assert time.perf_counter() - t0 >= 1.4
    # Unpaced, these 16 requests reach the server within ~0.1 s. Paced, they span the
    # schedule, less the jitter of client-side work after each slot.
    assert span_s(server) >= 1.2


def _worker(path: str, url: str, n: int) -> None:
    wb = Workbench.from_config(store=path)
    wb.add_route("r", [{"name": "shared", "model": "openai/c", "api_base": url, "rpm": 300, **FREE}])  # 0.2 s apart
    for i in range(n):
        wb.ask(f"q{i}", model="r")


def test_processes_share_one_limit_through_the_store(tmp_path, chaos):
    server = chaos(name="shared")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(tmp_path / "w.db"), server.url, 4)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    # 12 slots 0.2 s apart span 2.2 s; unpaced, the requests arrive within ~0.2 s.
    assert server.stats.requests == 12
    assert span_s(server) >= 1.6


def test_a_slot_beyond_the_deadline_skips_to_the_next_deployment(wb, chaos):
    scarce, backup = chaos(name="scarce"), chaos(name="backup")
    wb.add_route(
        "r",
        [
            {"name": "scarce", "model": "openai/c", "api_base": scarce.url, "rpm": 1},
            {"name": "backup", "model": "openai/c", "api_base": backup.url},
        ],
        deadline_s=5,
    )
    assert wb.ask("first", model="r").text == "[scarce] first"
    t0 = time.perf_counter()
    second = wb.ask("second", model="r")
    assert second.text == "[backup] second"
    assert time.perf_counter() - t0 < 2
    rows = wb.calls.attempts(second.call_id)[["deployment", "status", "error_class", "error"]].values.tolist()
    assert rows[0] == ["scarce", "skipped", "RateLimited", "no 1 rpm slot within the call's deadline"]
    assert scarce.stats.requests == 1


def _limiter(tmp_path, now):
    from workbench.store import Store

    return RateLimiter(Store(tmp_path / "r.db"), clock=lambda: now[0])


def test_concurrent_takers_get_distinct_slots_exactly_one_interval_apart(tmp_path):
    now = [1000.0]
    limiter = _limiter(tmp_path, now)
    tickets = [limiter.ticket("d", rpm=600, max_wait_s=60) for _ in range(32)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        first = list(pool.map(limiter.try_acquire, tickets))
    assert first.count(0.0) == 1  # one slot is due now; everyone else queues
    taken = 1
    for step in range(1, 32):
        now[0] = 1000.0 + step * 0.1
        results = [limiter.try_acquire(t) for t in tickets if t.waiter_id is not None]
        assert results.count(0.0) == 1, step  # exactly one slot per 0.1 s, never two
        taken += 1
    assert taken == 32


def test_tokens_per_minute_pace_by_size(tmp_path):
    now = [1000.0]
    limiter = _limiter(tmp_path, now)
    assert limiter.try_acquire(limiter.ticket("d", tpm=6000, tokens=1000)) == 0.0  # 10 s of a 6000 tpm budget
    assert limiter.try_acquire(limiter.ticket("d", tpm=6000, tokens=100)) == 10.0
    assert limiter.try_acquire(limiter.ticket("d", tpm=6000, tokens=100, max_wait_s=5)) is None  # never queued
    now[0] += 11
    assert limiter.try_acquire(limiter.ticket("d", tpm=6000, tokens=100, max_wait_s=5)) is not None


def test_a_higher_priority_goes_ahead_of_calls_queued_before_it(tmp_path):
    now = [1000.0]
    limiter = _limiter(tmp_path, now)
    assert limiter.try_acquire(limiter.ticket("d", rpm=600)) == 0.0
    low_a, low_b, high = (limiter.ticket("d", rpm=600, priority=p) for p in (0, 0, 5))
    for ticket in (low_a, low_b, high):
        assert limiter.try_acquire(ticket) > 0  # all queue behind the first
    order = []
    for step in (1, 2, 3):
        now[0] = 1000.0 + step * 0.1
        for name, ticket in (("low_a", low_a), ("low_b", low_b), ("high", high)):
            if ticket.waiter_id is not None and limiter.try_acquire(ticket) == 0.0:
                order.append(name)
    assert order == ["high", "low_a", "low_b"]


def test_leases_cap_requests_in_flight_and_lapse_after_a_crash(tmp_path):
    now = [1000.0]
    limiter = _limiter(tmp_path, now)
    a, b, c = (limiter.ticket("d", max_parallel=2, lease_s=30) for _ in range(3))
    assert limiter.try_acquire(a) == 0.0
    assert limiter.try_acquire(b) == 0.0
    assert limiter.try_acquire(c) > 0  # two in flight: the third waits
    limiter.release(a)
    assert limiter.try_acquire(c) == 0.0
    # b's process "crashes" and never releases: its lease lapses after its timeout (plus a grace period).
    d = limiter.ticket("d", max_parallel=2, lease_s=30)
    limiter.release(c)
    assert limiter.try_acquire(d) == 0.0
    e = limiter.ticket("d", max_parallel=2, lease_s=30)
    assert limiter.try_acquire(e) > 0
    now[0] += 30 + 60 + 1
    assert limiter.try_acquire(e) == 0.0


def test_max_parallel_holds_across_threads_and_asyncio(wb, chaos):
    import asyncio

    server = chaos(name="narrow", latency_ms=100)
    wb.add_route("r", [{"name": "narrow", "model": "openai/c", "api_base": server.url, "max_parallel": 3}])
    with ThreadPoolExecutor(max_workers=8) as pool:
        texts = list(pool.map(lambda i: wb.ask(f"t{i}", model="r").text, range(8)))
    assert len(texts) == 8
    assert server.stats.max_in_flight == 3

    async def many():
        return await asyncio.gather(*(wb.aask(f"a{i}", model="r") for i in range(12)))

    t0 = time.perf_counter()
    assert len(asyncio.run(many())) == 12
    assert server.stats.max_in_flight == 3
    assert time.perf_counter() - t0 >= 0.35  # 4 waves of 0.1 s


def test_a_call_waits_at_most_max_wait_then_fails_over(wb, chaos):
    slow, backup = chaos(name="slow", latency_ms=1500), chaos(name="backup")
    wb.add_route(
        "r",
        [
            {"name": "slow", "model": "openai/c", "api_base": slow.url, "max_parallel": 1},
            {"name": "backup", "model": "openai/c", "api_base": backup.url},
        ],
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        busy = pool.submit(wb.ask, "occupy the only slot", model="r")
        while slow.stats.in_flight == 0:
            time.sleep(0.01)
        assert wb.models().set_index("deployment").loc["slow", ["limits", "in_flight"]].tolist() == ["1 parallel", 1]
        t0 = time.perf_counter()
        second = wb.ask("second", model="r", max_wait=0.3)
        assert second.text == "[backup] second"
        assert 0.25 < time.perf_counter() - t0 < 1.2
        assert busy.result().text == "[slow] occupy the only slot"
    rows = wb.calls.attempts(second.call_id)[["deployment", "status", "error_class", "error"]].values.tolist()
    assert rows[0] == ["slow", "skipped", "RateLimited", "no 1 max_parallel slot within max_wait=0.3s"]


def test_priority_is_served_first_through_the_router(wb, chaos):
    server = chaos(name="paced")
    wb.add_route("r", [{"name": "paced", "model": "openai/c", "api_base": server.url, "rpm": 300}])  # 0.2 s apart
    wb.ask("warm up", model="r")
    server.stats.arrivals.clear()
    seen = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        lows = [pool.submit(lambda i=i: seen.append(wb.ask(f"low{i}", model="r").text)) for i in range(5)]
        time.sleep(0.3)  # the lows are queued
        high = pool.submit(lambda: seen.append(wb.ask("high", model="r", priority=10).text))
        for f in [*lows, high]:
            f.result()
    assert seen.index("[paced] high") <= 2, seen  # ahead of every low still waiting when it arrived


def test_bad_priority_and_max_wait_are_refused(wb):
    import pytest

    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="priority must be a whole number"):
        wb.ask("x", model="local/echo", priority="high")
    with pytest.raises(WorkbenchError, match="max_wait must be seconds >= 0"):
        wb.ask("x", model="local/echo", max_wait=-1)
    # A priority past what SQLite keeps was a raw OverflowError once a rate-limited deployment queued the call.
    wb.add_route("paced", [{"name": "p", "model": "local/echo", "rpm": 60}])
    for huge in (10**100, -(10**30), 2**63):
        with pytest.raises(WorkbenchError, match=r"priority must be a whole number from -1,000,000,000 to 1,000,000"):
            wb.ask("x", model="paced", priority=huge)
    assert wb.ask("x", model="paced", priority=10**9).text
