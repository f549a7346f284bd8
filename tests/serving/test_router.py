"""Provider path over real HTTP: litellm's openai/ provider against the chaos server."""

import asyncio
import time

import pytest

from workbench import ProviderError


def route(wb, name, *servers, retries=1, **extra):
    wb.add_route(
        name, [{"name": s.name, "model": "openai/chaos", "api_base": s.url, **extra} for s in servers], retries=retries
    )


def attempts(wb, call_id):
    df = wb.calls.attempts(call_id)[["deployment", "status", "error_class", "status_code"]].astype(object)
    return df.where(df.notna(), None).values.tolist()


def test_fails_over_from_a_dead_deployment_and_records_every_attempt(wb, chaos):
    dead, ok = chaos(name="dead", status=503), chaos(name="ok")
    route(wb, "r", dead, ok)
    result = wb.ask("hello", model="r")
    assert result.text == "[ok] hello"
    assert result.model == "openai/chaos"
    assert result.route == "r"
    assert attempts(wb, result.call_id) == [
        ["dead", "error", "ServiceUnavailableError", 503],
        ["dead", "error", "ServiceUnavailableError", 503],
        ["ok", "ok", None, None],
    ]
    assert [a.deployment for a in result.attempts] == ["dead", "dead", "ok"]
    assert dead.stats.requests == 2
    assert ok.stats.requests == 1


def test_retry_after_is_honoured_before_retrying(wb, chaos):
    limited = chaos(name="limited", rpm=1, retry_after=1)
    backup = chaos(name="backup")
    route(wb, "r", limited, backup)
    wb.ask("first", model="r")
    result = wb.ask("second", model="r")
    rows = wb.calls.attempts(result.call_id)
    assert rows["status_code"].tolist()[:2] == [429, 429]
    assert rows["retry_after"].tolist()[:2] == [1.0, 1.0]
    starts = [
        time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) + float("0." + s[20:26]) for s in rows["started_at"]
    ]
    assert starts[1] - starts[0] >= 1.0  # waited the full Retry-After
    assert result.text == "[backup] second"


def test_a_long_retry_after_fails_over_at_once(wb, chaos):
    limited = chaos(name="limited", rpm=1, retry_after=30)
    backup = chaos(name="backup")
    route(wb, "r", limited, backup)
    wb.ask("first", model="r")
    t0 = time.perf_counter()
    result = wb.ask("second", model="r")
    assert time.perf_counter() - t0 < 5
    assert result.text.startswith("[backup]")


def test_context_window_exceeded_fails_over_without_retry(wb, chaos):
    small, large = chaos(name="small", context_window=3), chaos(name="large")
    route(wb, "r", small, large)
    result = wb.ask("a prompt that is longer than three words", model="r")
    assert attempts(wb, result.call_id)[0] == ["small", "error", "ContextWindowExceededError", 400]
    assert small.stats.requests == 1


def test_timeout_fails_over(wb, chaos):
    slow, fast = chaos(name="slow", latency_ms=3000), chaos(name="fast")
    wb.add_route(
        "r",
        [
            {"name": "slow", "model": "openai/chaos", "api_base": slow.url, "timeout": 0.3},
            {"name": "fast", "model": "openai/chaos", "api_base": fast.url},
        ],
        retries=0,
    )
    result = wb.ask("hurry", model="r")
    assert attempts(wb, result.call_id)[0][:3] == ["slow", "error", "Timeout"]
    assert result.text == "[fast] hurry"


def test_connection_refused_fails_over(wb, chaos):
    gone = chaos(name="gone")
    url = gone.url
    gone.stop()
    ok = chaos(name="ok")
    wb.add_route(
        "r",
        [
            {"name": "gone", "model": "openai/chaos", "api_base": url},
            {"name": "ok", "model": "openai/chaos", "api_base": ok.url},
        ],
        retries=0,
    )
    assert wb.ask("knock", model="r").text == "[ok] knock"


def test_all_failing_raises_one_line_and_keeps_the_failed_call(wb, chaos):
    dead = chaos(name="dead", status=500)
    route(wb, "r", dead, retries=0)
    with pytest.raises(ProviderError) as err:
        wb.ask("anyone?", model="r")
    assert "route 'r': all 1 attempts failed" in str(err.value)
    assert "\n" not in str(err.value)
    calls = wb.calls.df()
    assert calls["status"].tolist() == ["error"]
    assert calls["prompt"].tolist() == ["anyone?"]
    assert attempts(wb, err.value.call_id) == [["dead", "error", "InternalServerError", 500]]


def test_missing_key_is_skipped_and_never_sent(wb, chaos, monkeypatch):
    monkeypatch.delenv("WB_TEST_MISSING_KEY", raising=False)
    guarded = chaos(name="guarded")
    wb.add_route(
        "r",
        [
            {"name": "paid", "model": "openai/chaos", "api_base": guarded.url, "api_key_env": "WB_TEST_MISSING_KEY"},
            "local/echo",
        ],
    )
    result = wb.ask("fallback please", model="r")
    assert result.model == "local/echo"
    assert guarded.stats.requests == 0
    assert attempts(wb, result.call_id)[0][:3] == ["paid", "skipped", "MissingKey"]


def test_api_keys_never_reach_the_store(wb, chaos, monkeypatch):
    secret = "sk-test-5f1e0c9a7b3d4e2f8a6c"
    monkeypatch.setenv("WB_TEST_KEY", secret)
    locked = chaos(name="locked", api_key=secret)
    wrong = chaos(name="wrong", api_key="sk-something-else-entirely")
    wb.add_route(
        "r",
        [
            {"name": "wrong", "model": "openai/chaos", "api_base": wrong.url, "api_key_env": "WB_TEST_KEY"},
            {"name": "locked", "model": "openai/chaos", "api_base": locked.url, "api_key_env": "WB_TEST_KEY"},
        ],
        retries=0,
    )
    result = wb.ask("let me in", model="r")
    assert result.text == "[locked] let me in"
    assert attempts(wb, result.call_id)[0][:3] == ["wrong", "error", "AuthenticationError"]
    wb.store.conn.execute("PRAGMA wal_checkpoint(FULL)")
    for path in wb.store.path.parent.glob(wb.store.path.name + "*"):
        assert secret.encode() not in path.read_bytes(), path


def test_streaming_over_http_reports_usage_and_time_to_first_token(wb, chaos):
    server = chaos(name="s", latency_ms=20)
    route(wb, "r", server)
    seen = []
    result = wb.ask("stream these four words", model="r", stream=True, on_token=seen.append)
    assert "".join(seen) == result.text == "[s] stream these four words"
    assert len(seen) == 5
    assert result.usage == {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}
    row = wb.calls.last()
    assert row["stream"] == 1
    assert row["ttft_ms"] > 0


def test_async_ask_fails_over_too(wb, chaos):
    dead, ok = chaos(name="dead", status=502), chaos(name="ok")
    route(wb, "r", dead, ok, retries=0)

    async def main():
        return await asyncio.gather(*(wb.aask(f"q{i}", model="r") for i in range(5)))

    results = asyncio.run(main())
    assert sorted(r.text for r in results) == [f"[ok] q{i}" for i in range(5)]
    assert len(wb.calls.df()) == 5


def test_prices_from_config_give_the_cost(wb, chaos):
    server = chaos(name="priced")
    wb.add_route(
        "r",
        [
            {
                "model": "openai/chaos",
                "api_base": server.url,
                "input_cost_per_token": 0.001,
                "output_cost_per_token": 0.002,
            }
        ],
    )
    result = wb.ask("two words", model="r")
    assert result.cost_usd == pytest.approx(2 * 0.001 + 3 * 0.002)


def test_a_stream_cut_mid_way_discards_the_partial_text_and_fails_over(wb, chaos):
    cut, ok = chaos(name="cut", cut_stream_after=2), chaos(name="ok")
    route(wb, "r", cut, ok, retries=0)
    seen = []
    result = wb.ask("one two three four", model="r", stream=True, on_token=seen.append)
    assert result.text == "[ok] one two three four"
    assert None in seen
    assert "".join(t for t in seen[seen.index(None) + 1 :]) == result.text
    assert attempts(wb, result.call_id)[0][:3] == ["cut", "error", "MidStreamFallbackError"]


def test_a_malformed_body_fails_over(wb, chaos):
    bad, ok = chaos(name="bad", malformed_rate=1.0), chaos(name="ok")
    route(wb, "r", bad, ok, retries=0)
    assert wb.ask("hi", model="r").text == "[ok] hi"


def test_streamed_calls_are_priced_even_when_the_provider_sends_no_usage(wb, chaos):
    server = chaos(name="quiet", stream_usage=False)
    wb.add_route(
        "r",
        [
            {
                "model": "openai/chaos",
                "api_base": server.url,
                "input_cost_per_token": 0.001,
                "output_cost_per_token": 0.002,
            }
        ],
    )
    result = wb.ask("count these tokens for me", model="r", stream=True)
    assert result.usage["prompt_tokens"] > 0
    assert result.usage["completion_tokens"] > 0
    assert result.cost_usd == pytest.approx(
        result.usage["prompt_tokens"] * 0.001 + result.usage["completion_tokens"] * 0.002
    )
    assert wb.calls.last()["ttft_ms"] is not None
