"""Circuit breakers over real HTTP: open, skip without sending, probe, close; wait within the deadline."""

import time

import pytest

from workbench import ProviderError
from workbench.runtime import Workbench
from workbench.serving.breaker import Breakers


def bench(tmp_path, failures=2, cooldown_s=0.5):
    return Workbench.from_config(store=str(tmp_path / "w.db"), breaker={"failures": failures, "cooldown_s": cooldown_s})


def statuses(wb, call_id):
    return wb.calls.attempts(call_id)[["deployment", "status", "error_class"]].fillna("").values.tolist()


def test_opens_after_consecutive_failures_and_stops_sending(tmp_path, chaos):
    dead, ok = chaos(name="dead", status=503), chaos(name="ok")
    wb = bench(tmp_path)
    wb.add_route(
        "r",
        [
            {"name": "dead", "model": "openai/c", "api_base": dead.url},
            {"name": "ok", "model": "openai/c", "api_base": ok.url},
        ],
        retries=0,
    )
    wb.ask("1", model="r")
    wb.ask("2", model="r")  # second consecutive failure: the circuit opens
    third = wb.ask("3", model="r")
    assert statuses(wb, third.call_id) == [["dead", "skipped", "CircuitOpen"], ["ok", "ok", ""]]
    assert dead.stats.requests == 2
    assert wb.models().set_index("deployment").loc["dead", "breaker"] == "open"


def test_half_open_probe_closes_on_success_and_reopens_on_failure(tmp_path, chaos):
    flaky, ok = chaos(name="flaky", status=500), chaos(name="ok")
    wb = bench(tmp_path, failures=1, cooldown_s=0.3)
    wb.add_route(
        "r",
        [
            {"name": "flaky", "model": "openai/c", "api_base": flaky.url},
            {"name": "ok", "model": "openai/c", "api_base": ok.url},
        ],
        retries=0,
    )
    wb.ask("open it", model="r")
    time.sleep(0.35)
    probe = wb.ask("probe while still failing", model="r")
    assert statuses(wb, probe.call_id)[0] == ["flaky", "error", "InternalServerError"]
    assert wb.models().set_index("deployment").loc["flaky", "breaker"] == "open"
    assert flaky.stats.requests == 2
    flaky.status = None  # the deployment recovers
    time.sleep(0.35)
    healed = wb.ask("probe again", model="r")
    assert healed.text == "[flaky] probe again"
    assert wb.models().set_index("deployment").loc["flaky", "breaker"] == "closed"


def test_when_every_circuit_is_open_the_call_waits_for_the_probe_within_its_deadline(tmp_path, chaos):
    only = chaos(name="only", status=503)
    wb = bench(tmp_path, failures=1, cooldown_s=0.6)
    wb.add_route("r", [{"name": "only", "model": "openai/c", "api_base": only.url}], retries=0)
    with pytest.raises(ProviderError):
        wb.ask("open it", model="r")
    only.status = None
    t0 = time.perf_counter()
    result = wb.ask("wait for me", model="r")
    assert result.text == "[only] wait for me"
    assert time.perf_counter() - t0 >= 0.5
    assert statuses(wb, result.call_id)[0] == ["only", "skipped", "CircuitOpen"]


def test_a_probe_beyond_the_deadline_fails_at_once_with_a_clear_reason(tmp_path, chaos):
    only = chaos(name="only", status=503)
    wb = bench(tmp_path, failures=1, cooldown_s=30)
    wb.add_route("r", [{"name": "only", "model": "openai/c", "api_base": only.url}], retries=0, deadline_s=5)
    with pytest.raises(ProviderError):
        wb.ask("open it", model="r")
    t0 = time.perf_counter()
    with pytest.raises(ProviderError, match=r"no deployment could be tried \(only: circuit open; next probe in"):
        wb.ask("no waiting 30 s", model="r")
    assert time.perf_counter() - t0 < 1


def test_rate_limits_and_bad_requests_do_not_count_against_health():
    now = [0.0]
    b = Breakers(failures=2, cooldown_s=10, clock=lambda: now[0])
    for error in ("RateLimitError", "ContextWindowExceededError", "RateLimitError"):
        b.failed("d", error)
    assert b.state("d") == "closed"
    b.failed("d", "Timeout")
    b.failed("d", "InternalServerError")
    assert b.state("d") == "open"
    assert not b.allow("d")
    now[0] = 10.0
    assert b.allow("d")
    assert not b.allow("d")  # one probe at a time
    b.succeeded("d")
    assert b.state("d") == "closed"


def test_breakers_and_health_are_kept_per_endpoint_not_per_model_name(tmp_path, chaos):
    """Two routes using one model name at different servers, and two replicas of it in one route."""
    dead, alive, replica = chaos(name="dead", status=503), chaos(name="alive"), chaos(name="replica")
    wb = bench(tmp_path, failures=1, cooldown_s=60)
    wb.add_route("a", [{"model": "openai/llama", "api_base": dead.url}], retries=0)
    wb.add_route("b", [{"model": "openai/llama", "api_base": alive.url}], retries=0)
    wb.add_route(
        "pair",
        [{"model": "openai/llama", "api_base": dead.url}, {"model": "openai/llama", "api_base": replica.url}],
        retries=0,
    )
    with pytest.raises(ProviderError):
        wb.ask("x", model="a")  # the dead server's breaker opens
    assert wb.ask("y", model="b").text == "[alive] y"  # the same model name elsewhere is not skipped
    both = wb.ask("z", model="pair")
    assert both.text == "[replica] z"
    rows = wb.calls.attempts(both.call_id)[["endpoint", "status", "error_class"]].fillna("").values.tolist()
    assert rows == [
        [f"openai/llama @ {dead.url}", "skipped", "CircuitOpen"],
        [f"openai/llama @ {replica.url}", "ok", ""],
    ]
    models = wb.models().set_index(["route", "order"])
    assert models.loc[("a", 1), "breaker"] == "open"
    assert models.loc[("b", 1), "breaker"] == "closed"
    assert models.loc[("pair", 1), "error_rate"] == 1.0
    assert models.loc[("pair", 2), "error_rate"] == 0.0
