"""OpenAI-compatible servers called directly over HTTP record exactly what the same calls record through
litellm: answers, usage, cost, served model, every attempt's error class, status and message, through
retries and failovers, streamed and not, sync and async. A process that only talks to such a server
(with its prices configured) never imports litellm."""

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from http.server import BaseHTTPRequestHandler

import pytest

from tests.servers import free_port, serving
from workbench import ProviderError
from workbench.runtime import Workbench
from workbench.serving import openai_http, router

VOLATILE = {"id", "call_id", "trace_id", "started_at", "latency_ms", "ttft_ms", "request_id"}
OWN_WORDS = {  # error class: (what the direct path says, what litellm says)
    "MidStreamFallbackError": (
        "the stream broke after it started (",
        "Connection error. Original exception: APIConnectionError",
    ),
    "MalformedResponse": ("the response body is not JSON (Unterminated string", "error - Unterminated string"),
}
PRICE = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}


def _servers(chaos) -> dict[str, str]:
    return {
        "ok": chaos(name="ok").url,
        "quiet": chaos(name="quiet", stream_usage=False).url,
        "snapshot": chaos(name="snap", served_model="m-2026-01-01", system_fingerprint="fp_1").url,
        "limited": chaos(name="limited", status=429).url,
        "failing": chaos(name="failing", status=500).url,
        "gateway": chaos(name="gw", status=502).url,
        "unavailable": chaos(name="down", status=503).url,
        "slow": chaos(name="slow", status=504).url,
        "small": chaos(name="small", context_window=3).url,
        "locked": chaos(name="locked", api_key="right-key").url,
        "broken": chaos(name="broken", malformed_rate=1.0).url,
        "cut": chaos(name="cut", cut_stream_after=2).url,
        "missing": chaos(name="missing", status=404).url,
        "refused": f"http://127.0.0.1:{free_port()}/v1",
    }


def _routes(wb: Workbench, urls: dict[str, str]) -> None:
    def at(name: str, model: str = "openai/m") -> dict:
        return {"model": model, "api_base": urls[name], "name": name, **PRICE}

    wb.add_route("plain", [at("ok")], cache=False)
    wb.add_route("quiet", [at("quiet")], cache=False)
    wb.add_route("seeded", [{**at("ok"), "params": {"seed": 7, "stop": ["zz"]}}], cache=False)
    wb.add_route("snapshot", [at("snapshot")], cache=False)
    for bad in ("limited", "failing", "gateway", "unavailable", "slow", "small", "locked", "broken", "missing"):
        wb.add_route(f"{bad}-then-ok", [at(bad), at("ok")], cache=False, retries=1)
    wb.add_route("cut-then-ok", [at("cut"), at("ok")], cache=False, retries=0)
    wb.add_route("refused-then-ok", [at("refused"), at("ok")], cache=False, retries=0)
    wb.add_route("all-bad", [at("failing"), at("small")], cache=False, retries=0)
    wb.add_route("unpriced", [{"model": "openai/gpt-4o-mini", "api_base": urls["ok"]}], cache=False)


ASKS = [
    {"prompt": "hello there", "model": "plain"},
    {"prompt": "hello there, word by word", "model": "plain", "stream": True},
    {"prompt": "a stream with no usage chunk", "model": "quiet", "stream": True},
    {"prompt": "one two three four five six seven", "model": "plain", "max_tokens": 6, "stream": True},
    {"prompt": "one two three four five six seven", "model": "quiet", "max_tokens": 6, "stream": True},
    {"prompt": "one two three", "model": "seeded", "temperature": 0.2, "response_format": {"type": "text"}},
    {"prompt": "which model?", "model": "snapshot"},
    {"prompt": "which model, streamed?", "model": "snapshot", "stream": True},
    {"prompt": "priced from litellm's map", "model": "unpriced"},
    {"prompt": "the cut stream", "model": "cut-then-ok", "stream": True},
    {"prompt": "nowhere to connect", "model": "refused-then-ok"},
    {"prompt": "too long for the small one", "model": "small-then-ok"},
    {"prompt": "nothing works", "model": "all-bad"},
    {"prompt": "nothing works, streamed", "model": "all-bad", "stream": True},
    *({"prompt": f"after a {bad}", "model": f"{bad}-then-ok"} for bad in ("failing", "gateway", "unavailable")),
    *({"prompt": f"after a {bad}", "model": f"{bad}-then-ok"} for bad in ("slow", "locked", "broken", "missing")),
    {"prompt": "after a 429", "model": "limited-then-ok", "stream": True},
]


def _ask(wb: Workbench, ask: dict) -> str:
    try:
        return wb.ask(session="s", **ask).text
    except ProviderError as exc:
        return f"ProviderError: {exc}"


async def _aask(wb: Workbench) -> list[str]:
    out = []
    for ask in (ASKS[0], ASKS[1], ASKS[3], ASKS[12], ASKS[9]):
        try:
            out.append((await wb.aask(session="a", **ask)).text)
        except ProviderError as exc:
            out.append(f"ProviderError: {exc}")
    return out


def _rows(wb: Workbench, table: str) -> list[dict]:
    rows = wb.store.db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()  # noqa: S608 - a fixed name
    names = [d[0] for d in wb.store.db.execute(f"SELECT * FROM {table} LIMIT 0").description]  # noqa: S608
    return [{k: v for k, v in zip(names, row, strict=True) if k not in VOLATILE} for row in rows]


def _workload(wb: Workbench) -> list[str]:
    return [_ask(wb, ask) for ask in ASKS] + asyncio.run(_aask(wb))


def test_direct_http_and_litellm_record_the_same_calls(tmp_path, monkeypatch, chaos):
    urls = _servers(chaos)
    sent = []
    real = openai_http.body
    monkeypatch.setattr(openai_http, "body", lambda kwargs: sent.append(kwargs["model"]) or real(kwargs))
    direct = Workbench.from_config(store=str(tmp_path / "direct.db"))
    _routes(direct, urls)
    direct_answers = _workload(direct)
    monkeypatch.setenv(router.VIA_LITELLM, "1")
    via = Workbench.from_config(store=str(tmp_path / "via.db"))
    _routes(via, urls)
    n = len(sent)
    via_answers = _workload(via)
    assert len(sent) == n  # nothing went over the direct path with WORKBENCH_VIA_LITELLM set
    sent_attempts = [a for a in _rows(direct, "attempts") if a["status"] in ("ok", "error")]
    assert n == len(sent_attempts) > 40  # every attempt of the first run went over it

    assert direct_answers == via_answers
    for table in ("calls", "attempts"):
        for i, (a, b) in enumerate(zip(_rows(direct, table), _rows(via, table), strict=True)):
            if table == "attempts" and b["response_model"] == "m" and a["response_model"] == "m-2026-01-01":
                # litellm's stream builder names the requested model, not the one the chunks say served it
                assert a["deployment"] == "snapshot" and a["model"] == "openai/m"
                a, b = {**a, "response_model": None}, {**b, "response_model": None}
            if table == "attempts" and a["error_class"] in OWN_WORDS:  # ours say what happened, litellm's do not
                assert a["error"].startswith(OWN_WORDS[a["error_class"]][0]), a["error"]
                assert b["error"].startswith(OWN_WORDS[a["error_class"]][1]), b["error"]
                a, b = {**a, "error": None}, {**b, "error": None}
            assert a == b, (table, i)
    calls = _rows(direct, "calls")
    assert direct_answers[0] == "[ok] hello there"
    for capped in calls[3:5]:  # cut at its cap, with and without a usage chunk (counted either way)
        assert capped["text"] in ("[ok] one two ", "[quiet] one two ")
        assert capped["finish_reason"] == "length" and 4 < capped["completion_tokens"] <= 6
    assert calls[2]["prompt_tokens"] > 0 and calls[2]["completion_tokens"] > 0  # counted: the server sent none
    assert calls[8]["cost_usd"] > 0  # gpt-4o-mini's price, from litellm's map
    assert direct_answers[12].startswith(
        "ProviderError: route 'all-bad': all 2 attempts failed, last on small: "
        "ContextWindowExceededError: This model's maximum context length is 3 tokens"
    )
    classes = [(a["deployment"], a["error_class"], a["status_code"]) for a in _rows(direct, "attempts")]
    for expected in (
        ("cut", "MidStreamFallbackError", 500),
        ("refused", "APIConnectionError", None),
        ("small", "ContextWindowExceededError", 400),
        ("limited", "RateLimitError", 429),
        ("failing", "InternalServerError", 500),
        ("gateway", "BadGatewayError", 502),
        ("unavailable", "ServiceUnavailableError", 503),
        ("slow", "Timeout", 504),
        ("locked", "AuthenticationError", 401),
        ("broken", "MalformedResponse", 500),
        ("missing", "NotFoundError", 404),
    ):
        assert any(c[0] == expected[0] and c[1:] == expected[1:] for c in classes), (expected, classes)


def test_a_parameter_litellm_translates_goes_through_litellm(tmp_path, monkeypatch, chaos):
    url = chaos(name="ok").url
    wb = Workbench.from_config(store=str(tmp_path / "w.db"))
    wb.add_route("plain", [{"model": "openai/m", "api_base": url, **PRICE}], cache=False)
    wb.add_route("reasoning", [{"model": "openai/m", "api_base": url, "params": {"reasoning_effort": "low"}}])
    sent = []
    real = openai_http.body
    monkeypatch.setattr(openai_http, "body", lambda kwargs: sent.append(kwargs) or real(kwargs))
    assert wb.ask("hi", model="plain").text == "[ok] hi"
    assert len(sent) == 1 and sent[0]["messages"][-1]["content"] == "hi"
    assert wb.ask("hi again", model="reasoning").text == "[ok] hi again"
    assert len(sent) == 1  # litellm decides what reasoning_effort means for a provider


def test_streamed_tool_call_deltas_are_put_back_together():
    built = openai_http.StreamedReply()
    chunks = [
        {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]},
        *(
            {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}
            for call in (
                {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}},
                {"index": 1, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": '{"x"'}},
                {"index": 0, "function": {"arguments": '{"region": '}},
                {"index": 0, "function": {"arguments": '"north"}'}},
                {"index": 1, "function": {"arguments": ": 1}"}},
            )
        ),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    assert [built.add(c) for c in chunks] == [None] * len(chunks)
    assert built.tool_calls() == [
        {"function": {"arguments": '{"region": "north"}', "name": "f"}, "id": "call_a", "type": "function"},
        {"function": {"arguments": '{"x": 1}', "name": "g"}, "id": "call_b", "type": "function"},
    ]
    assert (built.finish_reason, built.request_id, built.model) == ("tool_calls", "c1", "m")


@pytest.mark.parametrize(
    ("status", "message", "error_class"),
    [
        (400, "This model's maximum context length is 8 tokens", "ContextWindowExceededError"),
        (400, "bad value for temperature", "BadRequestError"),
        (418, "I'm a teapot", "BadRequestError"),
        (507, "insufficient storage", "InternalServerError"),
    ],
)
def test_an_error_status_is_named_as_litellm_names_it(status, message, error_class):
    from workbench.serving.failures import EndpointError, classify

    body = json.dumps({"error": {"message": message, "code": None}}).encode()
    with pytest.raises(EndpointError) as caught:
        openai_http._answer(status, body, None)
    failure = classify(caught.value)
    assert (failure.error_class, failure.status_code, failure.message) == (error_class, status, message)
    assert failure.transient == (status >= 500)


def test_a_process_talking_only_to_an_openai_compatible_server_never_imports_litellm(tmp_path, chaos):
    url = chaos(name="ok").url
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from workbench.runtime import Workbench
        wb = Workbench.from_config(store={str(tmp_path / "w.db")!r})
        wb.add_route("vllm", [{{"model": "openai/m", "api_base": {url!r}, **{PRICE!r}}}])
        assert wb.ask("hello", model="vllm").cost_usd > 0
        assert wb.ask("hello streamed", model="vllm", stream=True).text == "[ok] hello streamed"
        assert asyncio.run(wb.aask("hello async", model="vllm")).text == "[ok] hello async"
        print("litellm imported:", "litellm" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "litellm imported: False"


def test_an_unpriced_server_is_recorded_unpriced_without_importing_litellm_and_a_priced_name_is_priced(tmp_path, chaos):
    """No price configured: a model litellm's map cannot price is recorded with no cost, as litellm would record it,
    without its seconds of import (in a fresh kernel, the first answer); a server that says a model the map prices
    answered is priced by litellm.
    """
    plain, claims = chaos(name="plain").url, chaos(name="claims", served_model="gpt-4o-mini").url
    script = textwrap.dedent(
        f"""
        import sys
        from workbench.runtime import Workbench
        wb = Workbench.from_config(store={str(tmp_path / "w.db")!r})
        wb.add_route("vllm", [{{"model": "openai/my-local-llama", "api_base": {plain!r}}}])
        wb.add_route("claims", [{{"model": "openai/my-other-llama", "api_base": {claims!r}}}])
        print(wb.ask("hello", model="vllm").cost_usd, wb.ask("again", model="vllm", stream=True).cost_usd)
        print("litellm imported:", "litellm" in sys.modules)
        print(wb.ask("hello", model="claims").cost_usd > 0, "litellm imported:", "litellm" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()[-3:]
    assert lines == ["None None", "litellm imported: False", "True litellm imported: True"]


HOSTILE_BODIES = [
    {"choices": {"0": "not a list"}},
    {"choices": ["not an object"]},
    {"choices": [{"message": "not an object"}]},
    {"choices": [{"message": {"content": 42}}]},
    {"choices": [{"message": {"content": None, "tool_calls": [{"function": "f"}]}}]},
    {"choices": [{"message": {"content": None, "tool_calls": "call f"}}]},
    {"choices": [{"message": {"content": "hi"}}], "usage": ["not", "an", "object"]},
]
HOSTILE_BUT_READABLE = [  # fields of the wrong type are left out; the answer stands
    {"choices": [{"message": {"content": "odd usage"}, "finish_reason": {"x": 1}}], "usage": {"prompt_tokens": "9"}},
    {"choices": [{"message": {"content": "odd ids"}}], "model": ["m"], "id": 7, "system_fingerprint": {}},
]
HOSTILE_STREAMS = [
    ["[1, 2]", '{"choices": "x"}', '{"choices": [{"delta": "str"}]}', '{"choices": [{"delta": {"content": 5}}]}'],
    [
        '{"choices": [{"delta": {"tool_calls": [{"index": "a", "function": {"name": "f", "arguments": "{}"}}]}}]}',
        '{"choices": [{"delta": {"tool_calls": ["x", {"index": 0, "function": "y"}]}}]}',
        '{"choices": [{"delta": {"content": "streamed through"}}], "usage": [1]}',
    ],
]


@pytest.fixture
def hostile():
    """An HTTP server on 127.0.0.1 answering each POST with the next body it was given (JSON, or SSE lines)."""
    bodies: list = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            body = bodies.pop(0) if bodies else {"choices": []}
            if isinstance(body, list):
                data = "".join(f"data: {line}\n\n" for line in [*body, "[DONE]"]).encode()
                kind = "text/event-stream"
            else:
                data, kind = json.dumps(body).encode(), "application/json"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    with serving(Handler) as url:
        yield f"{url}/v1", bodies


def test_a_hostile_server_is_a_failed_attempt_or_an_answer_never_a_crash(tmp_path, hostile):
    url, bodies = hostile
    wb = Workbench.from_config(store=str(tmp_path / "w.db"), breaker={"failures": 100})  # every body is tried
    wb.add_route("odd", [{"model": "openai/m", "api_base": url, **PRICE}], retries=0, cache=False)
    for body in HOSTILE_BODIES:
        bodies.append(body)
        with pytest.raises(ProviderError, match="MalformedResponse: the response is not an OpenAI chat completion"):
            wb.ask("hi", model="odd")
    for body, text in zip(HOSTILE_BUT_READABLE, ("odd usage", "odd ids"), strict=True):
        bodies.append(body)
        result = wb.ask("hi", model="odd")
        assert result.text == text and result.usage["completion_tokens"] == 0
    bodies.append(HOSTILE_STREAMS[0])
    with pytest.raises(ProviderError, match="EmptyStream"):
        wb.ask("hi", model="odd", stream=True)
    bodies.append(HOSTILE_STREAMS[1])
    assert wb.ask("hi", model="odd", stream=True).text == "streamed through"
    for body in HOSTILE_BODIES[:2]:
        bodies.append(body)
        with pytest.raises(ProviderError, match="MalformedResponse"):
            asyncio.run(wb.aask("hi", model="odd"))
    calls = wb.calls.df()
    assert list(calls["status"]).count("ok") == 3 and len(calls) == len(HOSTILE_BODIES) + 2 + 2 + 2
    # priced from litellm's map on the counts kept: a server's junk usage neither fails pricing nor leaves the
    # model unpriced for the calls after it
    wb.add_route("mini", [{"model": "openai/gpt-4o-mini", "api_base": url}], retries=0, cache=False)
    bodies.append({"choices": [{"message": {"content": "junk"}}], "usage": {"prompt_tokens": "x", "total_tokens": []}})
    assert wb.ask("hi", model="mini").cost_usd == 0.0
    usage = {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000}
    bodies.append({"choices": [{"message": {"content": "fine"}}], "usage": usage})
    assert wb.ask("hi", model="mini").cost_usd > 0


def test_the_environment_s_proxy_is_used_sync_and_async_and_no_proxy_is_honoured(tmp_path, monkeypatch):
    seen = []

    class Proxy(BaseHTTPRequestHandler):  # a forward proxy that answers itself: the request line names the target
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.path)
            data = json.dumps({"choices": [{"message": {"content": "via the proxy"}, "finish_reason": "stop"}]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data.encode())

        def log_message(self, *args):
            pass

    target = f"http://10.255.255.1:{free_port()}/v1"  # unroutable: only the proxy can answer
    with serving(Proxy) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        openai_http._proxy.cache_clear()
        wb = Workbench.from_config(store=str(tmp_path / "w.db"))
        wb.add_route("far", [{"model": "openai/m", "api_base": target, "timeout": 5, **PRICE}], retries=0)
        assert wb.ask("hi", model="far").text == "via the proxy"
        assert asyncio.run(wb.aask("hi", model="far")).text == "via the proxy"
        assert seen == [f"{target}/chat/completions"] * 2
        monkeypatch.setenv("NO_PROXY", "10.255.255.1")
        openai_http._proxy.cache_clear()
        wb.add_route("near", [{"model": "openai/m", "api_base": target.replace("/v1", "/v2"), "timeout": 0.5}])
        with pytest.raises(ProviderError):
            asyncio.run(wb.aask("hi", model="near"))  # sent straight to the unroutable address
        assert len(seen) == 2
    openai_http._proxy.cache_clear()


def test_litellm_is_loaded_ahead_only_for_what_a_route_needs_it_for(monkeypatch):
    from workbench.config import Deployment, Route, Settings

    settings = Settings(prices={"openai/p": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0}})
    server = {"api_base": "http://127.0.0.1:8000/v1"}
    priced = Route(deployments=[Deployment(model="openai/p", **server), Deployment(model="local/echo")])
    unpriced = Route(deployments=[Deployment(model="openai/gpt-4o-mini", **server)])  # litellm's map prices it
    provider = Route(deployments=[Deployment(model="openai/gpt-4o-mini")])  # no api_base: litellm calls it
    assert not router.needs_litellm(priced, settings)
    assert router.needs_litellm(unpriced, settings) and router.needs_litellm(provider, settings)
    assert router.needs_litellm(priced)  # without the settings, whether it is priced is not known
    router.prepare(priced, settings)  # its server's client is made ahead: none of a first call's time goes there
    assert (os.getpid(), server["api_base"]) in openai_http._CLIENTS
    monkeypatch.setenv(router.VIA_LITELLM, "1")
    assert router.needs_litellm(priced, settings)


def test_a_route_is_prepared_once_not_before_every_call(tmp_path, monkeypatch):
    """prepare() is asked before every live call: its checks run once per route object (a new route, once more)."""
    wb = Workbench.from_config(store=str(tmp_path / "w.db"))
    asked = []
    real = router.needs_litellm
    monkeypatch.setattr(router, "needs_litellm", lambda route, settings=None: asked.append(1) or real(route, settings))
    for i in range(3):
        wb.ask(f"question {i}", model="local/echo")
    assert len(asked) == 1
    wb.add_route("again", ["local/echo"])
    wb.ask("down a new route", model="again")
    wb.ask("and again", model="again")
    assert len(asked) == 2


def test_retry_after_is_read_from_a_direct_async_answer(tmp_path, chaos):
    limited, backup = chaos(name="limited", rpm=1, retry_after=0.3), chaos(name="backup")
    wb = Workbench.from_config(store=str(tmp_path / "w.db"))
    wb.add_route(
        "r",
        [{"model": "openai/m", "api_base": u, "name": n, **PRICE} for n, u in (("a", limited.url), ("b", backup.url))],
        retries=1,
        cache=False,
    )

    async def twice() -> list[str]:
        return [(await wb.aask(f"call {i}", model="r")).text for i in range(2)]

    assert asyncio.run(twice()) == ["[limited] call 0", "[backup] call 1"]
    attempts = [a for a in _rows(wb, "attempts") if a["error_class"] == "RateLimitError"]
    assert [(a["deployment"], a["status_code"], a["retry_after"]) for a in attempts] == [("a", 429, 0.3)] * 2
