import pytest

from workbench import WorkbenchError
from workbench.observability import plots
from workbench.runtime import Workbench

PRICES = {"local/echo": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.001}}


@pytest.fixture
def spent(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "w.db"), prices=PRICES, cache={"enabled": True})
    wb.ask("a", user="ana")
    wb.ask("a", user="ana")  # a cache hit
    wb.ask("b b", user="bo")
    wb.ask("c", model="local/extractive")
    return wb


def test_spend_over_time_stacks_one_trace_per_dimension(spent):
    fig = plots.spend_over_time(spent.store, by="user", freq="day")
    assert sorted(t.name for t in fig.data) == ["(none)", "ana", "bo"]
    total = sum(sum(t.y) for t in fig.data)
    assert total == pytest.approx(spent.costs.total())
    with pytest.raises(WorkbenchError, match="by is one of"):
        plots.spend_over_time(spent.store, by="planet")


def test_latency_box_per_model_and_cache_hit_rate(spent):
    fig = plots.latency_by_model(spent.store)
    assert [t.name.split("<br>")[0] for t in fig.data] == ["local/echo", "local/extractive"]
    assert "p95" in fig.data[0].name
    rate = plots.cache_hit_rate(spent.store)
    assert list(rate.data[0].y) == [pytest.approx(0.25)]


def test_empty_store_gives_empty_figures(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "e.db"))
    assert len(plots.spend_over_time(wb.store).data) == 0
    assert len(plots.cache_hit_rate(wb.store).data) == 0
