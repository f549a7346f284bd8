"""An OpenAI-compatible server that misbehaves on purpose, for failure drills and tests.

Serves ``GET /v1/models`` and ``POST /v1/chat/completions`` (streaming and not).
Knobs: ``latency_ms`` before answering (``jitter_ms``: normally distributed around
it), ``error_rate`` (share of requests answered with ``error_status``), ``status``
(answer every request with this status), ``rpm``/``tpm`` (over either: 429 with
``Retry-After`` and ``retry-after-ms``; enforced as token buckets holding ``window_s``
seconds' worth, 60 by default: ``rpm=600, window_s=1`` allows bursts of 10, as providers
that enforce per-minute limits at a finer grain do), ``context_window`` (prompt tokens
over it: OpenAI's 400 ``context_length_exceeded``), ``api_key`` (require this bearer token),
``malformed_rate`` (share of 200 answers whose body is not JSON), ``cut_stream_after``
(close a stream after N words), ``stream_usage=False`` (never send usage, as some
providers do), ``served_model`` / ``system_fingerprint`` (what answers say served them, e.g.
a dated snapshot behind an alias), ``seed`` (repeatable draws). Tokens are counted as whitespace-separated words.

Use it from Python (``with ChaosServer(name="backup") as srv: srv.url``) or as
``workbench chaos-server --port 8900 --error-rate 0.3``.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ChaosStats:
    """What the server saw and did."""

    requests: int = 0
    errors: int = 0
    rate_limited: int = 0
    statuses: list[int] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() of each request
    in_flight: int = 0  # requests being answered now
    max_in_flight: int = 0  # the most answered at once
    last_messages: list[dict[str, Any]] = field(default_factory=list)  # what the latest request sent, as sent


class _QuietServer(ThreadingHTTPServer):
    """A client that drops its connection (a keep-alive socket closed, a timed-out read) is normal here:
    it is not printed to stderr, where it would land in the notebook cell that happens to be running.
    The listen backlog is 1024, not socketserver's 5: a burst of parallel calls must not be refused by the queue.
    """

    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class ChaosServer:
    """A misbehaving OpenAI-compatible endpoint on 127.0.0.1."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "chaos",
        latency_ms: float = 0.0,
        error_rate: float = 0.0,
        error_status: int = 500,
        status: int | None = None,
        rpm: int | None = None,
        retry_after: float | None = None,
        context_window: int | None = None,
        api_key: str | None = None,
        seed: int | None = None,
        reply: str = "[{name}] {prompt}",
        jitter_ms: float = 0.0,
        tpm: int | None = None,
        malformed_rate: float = 0.0,
        cut_stream_after: int | None = None,
        stream_usage: bool = True,
        window_s: float = 60.0,
        served_model: str | None = None,
        system_fingerprint: str | None = None,
    ):
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        self.name, self.latency_ms, self.error_rate = name, latency_ms, error_rate
        self.error_status, self.status, self.rpm = error_status, status, rpm
        self.retry_after, self.context_window, self.api_key = retry_after, context_window, api_key
        self.reply, self.jitter_ms, self.tpm = reply, jitter_ms, tpm
        self.malformed_rate, self.cut_stream_after, self.stream_usage = malformed_rate, cut_stream_after, stream_usage
        self.served_model, self.system_fingerprint = served_model, system_fingerprint
        self.stats = ChaosStats()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        now = time.monotonic()
        self._requests = _Bucket(rpm, window_s, now) if rpm is not None else None
        self._tokens = _Bucket(tpm, window_s, now) if tpm is not None else None
        self._httpd = _QuietServer((host, port), _handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The OpenAI base URL (``.../v1``) to use as a deployment's ``api_base``."""
        host = self._httpd.server_address[0]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{self.port}/v1"

    def start(self) -> ChaosServer:
        """Serve in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"chaos-{self.name}", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and release the port (safe on a server that never started)."""
        if self._thread is not None:
            self._httpd.shutdown()  # waits for serve_forever: only call it when that loop runs
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ChaosServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- decisions (under the lock so concurrent requests see one state) --------------

    def latency_s(self) -> float:
        """How long to wait before answering this request (drawn from the seeded generator)."""
        with self._lock:
            ms = self._random.gauss(self.latency_ms, self.jitter_ms) if self.jitter_ms else self.latency_ms
        return max(0.0, ms) / 1000

    def malformed(self) -> bool:
        """Whether this 200 answer's body should be broken."""
        with self._lock:
            return bool(self.malformed_rate) and self._random.random() < self.malformed_rate

    def decide(self, prompt_tokens: int) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        """The status, error body and headers for the next request."""
        with self._lock:
            self.stats.requests += 1
            now = time.monotonic()
            self.stats.arrivals.append(now)
            limited = [
                (name, bucket.wait(n, now))
                for name, bucket, n in (
                    ("requests", self._requests, 1),
                    ("tokens per minute", self._tokens, prompt_tokens),
                )
                if bucket is not None
            ]
            waits = [(name, wait) for name, wait in limited if wait > 0]
            if waits:
                name, wait = max(waits, key=lambda w: w[1])
                self.stats.rate_limited += 1
                headers = (
                    {"Retry-After": f"{self.retry_after:g}"}
                    if self.retry_after is not None
                    else {"Retry-After": str(max(1, math.ceil(wait))), "retry-after-ms": str(math.ceil(wait * 1000))}
                )
                return 429, _error(f"Rate limit reached for {name}", "rate_limit_exceeded"), headers
            for bucket, n in ((self._requests, 1), (self._tokens, prompt_tokens)):
                if bucket is not None:
                    bucket.take(n)
            if self.status is not None and self.status >= 400:
                self.stats.errors += 1
                return self.status, _error(f"{self.name} is failing on purpose", "chaos"), {}
            if self.error_rate and self._random.random() < self.error_rate:
                self.stats.errors += 1
                return self.error_status, _error(f"{self.name} failed at random", "chaos"), {}
            if self.context_window is not None and prompt_tokens > self.context_window:
                return (
                    400,
                    _error(
                        f"This model's maximum context length is {self.context_window} tokens. However, "
                        f"your messages resulted in {prompt_tokens} tokens.",
                        "context_length_exceeded",
                    ),
                    {},
                )
            return 200, None, {}


class _Bucket:
    """A token bucket: holds up to ``per_minute * window_s / 60``, refilled at ``per_minute / 60`` a second."""

    def __init__(self, per_minute: int, window_s: float, now: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute * window_s / 60.0)
        self.level, self._t = self.capacity, now

    def wait(self, n: int, now: float) -> float:
        """Seconds until ``n`` fit (``0``: they fit now). Refills up to ``now`` first."""
        self.level = min(self.capacity, self.level + (now - self._t) * self.rate)
        self._t = now
        need = min(float(n), self.capacity)
        return 0.0 if need <= self.level else (need - self.level) / self.rate

    def take(self, n: int) -> None:
        self.level -= n


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def _words(text: str) -> int:
    return len(text.split())


def _handler(server: ChaosServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # without it every request pays ~40 ms of delayed ACK

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            server.stats.statuses.append(status)

        def _raw(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            server.stats.statuses.append(status)

        def _authorized(self) -> bool:
            if server.api_key is None or self.headers.get("Authorization") == f"Bearer {server.api_key}":
                return True
            self._json(401, _error("Incorrect API key provided", "invalid_api_key"))
            return False

        def do_GET(self) -> None:  # noqa: N802
            if not self._authorized():
                return
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                model = {"id": f"chaos-{server.name}", "object": "model", "created": 0, "owned_by": "workbench"}
                self._json(200, {"object": "list", "data": [model]})
            else:
                self._json(404, _error(f"no route {self.path}", "not_found"))

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if not self._authorized():
                return
            if self.path.rstrip("/") in ("/v1/embeddings", "/embeddings"):
                self._embeddings(body)
                return
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._json(404, _error(f"no route {self.path}", "not_found"))
                return
            with server._lock:
                server.stats.in_flight += 1
                server.stats.max_in_flight = max(server.stats.max_in_flight, server.stats.in_flight)
            try:
                self._complete(body)
            finally:
                with server._lock:
                    server.stats.in_flight -= 1

        def _embeddings(self, body: dict[str, Any]) -> None:
            """Eight numbers per text, from its hash (the same text, the same vector), with the chaos rules."""
            texts = body.get("input") or []
            texts = [texts] if isinstance(texts, str) else texts
            tokens = sum(_words(str(t)) for t in texts)
            status, error, headers = server.decide(tokens)
            if error is not None:
                self._json(status, error, headers)
                return
            data = []
            for i, text in enumerate(texts):
                digest = hashlib.sha256(str(text).encode()).digest()
                data.append({"object": "embedding", "index": i, "embedding": [b / 255 for b in digest[:8]]})
            usage = {"prompt_tokens": tokens, "total_tokens": tokens}
            model = body.get("model") or f"chaos-{server.name}"
            self._json(200, {"object": "list", "data": data, "model": model, "usage": usage})

        def _complete(self, body: dict[str, Any]) -> None:
            messages = body.get("messages") or []
            server.stats.last_messages = messages
            prompt_tokens = sum(_words(str(m.get("content") or "")) for m in messages)
            status, error, headers = server.decide(prompt_tokens)
            wait = server.latency_s()
            if wait:
                time.sleep(wait)
            if error is not None:
                self._json(status, error, headers)
                return
            last_user: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
            content = last_user.get("content") or ""
            if isinstance(content, list):  # content parts: the text, each image as the kind of part it is
                content = " ".join(p.get("text") or f"[{p.get('type')}]" for p in content if isinstance(p, dict))
            text = server.reply.format(name=server.name, prompt=str(content))
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": _words(text),
                "total_tokens": prompt_tokens + _words(text),
            }
            model = server.served_model or body.get("model") or f"chaos-{server.name}"
            if server.malformed():
                self._raw(200, b'{"id": "chatcmpl-broken", "choices": [{"index": 0, "mess')
                return
            if body.get("stream"):
                self._stream(model, text, usage, bool((body.get("stream_options") or {}).get("include_usage")))
                return
            self._json(
                200,
                {
                    "id": f"chatcmpl-{server.name}-{server.stats.requests}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "system_fingerprint": server.system_fingerprint,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": usage,
                },
            )

        def _stream(self, model: str, text: str, usage: dict[str, int], include_usage: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            base = {
                "id": f"chatcmpl-{server.name}-{server.stats.requests}",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "system_fingerprint": server.system_fingerprint,
            }
            words = text.split(" ")
            events = [
                {
                    **base,
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
                }
            ]
            for i, word in enumerate(words):
                piece = word if i == len(words) - 1 else word + " "
                events.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if include_usage and server.stream_usage:
                events.append({**base, "choices": [], "usage": usage})
            cut = server.cut_stream_after
            for i, event in enumerate([*(json.dumps(e) for e in events), "[DONE]"]):
                if cut is not None and i > cut:  # the first event carries only the role
                    self.close_connection = True
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # mid-stream, no terminating chunk
                    server.stats.statuses.append(-1)
                    return
                data = f"data: {event}\n\n".encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            server.stats.statuses.append(200)

    return Handler
