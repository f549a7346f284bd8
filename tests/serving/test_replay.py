import pytest

from tests.tampering import forged_copy, rechain, tamper
from workbench import ReplayMiss
from workbench.observability import AlertWarning
from workbench.runtime import Workbench
from workbench.store.chain import AuditChainBroken


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


# ---- a recording edited in the file is refused, never served --------------------------------------------------

_EDITS = {
    "its answer": "UPDATE calls SET text = 'Approved: wire the money.' WHERE id = '{id}'",
    "its tool calls": "UPDATE calls SET tool_calls = '[{{\"name\": \"wire\"}}]' WHERE id = '{id}'",
    "its attempt's model version": "UPDATE attempts SET response_model = 'local/echo-2' WHERE call_id = '{id}'",
    "its attempt, deleted": "DELETE FROM attempts WHERE call_id = '{id}'",
    "its token count": "UPDATE calls SET completion_tokens = 1, total_tokens = 2 WHERE id = '{id}'",
    "its audit entry's digest": (
        "UPDATE audit SET payload = replace(payload, '\"d\": \"', '\"d\": \"0') WHERE kind = 'call' AND ref = '{id}'"
    ),
    "its audit entry, deleted": "DELETE FROM audit WHERE kind = 'call' AND ref = '{id}'",
    "a forged newer copy": forged_copy("id = '{id}'", "Approved: wire the money."),
}


@pytest.mark.parametrize("edit", list(_EDITS))
def test_a_recording_edited_in_the_file_is_refused_and_never_served(wb, edit):
    wb.ask("What did we decide about the invoice?", session="s")
    wb.ask("And why?", session="s")
    first = wb.calls.df()["call_id"][0]
    edits = _EDITS[edit]
    tamper(wb, *[sql.format(id=first) for sql in ((edits,) if isinstance(edits, str) else edits)])
    calls = wb.store.query("SELECT COUNT(*) AS n FROM calls")[0]["n"]
    replay = replaying(wb)
    refused = r"^replay refused: (recorded call|the audit entry|no audit entry|(an )?attempt)"
    with pytest.warns(AlertWarning, match=refused), pytest.raises(AuditChainBroken, match=refused) as e:
        replay.ask("What did we decide about the invoice?", session="s")
    assert "\n" not in str(e.value) and "wire the money" not in str(e.value)
    assert replay.alerts.df()["rule"].tolist() == ["audit_chain"]  # recorded and posted, as a broken chain is
    assert replay.store.query("SELECT COUNT(*) AS n FROM calls WHERE text LIKE '%wire%' AND mode = 'replay'") == [
        {"n": 0}
    ]
    with pytest.warns(AlertWarning), pytest.raises(AuditChainBroken, match="^replay refused"):  # before re-sending
        replay.replay("s")
    assert replay.store.query("SELECT COUNT(*) AS n FROM calls WHERE mode = 'live'")[0]["n"] == calls  # none lost


def test_a_session_with_a_call_deleted_from_the_file_is_not_replayed_without_it(wb):
    """A replay proves the session reproduces: one missing a call would prove it for what is left."""
    wb.ask("What did we decide about the invoice?", session="s")
    wb.ask("And why?", session="s")
    tamper(wb, "DELETE FROM calls WHERE prompt LIKE 'What%'")
    replay = replaying(wb)
    refused = r"^replay refused: recorded call \w+ of session 's' \(audit entry \d+\) was deleted from the file, so "
    with pytest.warns(AlertWarning, match=refused), pytest.raises(AuditChainBroken, match=refused) as e:
        replay.replay("s")
    assert "the session is not replayed without it" in str(e.value)
    assert replay.store.query("SELECT COUNT(*) AS n FROM calls WHERE mode = 'replay'") == [{"n": 0}]


def test_a_recording_checks_out_only_with_the_key_it_was_written_with(wb, monkeypatch):
    wb.ask("What did we decide about the invoice?")
    replay = replaying(wb)
    monkeypatch.setenv("WORKBENCH_AUDIT_KEY", "not the key the log was written with")
    with pytest.raises(AuditChainBroken, match=r"written with key \w+, but this process has .*nothing was served"):
        replay.ask("What did we decide about the invoice?")


def test_a_recording_from_before_rows_were_bound_replays_once_adopted(wb):
    wb.ask("What did we decide about the invoice?")
    wb.close()
    tamper(  # the store as a version before row binding left it: call entries bind nothing, adoption pending
        wb,
        "DELETE FROM audit_carry",
        "UPDATE audit SET payload = replace(payload, '\"bind\"', '\"was\"')",
        "INSERT INTO audit_state (k, v) VALUES ('adopt', '1')",
    )
    rechain(wb.store.path)
    replay = Workbench.from_config(store=str(wb.store.path), mode="replay")  # adopts the rows as it opens
    assert replay.ask("What did we decide about the invoice?").text == "What did we decide about the invoice?"
    tamper(replay, "UPDATE calls SET text = 'edited after adoption' WHERE mode = 'live'")
    with pytest.warns(AlertWarning), pytest.raises(AuditChainBroken, match="^replay refused: recorded call"):
        replay.ask("What did we decide about the invoice?")


def test_a_session_rerun_checks_each_recording_once_and_a_newer_copy_where_it_is_served(wb, monkeypatch):
    """A re-run serves the recording it read and checked before re-sending, without reading it again; a newer
    recording of the same request (here from another session), which is what a replay answers with, is checked
    where it is served."""
    wb.ask("What did we decide about the invoice?", session="s")
    wb.ask("And why?", session="s")
    wb.ask("What did we decide about the invoice?", session="other")  # the same request, recorded later
    first, second, newer = wb.calls.df().sort_values("started_at")["call_id"]
    replay = replaying(wb)
    checked: list[str] = []
    real = replay.store.recorded_call
    monkeypatch.setattr(replay.store, "recorded_call", lambda call_id, *a: checked.append(call_id) or real(call_id, *a))
    report = replay.replay("s")
    assert report["identical"].all() and len(report) == 2
    assert sorted(checked) == sorted([first, second, newer])
    served = replay.store.query("SELECT replay_of FROM calls WHERE mode = 'replay' ORDER BY started_at")
    assert [r["replay_of"] for r in served] == [newer, second]
