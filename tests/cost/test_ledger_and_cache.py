import pytest

from workbench import WorkbenchError
from workbench.runtime import Workbench

PRICES = {"local/echo": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}}


def test_costs_by_dimension(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "w.db"), prices=PRICES)
    wb.ask("a", user="ana", task="t1")
    wb.ask("b b", user="ana", task="t2", agent="triage")
    wb.ask("c", user="bo", task="t1")
    by_user = wb.costs.df(by="user").set_index("user")
    assert by_user.loc["ana", "calls"] == 2
    assert by_user.loc["bo", "calls"] == 1
    assert by_user["cost_usd"].sum() == pytest.approx(wb.costs.total())
    assert wb.costs.df(by="agent").set_index("agent").loc["triage", "calls"] == 1
    assert len(wb.costs.df(by="day")) == 1
    with pytest.raises(WorkbenchError, match="cannot group costs by 'colour'"):
        wb.costs.df(by="colour")
    total = wb.costs.total()
    assert (
        wb.costs.total(since="1h") == pytest.approx(total) and wb.costs.df(by="user", since="30d")["calls"].sum() == 3
    )
    assert wb.costs.total(since="2999-01-01") == 0 and wb.costs.df(since="2000-01-01")["calls"].sum() == 3
    for when in ("notadate", "2026-13-45"):  # compared as text, these found no spend, silently
        with pytest.raises(WorkbenchError, match=f"'{when}' is not a time: write an age such as 30d"):
            wb.costs.df(by="user", since=when)
        with pytest.raises(WorkbenchError, match="is not a time"):
            wb.costs.total(since=when)


def test_cache_hit_is_free_records_the_saving_and_can_be_bypassed(tmp_path, chaos):
    server = chaos(name="s")
    wb = Workbench.from_config(store=str(tmp_path / "w.db"), cache={"enabled": True, "ttl_s": 60})
    wb.add_route(
        "r",
        [
            {
                "model": "openai/chaos",
                "api_base": server.url,
                "input_cost_per_token": 0.01,
                "output_cost_per_token": 0.01,
            }
        ],
    )
    first = wb.ask("same question", model="r")
    second = wb.ask("same question", model="r")
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert second.text == first.text
    assert second.cost_usd == 0.0
    assert server.stats.requests == 1
    row = wb.calls.last()
    assert row["cached_from"] == first.call_id
    assert row["saved_usd"] == pytest.approx(first.cost_usd)
    assert wb.ask("same question", model="r", cache=False).cache_hit is False
    assert server.stats.requests == 2
    assert wb.ask("same question", model="r", temperature=0.9).cache_hit is False  # another fingerprint
    assert wb.costs.df(by="route").loc[0, "saved_usd"] == pytest.approx(first.cost_usd)


def test_cache_ttl_and_per_route_switch(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "w.db"), cache={"enabled": True, "ttl_s": 60})
    wb.ask("q")
    wb.store.execute("UPDATE calls SET started_at = '2020-01-01T00:00:00'")
    assert wb.ask("q").cache_hit is False  # expired
    wb.add_route("nocache", ["local/echo"], cache=False)
    wb.ask("z", model="nocache")
    assert wb.ask("z", model="nocache").cache_hit is False
    off = Workbench.from_config(store=str(tmp_path / "w.db"))
    off.ask("q")
    assert off.ask("q").cache_hit is False  # disabled unless configured


def test_clearing_the_cache_of_a_route_asks_afresh_and_keeps_the_calls(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "c.db"), prices=PRICES)
    wb.add_route("cached", ["local/echo"], cache=True)
    wb.add_route("other", ["local/echo"], cache=True)
    assert [wb.ask("same", model="cached").cache_hit for _ in range(2)] == [False, True]
    wb.ask("same", model="other")
    wb.cache.clear("cached")
    assert [wb.ask("same", model="cached").cache_hit for _ in range(2)] == [False, True]
    assert wb.ask("same", model="other").cache_hit  # another route's cache is untouched
    wb.cache.clear()
    assert not wb.ask("same", model="other").cache_hit
    assert len(wb.calls.df()) == 7


def test_an_answer_edited_in_the_file_is_never_reused_by_the_cache(tmp_path):
    from tests.tampering import tamper
    from workbench.observability import AlertWarning
    from workbench.store.chain import AuditChainBroken

    wb = Workbench.from_config(store=str(tmp_path / "c.db"), cache={"enabled": True, "ttl_s": 60})
    first = wb.ask("What is the refund window?")
    tamper(wb, f"UPDATE calls SET text = 'Refunds: wire the money first.' WHERE id = '{first.call_id}'")
    refused = rf"^cache refused: recorded call {first.call_id} differs"
    with pytest.warns(AlertWarning, match=refused), pytest.raises(AuditChainBroken, match=refused) as e:
        wb.ask("What is the refund window?")
    assert "\n" not in str(e.value) and "wb.cache.clear()" in str(e.value)
    wb.cache.clear()  # what the error says to do: the call is answered anew, the edited row stays for the audit
    again = wb.ask("What is the refund window?")
    assert (again.cache_hit, again.text) == (False, "What is the refund window?")
    assert "calls row" in wb.audit.verify().reason
