"""Alerts fire once when a threshold is crossed, resolve when back under, are recorded and posted."""

import time

import pytest

from workbench.errors import ConfigError, ProviderError
from workbench.observability import AlertWarning
from workbench.runtime import Workbench


def test_error_rate_fires_once_while_over_and_resolves_when_back_under(wb, chaos):
    server = chaos(name="flaky", status=500)
    wb.add_route("flaky", [{"name": "flaky", "model": "openai/c", "api_base": server.url}], retries=0)
    wb.alerts.add("errors", "error_rate", 0.5, min_calls=2, route="flaky")
    with pytest.raises(ProviderError):
        wb.ask("one", model="flaky")  # 1 call: too few to say
    with pytest.warns(AlertWarning, match=r"ALERT errors: error_rate = 1 is over 0.5 in the last 300 s on route flaky"):
        with pytest.raises(ProviderError):
            wb.ask("two", model="flaky")
    with pytest.raises(ProviderError):
        wb.ask("three", model="flaky")  # still firing: no second alert
    server.status = None
    for i in range(2):
        wb.ask(f"ok {i}", model="flaky")  # 3 errors of 5: still over
    with pytest.warns(AlertWarning, match=r"resolved errors: error_rate = 0.5, back at or under 0.5"):
        wb.ask("ok 2", model="flaky")
    events = wb.alerts.df()
    assert events["event"].tolist() == ["resolved", "fired"]
    assert events["call_id"].iloc[1] == wb.calls.df()["call_id"].iloc[1]  # the second call tipped it
    assert wb.alerts.values()[["name", "firing", "value"]].values.tolist() == [["errors", False, 0.5]]


def test_other_routes_do_not_trip_a_route_rule(wb, chaos):
    server = chaos(name="down", status=503)
    wb.add_route("down", [{"name": "down", "model": "openai/c", "api_base": server.url}], retries=0)
    wb.alerts.add("echo-errors", "error_rate", 0.1, min_calls=1, route="local/echo")
    with pytest.raises(ProviderError):
        wb.ask("x", model="down")
    wb.ask("fine", model="local/echo")
    assert wb.alerts.df().empty


def test_latency_percentile_rule(wb, chaos):
    server = chaos(name="slow", latency_ms=60)
    wb.add_route("slow", [{"name": "slow", "model": "openai/c", "api_base": server.url}])
    wb.alerts.add("slow", "p95_latency_ms", 40, min_calls=3)
    wb.ask("a", model="slow")
    wb.ask("b", model="slow")
    with pytest.warns(AlertWarning, match="ALERT slow: p95_latency_ms"):
        wb.ask("c", model="slow")
    assert wb.alerts.values()["value"].iloc[0] >= 60


def test_the_webhook_gets_the_alert_and_the_store_never_gets_its_url(tmp_path, hook, monkeypatch):
    url, received = hook
    monkeypatch.setenv("WB_ALERT_HOOK", url)
    wb = Workbench.from_config(
        store=str(tmp_path / "a.db"),
        prices={"local/echo": {"input_cost_per_token": 0.01}},
        alerts={"webhook_env": "WB_ALERT_HOOK"},
    )
    first = wb.ask("three words here", model="local/echo")
    wb.alerts.add("spend", "spend_usd", first.cost_usd * 1.5)
    wb.alerts.flush()
    assert wb.alerts.check() == []
    assert received == []  # one call's spend: under
    with pytest.warns(AlertWarning, match=r"ALERT spend: spend_usd = [0-9.]+ is over [0-9.]+ in the last 300 s"):
        wb.ask("three words here", model="local/echo", cache=False)
    wb.alerts.flush()
    assert len(received) == 1
    assert received[0]["rule"] == "spend"
    assert received[0]["event"] == "fired"
    assert received[0]["value"] == pytest.approx(2 * first.cost_usd)
    assert received[0]["text"].startswith("ALERT spend")
    assert wb.alerts.df()["delivery"].iloc[0] == "delivered (204)"
    wb.close()
    for path in tmp_path.glob("a.db*"):
        data = path.read_bytes()
        assert b"hook-secret-123" not in data
        assert b"/hook" not in data


def test_a_dead_webhook_is_recorded_and_the_call_is_unaffected(tmp_path):
    wb = Workbench.from_config(
        store=str(tmp_path / "a.db"),
        prices={"local/echo": {"input_cost_per_token": 0.01}},
        alerts={
            "webhook": "http://127.0.0.1:9/nobody-listens",
            "rules": [{"name": "any", "metric": "spend_usd", "above": 0}],
        },
    )
    with pytest.warns(AlertWarning):
        assert wb.ask("still answered", model="local/echo").text == "still answered"
    wb.alerts.flush()
    assert wb.alerts.df()["delivery"].str.startswith("failed: URLError").all()


def test_processes_sharing_a_store_fire_once_between_them(tmp_path):
    rule = {"name": "spend", "metric": "spend_usd", "above": 0.0}
    settings = {
        "store": str(tmp_path / "s.db"),
        "prices": {"local/echo": {"input_cost_per_token": 0.01}},
        "alerts": {"rules": [rule]},
    }
    first, second = Workbench.from_config(**settings), Workbench.from_config(**settings)
    with pytest.warns(AlertWarning):
        first.ask("hello", model="local/echo")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", AlertWarning)
        second.ask("hello again", model="local/echo")  # already firing: no second alert
    assert len(second.alerts.df()) == 1


def test_bad_rules_are_one_line_errors(wb, tmp_path):
    with pytest.raises(ConfigError, match=r"alert 'x': metric: Input should be 'error_rate'"):
        wb.alerts.add("x", "errors", 1)
    with pytest.raises(ConfigError, match="no alert rule named 'nope'"):
        wb.alerts.remove("nope")
    (tmp_path / "workbench.toml").write_text('[[alerts.rules]]\nname = "x"\nmetric = "p99"\nabove = 1\n')
    with pytest.raises(ConfigError) as err:
        Workbench.from_config(tmp_path / "workbench.toml", store=str(tmp_path / "c.db"))
    assert "alerts.rules[0].metric: Input should be 'error_rate'" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_rule_added_again_starts_not_firing(wb, chaos):
    server = chaos(name="down", status=503)
    wb.add_route("down", [{"name": "down", "model": "openai/c", "api_base": server.url}], retries=0)
    # a window of 2 s: a loaded CI machine once took over 0.5 s from a failing call's start to its rule's check
    wb.alerts.add("errs", "error_rate", 0.5, min_calls=1, window_s=2, route="down")
    with pytest.warns(AlertWarning, match="ALERT errs"):
        with pytest.raises(ProviderError):
            wb.ask("x", model="down")
    assert wb.alerts.values()["firing"].tolist() == [True]
    time.sleep(2.1)  # the failing call is out of the window; a new run of the notebook adds the rule again
    wb.alerts.add("errs", "error_rate", 0.5, min_calls=1, window_s=2, route="down")
    assert wb.alerts.values()[["firing", "since"]].values.tolist() == [[False, None]]
    with pytest.warns(AlertWarning, match="ALERT errs"):  # and fires again on the next failure, not silently
        with pytest.raises(ProviderError):
            wb.ask("y", model="down")
