"""Rate limits are enforced before sending: paced, queued, shared by processes; too long a wait fails over."""

import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor

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
    assert len(texts) == 16 and all(t.startswith("[paced]") for t in texts)
    assert time.perf_counter() - t0 >= 1.5  # slots are exactly 0.1 s apart: 15 gaps
    # Unpaced, these 16 requests reach the server within ~0.1 s. Paced, they span the
    # schedule, less the jitter of client-side work after each slot.
    assert span_s(server) >= 1.2


def _worker(path: str, url: str, n: int) -> None:
    wb = Workbench.from_config(store=path)
    wb.add_route("r", [{"name": "shared", "model": "openai/c", "api_base": url, "rpm": 300}])  # 0.2 s apart
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
    assert server.stats.requests == 12 and span_s(server) >= 1.6


def test_a_slot_beyond_the_deadline_skips_to_the_next_deployment(wb, chaos):
    scarce, backup = chaos(name="scarce"), chaos(name="backup")
    wb.add_route("r", [{"name": "scarce", "model": "openai/c", "api_base": scarce.url, "rpm": 1},
                       {"name": "backup", "model": "openai/c", "api_base": backup.url}], deadline_s=5)
    assert wb.ask("first", model="r").text == "[scarce] first"
    t0 = time.perf_counter()
    second = wb.ask("second", model="r")
    assert second.text == "[backup] second" and time.perf_counter() - t0 < 2
    rows = wb.calls.attempts(second.call_id)[["deployment", "status", "error_class", "error"]].values.tolist()
    assert rows[0] == ["scarce", "skipped", "RateLimited", "no 1 rpm slot within the call's deadline"]
    assert scarce.stats.requests == 1


def test_concurrent_reservations_get_distinct_slots_exactly_one_interval_apart(tmp_path):
    from workbench.store import Store

    limiter = RateLimiter(Store(tmp_path / "r.db"), clock=lambda: 1000.0)
    with ThreadPoolExecutor(max_workers=16) as pool:
        waits = sorted(pool.map(lambda _: limiter.reserve("d", 600, None, 0, 60), range(32)))
    assert waits == [i * 0.1 for i in range(32)] or all(abs(w - i * 0.1) < 1e-9 for i, w in enumerate(waits))


def test_tokens_per_minute_pace_by_size():
    from workbench.store import Store

    now = [1000.0]
    import tempfile
    from pathlib import Path

    limiter = RateLimiter(Store(Path(tempfile.mkdtemp()) / "r.db"), clock=lambda: now[0])
    assert limiter.reserve("d", None, 6000, 1000, 60) == 0.0  # 1000 tokens = 10 s of a 6000 tpm budget
    assert limiter.reserve("d", None, 6000, 100, 60) == 10.0
    assert limiter.reserve("d", None, 6000, 100, 5) is None  # 11 s away: not reserved
    now[0] += 11
    assert limiter.reserve("d", None, 6000, 100, 5) == 0.0
