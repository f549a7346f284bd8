"""Alert rules over the team's calls: metrics from every analyst's store, one firing state, through a real Redis."""

import multiprocessing
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.servers import FREE
from workbench.errors import ProviderError
from workbench.observability import AlertWarning
from workbench.runtime import Workbench
from workbench.team import TeamWarning
from workbench.team.alerts import SharedAlerts

RULE = {"name": "errors", "metric": "error_rate", "above": 0.5, "min_calls": 4, "route": "flaky"}


def analyst(path, url, hook_url=None, rules=(RULE,)) -> Workbench:
    alerts = {"rules": list(rules), **({"webhook": hook_url} if hook_url else {})}
    return Workbench.from_config(
        store=str(path), team={"redis_url": url, "name": "t"}, alerts=alerts, breaker={"failures": 100}
    )  # the breaker stays closed: every failing call reaches the server


def _flaky(wb, url) -> None:
    wb.add_route("flaky", [{"name": "flaky", "model": "openai/c", "api_base": url, **FREE}], retries=0)


def _fail(wb, prompt) -> None:
    with pytest.raises(ProviderError):
        wb.ask(prompt, model="flaky")


def test_the_teams_calls_fire_a_rule_no_single_store_would_and_once(tmp_path, redis_server, chaos, hook):
    hook_url, received = hook
    server = chaos(name="flaky", status=500)
    a, b = (analyst(tmp_path / f"{n}.db", redis_server.url, hook_url) for n in "ab")
    assert isinstance(a.alerts, SharedAlerts)
    for wb in (a, b):
        _flaky(wb, server.url)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlertWarning)  # 3 calls of the team: too few to say
        _fail(a, "a1")
        _fail(a, "a2")
        _fail(b, "b1")
    with pytest.warns(AlertWarning, match=r"ALERT errors: error_rate = 1 is over 0.5 .* \(team t\)"):
        _fail(b, "b2")  # the team's 4th call: each store holds 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlertWarning)  # firing for the team: nobody fires it again
        _fail(a, "a3")
        _fail(b, "b3")
    fired = b.alerts.df()
    assert fired["event"].tolist() == ["fired"]
    assert fired["call_id"].iloc[0] == b.calls.df()["call_id"].iloc[1]  # b's 2nd call tipped it
    assert a.alerts.df().empty  # one row for the team, in the store of the call that tipped it
    seen = a.alerts.values().iloc[0]
    assert bool(seen["firing"]) and seen["value"] == 1.0  # but a sees the team firing
    # 6 errors of 6; 6 successes bring it to 0.5: back at or under
    server.status = None
    for i in range(5):
        (a if i % 2 else b).ask(f"ok {i}", model="flaky")
    with pytest.warns(AlertWarning, match=r"resolved errors: error_rate = 0.5"):
        a.ask("ok 5", model="flaky")
    assert a.alerts.df()["event"].tolist() == ["resolved"]
    assert b.alerts.df()["event"].tolist() == ["fired"]
    for wb in (a, b):
        wb.alerts.flush()
    assert sorted(r["event"] for r in received) == ["fired", "resolved"]  # one post each for the team


def test_an_analyst_without_rules_still_counts_toward_the_teams(tmp_path, redis_server, chaos):
    server = chaos(name="flaky", status=500)
    watcher = analyst(tmp_path / "w.db", redis_server.url)
    quiet = analyst(tmp_path / "q.db", redis_server.url, rules=())
    _flaky(quiet, server.url)
    for i in range(4):
        _fail(quiet, f"q{i}")
    with pytest.warns(AlertWarning, match="ALERT errors"):
        assert watcher.alerts.check() == [
            "ALERT errors: error_rate = 1 is over 0.5 in the last 300 s on route flaky (team t)"
        ]
    assert quiet.alerts.df().empty


def _tip(path: str, url: str, api_base: str, barrier) -> None:
    wb = analyst(path, url)
    _flaky(wb, api_base)
    barrier.wait(30)
    for i in range(3):
        try:
            wb.ask(f"p{i}", model="flaky")
        except ProviderError:
            pass
    wb.close()


def test_concurrent_analysts_in_processes_fire_it_once(tmp_path, redis_server, chaos):
    server = chaos(name="flaky", status=500)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    paths = [str(tmp_path / f"{i}.db") for i in range(3)]
    procs = [ctx.Process(target=_tip, args=(p, redis_server.url, server.url, barrier)) for p in paths]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    stores = [analyst(p, redis_server.url) for p in paths]
    assert sum(len(wb.calls.df()) for wb in stores) == 9
    assert sum(len(wb.alerts.df()) for wb in stores) == 1  # 9 errors in 3 stores, one alert
    assert server.stats.requests == 9


def test_concurrent_threads_on_two_stores_fire_it_once(tmp_path, redis_server, chaos):
    server = chaos(name="flaky", status=500, latency_ms=20)
    a, b = (analyst(tmp_path / f"{n}.db", redis_server.url) for n in "ab")
    for wb in (a, b):
        _flaky(wb, server.url)

    def call(i: int) -> None:
        try:
            (a, b)[i % 2].ask(f"t{i}", model="flaky")
        except ProviderError:
            pass

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlertWarning)
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(call, range(16)))
    assert len(a.alerts.df()) + len(b.alerts.df()) == 1


def test_redis_down_rules_fall_back_to_this_store(tmp_path, redis_server, chaos):
    server = chaos(name="flaky", status=500)
    wb = Workbench.from_config(
        store=str(tmp_path / "a.db"),
        team={"redis_url": redis_server.url, "name": "t", "budgets_when_down": "local"},
        alerts={"rules": [{**RULE, "min_calls": 2}]},
        breaker={"failures": 100},
    )
    _flaky(wb, server.url)
    redis_server.stop()
    with pytest.warns(TeamWarning, match=r"alerts fall back to this machine's state"):
        _fail(wb, "one")
    with pytest.warns(AlertWarning, match=r"ALERT errors: error_rate = 1 is over 0.5"):
        _fail(wb, "two")  # this store's two calls, its own firing state
    assert wb.alerts.df()["event"].tolist() == ["fired"]
    with pytest.warns(TeamWarning):
        assert bool(wb.alerts.values()["firing"].iloc[0])


def test_spend_and_latency_rules_add_up_the_teams_calls(tmp_path, redis_server, chaos):
    server = chaos(name="slow", latency_ms=60)
    rules = [
        {"name": "spend", "metric": "spend_usd", "above": 0.0001},
        {"name": "slow", "metric": "p95_latency_ms", "above": 40, "min_calls": 2},
    ]
    a, b = (
        Workbench.from_config(
            store=str(tmp_path / f"{n}.db"),
            team={"redis_url": redis_server.url, "name": "t"},
            alerts={"rules": rules},
            prices={"openai/c": {"input_cost_per_token": 0.00001, "output_cost_per_token": 0.00001}},
        )
        for n in "ab"
    )
    for wb in (a, b):
        wb.add_route("slow", [{"name": "slow", "model": "openai/c", "api_base": server.url}])
    first = a.ask("three words here", model="slow")
    assert first.cost_usd <= 0.0001 < 2 * first.cost_usd  # one call's spend is under the rule, two are over
    with pytest.warns(AlertWarning) as shown:
        second = b.ask("three words here", model="slow", cache=False)
    said = sorted(str(w.message) for w in shown)
    assert said[0].startswith("ALERT slow: p95_latency_ms = ") and said[0].endswith("(team t)")
    assert said[1].startswith("ALERT spend: spend_usd = ")
    values = a.alerts.values().set_index("name")
    assert values.loc["spend", "value"] == pytest.approx(first.cost_usd + second.cost_usd)
    assert values.loc["slow", "value"] >= 60  # the slower of the two (nearest rank), each at least 60 ms
    assert values["firing"].all()
