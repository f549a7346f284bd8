"""Rate limits, leases and breakers shared by analysts on different stores through a real Redis."""

import multiprocessing
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.servers import FREE
from workbench.runtime import Workbench
from workbench.team import TeamWarning


def analyst(path, url, **settings) -> Workbench:
    team = {"redis_url": url, "name": "t", **settings.pop("team", {})}
    return Workbench.from_config(store=str(path), team=team, **settings)


def _paced_process(path: str, redis_url: str, api_base: str, warm_base: str, n: int) -> None:
    wb = analyst(path, redis_url)
    wb.add_route("warm", [{"name": "warm", "model": "openai/c", "api_base": warm_base, **FREE}])
    wb.ask("warm up", model="warm")  # a process's first call pays one-off setup: not inside a slot
    wb.add_route("r", [{"name": "shared", "model": "openai/c", "api_base": api_base, "rpm": 300, **FREE}])  # 0.2 s
    for i in range(n):
        wb.ask(f"q{i}", model="r")


def test_processes_on_different_stores_share_one_rpm_schedule(tmp_path, redis_server, chaos):
    server, warm = chaos(name="shared"), chaos(name="warm")
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_paced_process, args=(str(tmp_path / f"{i}.db"), redis_server.url, server.url, warm.url, 4))
        for i in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    # 12 slots 0.2 s apart span 2.2 s (less a late first or early last arrival on a busy machine); with a
    # limiter per store (no team) they arrive within ~0.6 s.
    assert server.stats.requests == 12
    assert max(server.stats.arrivals) - min(server.stats.arrivals) >= 1.6


def test_max_parallel_holds_across_stores(tmp_path, redis_server, chaos):
    server = chaos(name="narrow", latency_ms=100)
    analysts = [analyst(tmp_path / f"{i}.db", redis_server.url) for i in range(2)]
    for wb in analysts:
        wb.add_route("r", [{"name": "narrow", "model": "openai/c", "api_base": server.url, "max_parallel": 2}])
    with ThreadPoolExecutor(max_workers=8) as pool:
        texts = list(pool.map(lambda i: analysts[i % 2].ask(f"t{i}", model="r").text, range(12)))
    assert len(texts) == 12
    assert server.stats.max_in_flight == 2
    assert analysts[0].models().set_index("deployment").loc["narrow", "in_flight"] == 0  # every lease given back


def test_a_breaker_opened_by_one_analyst_spares_the_others(tmp_path, redis_server, chaos):
    dead, backup = chaos(name="dead", status=500), chaos(name="backup")
    deployments = [
        {"name": "dead", "model": "openai/c", "api_base": dead.url},
        {"name": "backup", "model": "openai/c", "api_base": backup.url},
    ]
    a, b = (analyst(tmp_path / f"{n}.db", redis_server.url, breaker={"failures": 2}) for n in "ab")
    for wb in (a, b):
        wb.add_route("r", deployments, retries=0)
    for i in range(2):
        assert a.ask(f"a{i}", model="r").text.startswith("[backup]")
    sent = dead.stats.requests
    assert b.ask("b0", model="r").text.startswith("[backup]")
    assert dead.stats.requests == sent  # b skipped the dead server without sending to it
    attempts = b.calls.attempts(b.calls.df().iloc[0]["call_id"])
    assert attempts.iloc[0]["error"].startswith("circuit open")


def test_redis_down_rate_limits_fall_back_to_this_machine(tmp_path, redis_server, chaos):
    server = chaos(name="paced")
    wb = analyst(tmp_path / "a.db", redis_server.url, team={"budgets_when_down": "local"})
    wb.add_route("r", [{"name": "paced", "model": "openai/c", "api_base": server.url, "rpm": 600, "max_parallel": 2}])
    redis_server.stop()
    t0 = time.perf_counter()  # before the first call: its slot starts the schedule the next four are paced on
    with pytest.warns(TeamWarning, match="rate limits fall back"):
        assert wb.ask("still paced", model="r").text.startswith("[paced]")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TeamWarning)
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda i: wb.ask(f"q{i}", model="r"), range(4)))
    assert time.perf_counter() - t0 >= 0.35  # five calls 0.1 s apart: still paced, by this store's limiter


def test_limits_can_fail_closed_while_redis_is_down(tmp_path, redis_server, chaos):
    server, backup = chaos(name="paced"), chaos(name="backup")
    wb = analyst(tmp_path / "a.db", redis_server.url, team={"budgets_when_down": "local", "limits_when_down": "closed"})
    wb.add_route(
        "r",
        [
            {"name": "paced", "model": "openai/c", "api_base": server.url, "rpm": 600},
            {"name": "backup", "model": "openai/c", "api_base": backup.url},
        ],
    )
    redis_server.stop()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TeamWarning)
        assert wb.ask("goes to the backup", model="r").text.startswith("[backup]")
    assert server.stats.requests == 0
