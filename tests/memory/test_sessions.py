"""A session reset starts the session afresh: its history, and what its views show; nothing recorded is lost."""

import pytest

from workbench.runtime import Workbench


@pytest.fixture
def wb(tmp_path):
    bench = Workbench.from_config(store=str(tmp_path / "s.db"))
    yield bench
    bench.close()


def test_views_of_a_session_start_at_its_reset_and_the_calls_before_stay_recorded(wb):
    chat = wb.session("tour")
    assert chat.started == ""
    wb.ask("first run, turn one", model="local/echo", session="tour")
    chat.reset()
    assert chat.started
    assert wb.calls.df(session="tour").empty
    assert chat.history == []
    wb.ask("second run, turn one", model="local/echo", session="tour")
    assert wb.calls.df(session="tour")["prompt"].tolist() == ["second run, turn one"]
    assert len(wb.calls.df()) == 2  # without a session: every call, before the reset too
    assert wb.calls.df(since=chat.started)["prompt"].tolist() == ["second run, turn one"]
    replayed = wb.replay("tour")
    assert replayed["prompt"].tolist() == ["second run, turn one"]
    assert replayed["identical"].all()


def test_guard_events_and_new_cases_of_a_session_start_at_its_reset(wb, tmp_path):
    from workbench import GuardrailViolation

    with pytest.raises(GuardrailViolation):
        wb.ask("my key is sk-proj-Zq8Xy2Lm4Nc6Vb8Rt0Wp3Ks5Jd7Hf9Ga1", model="local/echo", session="intake")
    assert len(wb.guard.df("intake")) == 1
    wb.session("intake").reset()
    assert wb.guard.df("intake").empty
    assert len(wb.guard.df()) == 1
    suite = tmp_path / "s.eval.yaml"
    (tmp_path / "s.jsonl").write_text('{"id": "a", "input": "hi", "expected": "hi"}\n')
    suite.write_text('name: s\ndataset: s.jsonl\nprompt: "{input}"\nscorers: [contains]\n')
    wb.ask("hello again", model="local/echo", session="intake")
    assert wb.evals.add_cases(suite, session="intake") == 1
    assert [c["input"] for c in wb.evals.load(suite).cases] == ["hi", "hello again"]
    wb.session("intake").reset()
    wb.ask("hello again", model="local/echo", session="intake")  # the same exchange, recorded again
    assert wb.evals.add_cases(suite, session="intake") == 0  # its case is there already: not added twice
