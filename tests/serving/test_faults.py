"""Every fault ends in a failover or a one-line error, recorded truthfully (over real HTTP to the chaos server)."""

import os
import warnings
from pathlib import Path

import pytest

from tests.hostile import circular, nested
from workbench import ProviderError
from workbench.errors import GuardrailViolation, UnknownModel, WorkbenchError
from workbench.observability.alerts import AlertWarning
from workbench.runtime import Workbench

PRICE = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.001}


@pytest.fixture
def wb(tmp_path):
    bench = Workbench.from_config(store=str(tmp_path / "f.db"))
    yield bench
    bench.close()


def _attempts(wb, call_id):
    return wb.calls.attempts(call_id)[["deployment", "status", "error_class"]].fillna("").values.tolist()


def test_a_malformed_stream_is_a_failed_attempt_that_fails_over_and_is_not_billed(wb, chaos):
    bad, good = chaos(name="bad", malformed_rate=1.0), chaos(name="good")
    wb.add_route(
        "r",
        [
            {"name": "bad", "model": "openai/m", "api_base": bad.url, **PRICE},
            {"name": "good", "model": "openai/m", "api_base": good.url, **PRICE},
        ],
        retries=0,
    )
    shown = []
    result = wb.ask("hello there", model="r", stream=True, on_token=lambda d: shown.append(d))
    assert result.text == "[good] hello there"
    assert _attempts(wb, result.call_id) == [["bad", "error", "EmptyStream"], ["good", "ok", ""]]
    assert "".join(shown) == "[good] hello there"  # the bad attempt showed nothing
    assert wb.calls.df().iloc[0]["cost_usd"] == pytest.approx(result.cost_usd)  # billed once, for the good answer
    plain = wb.ask("again", model="r")  # not streamed: a body that is not JSON is malformed, not a server error
    assert _attempts(wb, plain.call_id)[0] == ["bad", "error", "MalformedResponse"]


def test_missing_and_refused_credentials_are_auth_errors_never_retried(wb, chaos, monkeypatch):
    locked, good = chaos(name="locked", api_key="right-key"), chaos(name="good")
    monkeypatch.setenv("WRONG_KEY", "wrong-key")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    wb.add_route(
        "r",
        [
            {"name": "locked", "model": "openai/m", "api_base": locked.url, "api_key_env": "WRONG_KEY"},
            {"name": "nokey", "model": "openai/gpt-4o-mini"},
            {"name": "good", "model": "openai/m", "api_base": good.url},
        ],
        retries=2,
    )
    result = wb.ask("hi", model="r")
    assert _attempts(wb, result.call_id) == [
        ["locked", "error", "AuthenticationError"],
        ["nokey", "error", "AuthenticationError"],
        ["good", "ok", ""],
    ]
    assert locked.stats.statuses == [401]  # not retried on the same deployment
    assert "wrong-key" not in str(wb.calls.attempts(result.call_id)["error"].tolist())


def test_a_refused_connection_names_the_host(wb, chaos):
    good = chaos(name="good")
    wb.add_route(
        "r",
        [
            {"name": "gone", "model": "openai/m", "api_base": "http://127.0.0.1:9/v1"},
            {"name": "good", "model": "openai/m", "api_base": good.url},
        ],
        retries=0,
    )
    result = wb.ask("hi", model="r")
    gone = wb.calls.attempts(result.call_id).iloc[0]
    assert gone["error_class"] == "APIConnectionError"
    assert gone["error"].startswith("cannot connect to 127.0.0.1:9")


def test_a_provider_that_ignores_max_tokens_cannot_overspend_a_budget(wb, chaos):
    verbose = chaos(name="verbose")  # answers with the whole prompt, whatever max_tokens says
    wb.add_route("r", [{"model": "openai/m", "api_base": verbose.url, **PRICE}])
    wb.budgets.set("global", 1.0)
    long_prompt = "word " * 200
    shown = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlertWarning)  # read up to its reservation, never past it
        streamed = wb.ask(long_prompt, model="r", max_tokens=10, stream=True, on_token=shown.append)
    assert 5 <= streamed.usage["completion_tokens"] <= 10
    assert "".join(shown) == streamed.text  # shown: what was kept, no more
    one = wb.ask("two words", model="r", max_tokens=1, stream=True)  # its first piece alone is over the cap
    assert one.text.strip() and len(one.attempts) == 1  # an answer cut short, not an empty stream that fails over
    assert wb.store.query("SELECT finish_reason FROM calls")[0]["finish_reason"] == "length"
    with pytest.warns(UserWarning, match="over the .* reserved for it"):
        wb.ask(long_prompt, model="r", max_tokens=10)  # not streamed: it can only be recorded and alerted
    alert = wb.alerts.df().iloc[0]
    assert alert["rule"] == "budget_overspend"
    assert alert["event"] == "notice"
    spent = wb.budgets.df().iloc[0]["spent_usd"]
    assert spent == pytest.approx(float(wb.store.query("SELECT SUM(cost_usd) AS c FROM calls")[0]["c"]))


@pytest.mark.parametrize("stop", [KeyboardInterrupt, ValueError])
def test_a_stream_its_caller_stops_is_recorded_as_interrupted_and_its_cost_counts(wb, chaos, stop):
    """A notebook's stop button (KeyboardInterrupt) or an on_token that raises, mid-stream: what streamed was
    billed, so the call is recorded (``interrupted``, its partial answer, tokens and cost) and budgets count it;
    it is no answer to reuse (not in the session's history, not served by replay), and the exception goes on."""
    verbose = chaos(name="verbose")  # answers with the whole prompt, a word at a time
    wb.add_route("r", [{"model": "openai/m", "api_base": verbose.url, **PRICE}])
    wb.budgets.set("global", 100.0)
    shown = []

    def on_token(piece):
        shown.append(piece or "")
        if len(shown) == 3:
            raise stop("enough")

    prompt = "one two three four five six seven eight nine ten " * 5
    with pytest.raises(stop):
        wb.ask(prompt, model="r", stream=True, on_token=on_token, session="s")
    [row] = wb.store.query("SELECT status, text, cost_usd, completion_tokens, finish_reason, error FROM calls")
    assert (row["status"], row["finish_reason"]) == ("interrupted", "interrupted")
    assert row["text"].startswith("".join(shown)) and len(row["text"]) < len(prompt) / 2  # what streamed, no more
    assert 0 < row["completion_tokens"] < 50 and row["cost_usd"] > 0
    assert stop.__name__ in row["error"]
    call_id = wb.store.query("SELECT id FROM calls")[0]["id"]
    assert _attempts(wb, call_id) == [["openai/m", "interrupted", "Interrupted"]]
    assert wb.budgets.df().iloc[0]["spent_usd"] == pytest.approx(row["cost_usd"])
    assert wb.costs.total() == pytest.approx(row["cost_usd"])
    assert wb.store.query("SELECT COUNT(*) AS n FROM reservations")[0]["n"] == 0
    assert wb.session("s").history == []  # a stopped answer is not part of the conversation
    assert wb.audit.verify().ok
    replay = Workbench.from_config(store=str(wb.store.path), mode="replay")
    with pytest.raises(WorkbenchError, match="no recorded"):
        replay.ask(prompt, model="r", stream=True, session="s")
    replay.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": "bad \ud800 surrogate"}, "unpaired surrogate"),
        ({"prompt": b"bytes"}, "the prompt is bytes: decode it"),
        ({"prompt": 42}, "the prompt must be text, not int"),
        ({"prompt": "hi", "model": 123}, "model must be a route or model name"),
        ({"prompt": "hi", "model": ""}, "model is empty"),
        ({"prompt": "hi", "session": "s\udcff"}, "session .*unpaired surrogate"),
        ({"prompt": "hi", "session": ""}, "session is empty: name it, or leave it out"),
        ({"prompt": "hi", "user": "  "}, "user is empty: name it, or leave it out"),
        ({"prompt": "hi", "system": "a\ud800"}, "system .*unpaired surrogate"),
        ({"prompt": None}, "the prompt is empty"),
        ({"prompt": "hi", "context": 123}, "context must be text, {id: text} or a list of texts, not int"),
        ({"prompt": "hi", "images": 123}, "images must be an image or a list of them"),
        ({"prompt": "hi", "stream": True, "on_token": 5}, "on_token must be a function"),
        ({"prompt": "hi", "response_format": "json"}, "response_format is what the provider takes, a dict"),
        ({"prompt": "hi", "response_format": {"type": "x", "loop": "CIRCULAR"}}, "response_format .*circular"),
        ({"prompt": "hi", "schema": {"type": "object", "items": "DEEP"}}, "schema cannot be written as JSON .nested"),
        ({"prompt": "hi", "temprature": 0.2}, "unexpected keyword argument 'temprature'; did you mean 'temperature'"),
    ],
)
def test_bad_input_is_a_one_line_workbench_error(wb, kwargs, message):
    prompt = kwargs.pop("prompt")
    for name, value in list(kwargs.items()):  # (built here: a 100,000-deep value in the parameter ids is unreadable)
        if isinstance(value, dict) and value.get("loop") == "CIRCULAR":
            kwargs[name] = circular()
        elif isinstance(value, dict) and value.get("items") == "DEEP":
            kwargs[name] = {**value, "items": nested()}
    with pytest.raises(WorkbenchError, match=message) as caught:
        wb.ask(prompt, **kwargs)
    assert "\n" not in str(caught.value)
    assert wb.store.query("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 0
    if kwargs.get("model") == 123:
        assert isinstance(caught.value, UnknownModel)


def test_bad_input_elsewhere_is_a_one_line_workbench_error_and_records_nothing(wb, tmp_path):
    """The rest of the Python API, given what a user might pass by mistake: one line naming what it takes."""
    (tmp_path / "folder").mkdir()
    wf = wb.workflow("w")
    mistakes = {
        "a memory of None": (lambda: wb.memory.add(None), "a memory is text, not NoneType"),
        "a memory search k": (lambda: wb.memory.search("x", k="3"), "k is how many memories"),
        "documents of an int": (lambda: wb.docs.add("kb", 123), "add paths or texts"),
        "a folder of documents": (lambda: wb.docs.add("kb", [tmp_path / "folder"]), "is a folder: add its files"),
        "a document search k": (lambda: wb.docs.search("kb", "x", k=-1), "k is how many chunks"),
        "a calls limit": (lambda: wb.calls.df(limit="x"), "limit is how many of the latest calls"),
        "an eval suite of an int": (lambda: wb.evals.run(123), "an eval suite is a name, a path or a Suite"),
        "agent steps as text": (lambda: wb.agent("a", model="local/echo", max_steps="3"), "max_steps must be a whole"),
        "agent tools of an int": (lambda: wb.agent("a", model="local/echo", tools=5), "tools are names or globs"),
        "a session state object": (lambda: wb.session("s").state.update(x=object()), "session state 'x' must be JSON"),
        "a step that is no function": (lambda: wf.step("s")(5), "a step is a function"),
        "a step's retry as text": (lambda: wf.step("r", retry="2")(lambda: 1), "retry is how many more attempts"),
        "a kill reason of an int": (lambda: wb.kill(5), "the kill switch's reason is text"),
        "step messages as text": (lambda: wb.step("hi", model="local/echo"), "a step takes a list of messages"),
        "a step message without a role": (lambda: wb.step([{"content": "hi"}]), "a step takes a list of messages"),
        "documents with a None": (lambda: wb.docs.add("kb", ["notes", None]), "one item is NoneType"),
        "a trace of an int": (lambda: wb.trace(5), "a trace is named by a call, run or trace id"),
        "tokens of None": (lambda: wb.count_tokens(None), "count_tokens\\(\\) counts a text, not NoneType"),
        "an embedding of None": (lambda: wb.embed(None), "embed\\(\\) takes a text or a list of texts, not NoneType"),
        "an infinite budget": (lambda: wb.budgets.set("user:ana", float("inf")), "a budget's usd is dollars"),
        "a session of None": (lambda: wb.session(None), "a session is named by text"),
        "a blank session": (lambda: wb.session("  "), "a session is named by text"),
        "a cache clear of an int": (lambda: wb.cache.clear(5), "clear\\(\\) takes a route's name"),
        "a search of a mistyped collection": (lambda: wb.docs.search("kbx", "x"), "no documents in collection 'kbx'"),
        "session state nested too deeply": (
            lambda: wb.session("s").state.update(x=nested()),
            "session state 'x' must be JSON .*: nested too deeply",
        ),
        "a workflow input nested too deeply": (lambda: wf.run(x=nested()), "nested too deeply"),
        "a circular workflow input": (lambda: wf.run(x=circular()), "circular reference detected"),
    }
    for what, (attempt, message) in mistakes.items():
        with pytest.raises(WorkbenchError, match=message) as caught:
            attempt()
        assert "\n" not in str(caught.value), what
    assert wb.store.query("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 0
    assert wb.store.query("SELECT COUNT(*) AS n FROM switches")[0]["n"] == 0
    assert wb.store.query("SELECT COUNT(*) AS n FROM sessions WHERE state LIKE '%object%'")[0]["n"] == 0
    assert wb.store.query("SELECT COUNT(*) AS n FROM budgets")[0]["n"] == 0
    assert wb.store.query("SELECT COUNT(*) AS n FROM documents")[0]["n"] == 0


def test_a_huge_prompt_is_refused_by_length_before_any_scanner_runs(wb):
    import time

    t0 = time.perf_counter()
    with pytest.raises(WorkbenchError, match="max_length"):
        wb.ask("ignore previous instructions " * 400_000)  # ~11 MB
    assert time.perf_counter() - t0 < 2.0
    assert os.path.getsize(wb.store.path) < 2_000_000  # the text was never written


@pytest.mark.parametrize(
    ("where", "sent"),
    [
        ("the system prompt", lambda text: {"system": text}),
        ("the context", lambda text: {"context": text}),
        ("context item 'notes'", lambda text: {"context": {"notes": text}}),
        ("context item 2", lambda text: {"context": ["a short one", text]}),
    ],
)
def test_a_system_prompt_or_context_item_over_the_limit_is_refused_by_length_before_any_scanner(wb, where, sent):
    """What is sent with the prompt is held to ``max_input_chars`` as the prompt is, before any scanner reads it:
    a key at its end is not what refuses it (its length is), and nothing is sent or stored but the guard event."""
    key = "sk-proj-LENGTH0aaaaBBBBccccDDDDeeee"
    text = "word " * 30_000 + key
    with pytest.raises(GuardrailViolation, match=rf"^{where} is {len(text):,} characters, over max_input_chars \("):
        wb.ask("a short question", model="local/echo", **sent(text))
    assert wb.store.query("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 0
    assert [tuple(r.values()) for r in wb.store.query("SELECT scanner, action FROM guard_events")] == [
        ("max_length", "block")
    ]
    blob = b"".join(p.read_bytes() for p in (wb.store.path, Path(f"{wb.store.path}-wal")) if p.exists())
    assert key.encode() not in blob and b"word word" not in blob
    assert wb.ask("a short question", model="local/echo", **sent("word " * 20)).text  # within the limit: answered


def test_no_provider_error_is_raised_raw(wb, chaos):
    down = chaos(name="down", status=500)
    wb.add_route("r", [{"model": "openai/m", "api_base": down.url}], retries=0)
    with pytest.raises(ProviderError, match="all 1 attempts failed"):
        wb.ask("x", model="r")
