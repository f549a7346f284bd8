"""The chaos server over real HTTP (stdlib client and the openai SDK through litellm)."""

import json
import urllib.error
import urllib.request

import pytest

from workbench.limits import ChaosServer
from workbench.serving import litellm_module


def post(url, body, key=None):
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(url + "/chat/completions", json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


BODY = {"model": "m", "messages": [{"role": "user", "content": "ping"}]}


def test_models_and_a_plain_completion(chaos):
    server = chaos(name="plain")
    with urllib.request.urlopen(server.url + "/models", timeout=5) as response:
        assert json.load(response)["data"][0]["id"] == "chaos-plain"
    status, _, text = post(server.url, BODY)
    body = json.loads(text)
    assert status == 200
    assert body["choices"][0]["message"]["content"] == "[plain] ping"
    assert body["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def test_error_draws_repeat_with_the_same_seed(chaos):
    def draws(seed):
        server = chaos(error_rate=0.5, seed=seed)
        return [post(server.url, BODY)[0] for _ in range(20)]

    first, second = draws(7), draws(7)
    assert first == second
    assert set(first) == {200, 500}
    assert draws(8) != first


def test_rpm_limit_answers_429_with_retry_after(chaos):
    server = chaos(rpm=2)
    statuses = [post(server.url, BODY) for _ in range(3)]
    assert [s for s, _, _ in statuses] == [200, 200, 429]
    assert 1 <= int(statuses[2][1]["Retry-After"]) <= 60
    assert server.stats.rate_limited == 1


def test_fixed_status_context_window_and_key(chaos):
    assert post(chaos(status=503).url, BODY)[0] == 503
    status, _, text = post(chaos(context_window=0).url, BODY)
    assert status == 400
    assert json.loads(text)["error"]["code"] == "context_length_exceeded"
    locked = chaos(api_key="sk-chaos-test")
    assert post(locked.url, BODY)[0] == 401
    assert post(locked.url, BODY, key="sk-chaos-test")[0] == 200


def test_streaming_through_the_openai_sdk(chaos):
    server = chaos(name="s", latency_ms=1)
    litellm = litellm_module()
    chunks = list(
        litellm.completion(
            model="openai/x",
            api_base=server.url,
            api_key="k",
            stream=True,
            stream_options={"include_usage": True},
            messages=BODY["messages"],
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "[s] ping"
    assert litellm.stream_chunk_builder(chunks).usage.total_tokens == 3


def test_bad_error_rate_is_refused():
    with pytest.raises(ValueError, match="between 0 and 1"):
        ChaosServer(error_rate=2)


def test_latency_jitter_is_seeded_and_tpm_is_enforced(chaos):
    a, b = ChaosServer(latency_ms=50, jitter_ms=20, seed=3), ChaosServer(latency_ms=50, jitter_ms=20, seed=3)
    draws_a, draws_b = [a.latency_s() for _ in range(50)], [b.latency_s() for _ in range(50)]
    for s in (a, b):
        s.stop()
    assert draws_a == draws_b
    assert len(set(draws_a)) > 40
    assert 0.03 < sum(draws_a) / 50 < 0.07
    limited = chaos(tpm=5)
    body = {"model": "m", "messages": [{"role": "user", "content": "three small words"}]}
    assert [post(limited.url, body)[0] for _ in range(2)] == [200, 429]


def test_a_cut_stream_ends_without_its_terminating_chunk(chaos):
    server = chaos(cut_stream_after=1)
    request = urllib.request.Request(
        server.url + "/chat/completions",
        json.dumps({**BODY, "stream": True}).encode(),
        {"Content-Type": "application/json"},
    )
    with pytest.raises(Exception) as err, urllib.request.urlopen(request, timeout=5) as response:
        response.read()
    assert "IncompleteRead" in type(err.value).__name__ or isinstance(err.value, OSError)


def test_a_client_dropping_its_connection_prints_nothing(chaos, capfd):
    import socket
    import struct
    import time

    server = chaos()
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
        sock.close()
    time.sleep(0.5)
    assert "Exception occurred during processing" not in capfd.readouterr().err


def test_a_burst_of_connections_is_queued_not_dropped(chaos):
    """A listen backlog of 5 (socketserver's default) drops SYNs in a burst: those clients retry a second later."""
    import socket
    import threading
    import time

    server = chaos(name="burst", latency_ms=200)
    connect_s: list[float] = []

    def one() -> None:
        t = time.perf_counter()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            connect_s.append(time.perf_counter() - t)
            s.sendall(b"GET /v1/models HTTP/1.0\r\n\r\n")
            assert s.recv(12)

    threads = [threading.Thread(target=one) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(connect_s) == 100
    assert max(connect_s) < 0.5  # with a backlog of 5, about a third waited out a SYN retry (1 s)
