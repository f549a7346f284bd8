"""Metrics per bucket and dimension, and the dashboard grid, from real recorded calls."""

import pytest

from workbench.errors import ProviderError, WorkbenchError


def test_metrics_per_model_with_errors_latency_cache_and_tokens(wb, chaos):
    for i in range(6):
        wb.ask(f"question {i}", model="local/echo", user="ana")
    wb.ask("question 0", model="local/echo", user="ana")  # a cache hit if caching is on
    server = chaos(status=500)
    wb.add_route("flaky", [{"model": "openai/c", "api_base": server.url}], retries=0)
    with pytest.raises(ProviderError):
        wb.ask("will fail", model="flaky", user="bob")
    df = wb.metrics.df(by="model", freq="day")
    echo = df[df["model"] == "local/echo"].iloc[0]
    assert echo["calls"] == 7
    assert echo["errors"] == 0
    assert echo["tokens"] > 0
    assert echo["p95_ms"] >= echo["p50_ms"]
    failed = df[df["model"] != "local/echo"].iloc[0]
    assert failed["errors"] == 1
    assert failed["error_rate"] == 1.0
    by_user = wb.metrics.df(by="user", freq="minute").groupby("user")["calls"].sum().to_dict()
    assert by_user == {"ana": 7, "bob": 1}
    head = wb.metrics.summary()
    assert head["calls"] == 8
    assert head["error_rate"] == pytest.approx(1 / 8)
    with pytest.raises(WorkbenchError, match="freq is one of"):
        wb.metrics.df(freq="week")
    with pytest.raises(WorkbenchError, match="by is one of"):
        wb.metrics.df(by="colour")


def test_dashboard_is_a_grid_of_the_whole_system(wb):
    for i in range(3):
        wb.ask(f"q{i}", model="local/echo")
    fig = wb.dashboard()
    names = {trace.name for trace in fig.data}
    assert {"ok", "p50", "p95", "cache hit rate", "tokens", "local/echo"} <= names
    assert "3 calls" in fig.layout.title.text
    assert len(fig.layout.annotations) == 6
    empty = wb.dashboard(since="2099-01-01")
    assert "0 calls" in empty.layout.title.text
