"""Team budgets and the kill switch in a real Redis: shared by stores and processes, never overspent, and
failing closed (or, when configured, back to this store's budgets) while Redis is down.
"""

import multiprocessing
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from workbench import BudgetExceeded, ConfigError, KillSwitchActive, TeamStateDown
from workbench.cost import BudgetWarning
from workbench.runtime import Workbench
from workbench.team import TeamWarning
from workbench.team.state import SNAPSHOT_S

PRICES = {"local/echo": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.001}}
LIMIT = 0.2


def analyst(path, url, **team) -> Workbench:
    return Workbench.from_config(store=str(path), prices=PRICES, team={"redis_url": url, "name": "t", **team})


def spent(*stores) -> float:
    return sum(
        w.store.query("SELECT COALESCE(SUM(cost_usd), 0) c FROM calls WHERE status = 'ok'")[0]["c"] for w in stores
    )


def attempt(wb, i):
    try:
        return wb.ask(f"question {i} " * 3, max_tokens=5, user="ana")
    except BudgetExceeded:
        return None


def _analyst_process(path: str, url: str, n: int, out) -> None:
    wb = analyst(path, url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BudgetWarning)
        with ThreadPoolExecutor(max_workers=10) as pool:
            done = [r for r in pool.map(lambda i: attempt(wb, i), range(n)) if r is not None]
    out.put(len(done))


def test_two_stores_in_four_processes_never_overspend_a_team_budget(tmp_path, redis_server):
    analyst(tmp_path / "setup.db", redis_server.url).budgets.set("user:ana", LIMIT)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    paths = [tmp_path / "a.db", tmp_path / "b.db", tmp_path / "a.db", tmp_path / "b.db"]
    procs = [ctx.Process(target=_analyst_process, args=(str(p), redis_server.url, 25, out)) for p in paths]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    answered = sum(out.get() for _ in procs)
    a, b = analyst(tmp_path / "a.db", redis_server.url), analyst(tmp_path / "b.db", redis_server.url)
    assert 0 < answered < 100  # the budget was binding, on both stores
    assert spent(a, b) <= LIMIT
    row = a.budgets.df().set_index("scope").loc["user:ana (team)"]
    assert row["spent_usd"] == pytest.approx(spent(a, b))  # the team counted exactly what the stores recorded
    assert row["reserved_usd"] == 0  # every hold was settled or given back
    answered = [w for wb in (a, b) for w in wb.audit.df(kind="call")["what"] if w["status"] == "ok"]
    assert answered and all(w["team"] == f"t@127.0.0.1:{redis_server.port}/0" for w in answered)  # the state used
    assert a.audit.verify().ok and b.audit.verify().ok
    refused = a.calls.df(status="refused")["error"]
    assert len(refused) and refused.str.startswith("budget team user:ana (total) would be exceeded").all()


def test_a_team_budget_set_on_one_store_binds_the_other_and_is_audited_there(tmp_path, redis_server):
    a, b = analyst(tmp_path / "a.db", redis_server.url), analyst(tmp_path / "b.db", redis_server.url)
    a.budgets.set("global", 0.05)
    assert list(b.budgets.df()["scope"]) == ["global (team)"]
    with pytest.raises(BudgetExceeded, match="team global"):
        b.ask("x " * 100, max_tokens=100)
    assert b.calls.df(status="refused").shape[0] == 1  # refused and recorded, nothing sent
    entry = a.audit.df(kind="budget").iloc[-1]
    assert entry["what"]["team"] == f"t@127.0.0.1:{redis_server.port}/0"  # the audit names the team state it set
    assert a.audit.verify().ok


def test_thresholds_are_announced_once_for_the_team(tmp_path, redis_server):
    a, b = analyst(tmp_path / "a.db", redis_server.url), analyst(tmp_path / "b.db", redis_server.url)
    a.budgets.set("global", 1.0, thresholds=(0.05,))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for i in range(6):
            (a if i % 2 else b).ask(f"q{i} " * 3, max_tokens=5)
    notices = [str(w.message) for w in seen if issubclass(w.category, BudgetWarning)]
    assert len(notices) == 1 and notices[0].startswith("team budget global (total) has reached 5%")


def test_the_kill_switch_set_on_one_store_stops_the_next_call_on_the_other(tmp_path, redis_server):
    a, b = analyst(tmp_path / "a.db", redis_server.url), analyst(tmp_path / "b.db", redis_server.url)
    b.ask("before")
    a.kill("provider bill spike")
    with pytest.raises(KillSwitchActive):
        a.ask("at once, on the store that set it")
    time.sleep(SNAPSHOT_S)  # what another process read before the switch is at most this old
    with pytest.raises(KillSwitchActive, match="team t: provider bill spike, set by"):
        b.ask("after")
    assert b.calls.df(status="refused").shape[0] == 1
    b.budgets.lift()
    time.sleep(SNAPSHOT_S)  # either analyst can lift it
    assert a.ask("again").text


def test_redis_down_fails_budgets_closed_and_loses_nothing_recorded(tmp_path, redis_server):
    a = analyst(tmp_path / "a.db", redis_server.url)
    a.ask("recorded before")
    redis_server.stop()
    time.sleep(SNAPSHOT_S)  # the team state this process read last is at most this old
    with pytest.raises(TeamStateDown, match="cannot be reached.*fail closed, so nothing was sent"):
        a.ask("while down")
    with pytest.raises(TeamStateDown, match="were not changed"):
        a.budgets.set("global", 1.0)
    assert sorted(a.calls.df()["status"]) == ["ok", "refused"]
    assert a.audit.verify().ok


def test_redis_down_can_fall_back_to_this_stores_budgets(tmp_path, redis_server):
    a = analyst(tmp_path / "a.db", redis_server.url, budgets_when_down="local")
    redis_server.stop()
    with pytest.warns(TeamWarning, match="fall back to this machine's state"):
        assert a.ask("still answered").text


def _reserve_then_hang(url: str, out) -> None:
    from workbench.config import TeamSettings
    from workbench.team import TeamBudgets, TeamState

    shared = TeamBudgets(TeamState(TeamSettings(redis_url=url, name="t")), ttl_s=1.0)
    out.put(shared.reserve("doomed-call", {"global": ""}, 0.9, 10))
    time.sleep(60)  # killed here, before it can settle


def test_a_hold_left_by_a_killed_process_lapses_and_never_counts_as_spend(tmp_path, redis_server):
    a = analyst(tmp_path / "a.db", redis_server.url)
    a.budgets.set("global", 1.0)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    doomed = ctx.Process(target=_reserve_then_hang, args=(redis_server.url, out))
    doomed.start()
    assert out.get(timeout=60) == 1  # it holds $0.90 of the team's $1.00
    doomed.kill()  # SIGKILL: no settle, no release
    doomed.join()
    with pytest.raises(BudgetExceeded, match=r"reserved \$0\.900000"):
        a.ask("x " * 50, max_tokens=100)
    time.sleep(1.1)  # its hold's time to live (15 minutes by default)
    assert a.ask("now it fits", max_tokens=5).text
    row = a.budgets.df().set_index("scope").loc["global (team)"]
    assert row["reserved_usd"] == 0 and row["spent_usd"] == pytest.approx(spent(a))


@pytest.mark.parametrize(
    ("team", "says"),
    [
        ({"redis_url": "redis://:hunter2@127.0.0.1:6379/0"}, "password_env"),
        ({"redis_url": "http://127.0.0.1:6379"}, "must start with redis://"),
        ({"redis_url": "redis://127.0.0.1:6379/0", "name": "ops:*"}, "name"),
        ({"redis_url": "redis://127.0.0.1:6379/0", "password_env": "NO_SUCH_VARIABLE_SET"}, "not set"),
    ],
)
def test_a_bad_team_setting_is_a_one_line_config_error(tmp_path, team, says):
    with pytest.raises(ConfigError, match=says) as caught:
        wb = Workbench.from_config(store=str(tmp_path / "w.db"), team=team)
        wb.ask("anything")  # the password variable is read when Redis is first used
    assert "\n" not in str(caught.value)
