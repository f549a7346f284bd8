import pytest

from workbench import ReplayMiss
from workbench.runtime import Workbench


def replaying(wb) -> Workbench:
    return Workbench.from_config(store=str(wb.store.path), mode="replay")


def test_replay_serves_recorded_answers_without_calling_the_provider(wb, chaos):
    server = chaos(name="live")
    wb.add_route("r", [{"model": "openai/chaos", "api_base": server.url}])
    live = wb.ask("what is recorded?", model="r", temperature=0.2)
    server.stop()
    replay = replaying(wb)
    replay.add_route("r", [{"model": "openai/chaos", "api_base": "http://127.0.0.1:9/v1"}])
    again = replay.ask("what is recorded?", model="r", temperature=0.2)
    assert (again.text, again.model, again.usage) == (live.text, live.model, live.usage)
    row = replay.calls.last()
    assert row["mode"] == "replay"
    assert row["replay_of"] == live.call_id


def test_a_miss_names_the_closest_call_and_diffs_it(wb):
    wb.ask("What is the capital of France?", model="local/echo")
    wb.ask("Something unrelated entirely", model="local/echo")
    with pytest.raises(ReplayMiss) as err:
        replaying(wb).ask("What is the capital of Spain?", model="local/echo")
    first = wb.calls.df()["call_id"][0]
    assert err.value.closest_call_id == first
    assert f"closest is call {first}" in str(err.value).splitlines()[0]
    assert "-user: What is the capital of France?" in err.value.diff
    assert "+user: What is the capital of Spain?" in err.value.diff


def test_output_affecting_params_are_part_of_the_fingerprint(wb):
    wb.ask("same words", temperature=0.0)
    with pytest.raises(ReplayMiss) as err:
        replaying(wb).ask("same words", temperature=0.7)
    assert "-temperature: 0.0" in err.value.diff
    assert "+temperature: 0.7" in err.value.diff


def test_empty_store_says_how_to_record(wb):
    with pytest.raises(ReplayMiss, match="holds no recorded calls; run once with mode = 'live'"):
        replaying(wb).ask("anything")


def test_session_history_is_rebuilt_from_a_fresh_start_however_many_live_runs(wb):
    # The same "notebook" run live twice against one store: the second run continues the session.
    for _ in range(2):
        run = Workbench.from_config(store=str(wb.store.path))
        run.ask("My name is Ada.", session="chat")
        run.ask("What is my name?", model="local/extractive", session="chat")
    replay = replaying(wb)
    first = replay.ask("My name is Ada.", session="chat")
    second = replay.ask("What is my name?", model="local/extractive", session="chat")
    assert first.text == "My name is Ada."
    assert second.text == "My name is Ada. [user]"
    assert replay.session("chat").history[-1]["content"] == "My name is Ada. [user]"


def test_replay_does_not_import_litellm():
    import subprocess
    import sys

    code = (
        "import sys, tempfile, os; from workbench.runtime import Workbench; d = tempfile.mkdtemp();"
        "wb = Workbench.from_config(store=os.path.join(d, 'x.db'), mode='replay');\n"
        "try: wb.ask('hi')\nexcept Exception as e: print(type(e).__name__)\n"
        "print('litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["ReplayMiss", "False"]
