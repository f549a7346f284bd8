"""OpenAI-compatible servers called over HTTP directly: an ``openai/...`` deployment with an ``api_base``.

vLLM, Ollama, llama.cpp, LM Studio, TGI and the chaos server all speak OpenAI's chat API. For them
litellm adds nothing to the request (the body it sends is the request's own parameters), yet it costs
2.3-2.8x the ``openai`` SDK's CPU per async call (its logging objects, the SDK's client and pydantic models,
and httpx's async connection pool, which alone costs 6x aiohttp's CPU per call) and, in a fresh kernel,
seconds of import. Here the request goes out over pooled connections (an ``httpx`` client per server for
sync calls, an ``aiohttp`` session per event loop for async ones), the answer is read as JSON, and a
failure is raised as an
:class:`~workbench.serving.failures.EndpointError` that carries the class name litellm gives the same
status (``RateLimitError`` for 429, ``ContextWindowExceededError`` for OpenAI's context-length 400,
...), so the router retries, fails over and records it exactly as it would a litellm exception.

litellm stays what it is for: every other provider, a request with a parameter not listed in
:data:`PARAMS` (litellm translates or drops those), a gateway, pricing from its price map, and token
counts for models without a bundled tokenizer. ``WORKBENCH_VIA_LITELLM=1``, or a litellm callback, cache
or budget set in the process, sends these calls through litellm as before.
``tests/serving/test_openai_http.py`` records the same calls both ways and compares every column.
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from functools import cache
from typing import Any

from workbench.config import Deployment
from workbench.serving.failures import EndpointError, StreamFault

PREFIX = "openai/"
# OpenAI chat-completion parameters, sent as given (litellm sends them unchanged to an OpenAI-compatible server).
PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "seed",
        "user",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "stream",
        "stream_options",
    }
)
_NOT_SENT = frozenset(
    {"model", "messages", "timeout", "drop_params", "num_retries", "max_retries", "api_base", "api_key"}
)
_STATUS_CLASSES = {  # what litellm calls each status an OpenAI-compatible server answers with
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    408: "Timeout",
    422: "BadRequestError",
    429: "RateLimitError",
    500: "InternalServerError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "Timeout",
}
_CONTEXT = ("context_length_exceeded", "maximum context length", "context window", "too many tokens")


def serves(deployment: Deployment) -> bool:
    """Whether ``deployment`` is an OpenAI-compatible server this module can call (``openai/...`` at an api_base)."""
    return deployment.model.startswith(PREFIX) and bool(deployment.api_base) and not deployment.gateway


def takes(kwargs: dict[str, Any]) -> bool:
    """Whether every keyword of a call is one this module sends as litellm would (else litellm translates it)."""
    return all(key in PARAMS or key in _NOT_SENT for key in kwargs)


def body(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The JSON body litellm sends an OpenAI-compatible server for these keywords."""
    out: dict[str, Any] = {"model": kwargs["model"].removeprefix(PREFIX), "messages": kwargs["messages"]}
    out.update((k, v) for k, v in kwargs.items() if k not in _NOT_SENT and v is not None)
    return out


def _headers(kwargs: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {kwargs['api_key']}", "Content-Type": "application/json"}


def _url(kwargs: dict[str, Any]) -> str:
    return kwargs["api_base"].rstrip("/") + "/chat/completions"


_LOCK = threading.Lock()
_CLIENTS: dict[tuple[int, str], Any] = {}  # (pid, api_base) -> httpx.Client
_SESSIONS: dict[int, tuple[Any, Any, Any]] = {}  # id(loop) -> (weakref to the loop, aiohttp session, its closer)


def _client(base: str) -> Any:
    """This process's pooled httpx client for ``base`` (thread-safe; a forked child makes its own)."""
    key = (os.getpid(), base)
    client = _CLIENTS.get(key)
    if client is None:
        import httpx

        with _LOCK:
            client = _CLIENTS.get(key) or httpx.Client(
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=100)
            )
            _CLIENTS[key] = client
    return client


def prepare(servers: list[str]) -> None:
    """Make the sync clients of these servers now (httpx's import and an SSL context: tens of milliseconds the
    first call to each would otherwise spend before its request leaves, which also shifts paced calls' spacing).
    """
    for base in servers:
        _client(base)


async def _asession() -> Any:
    """This event loop's aiohttp session (one per loop: a session belongs to the loop it was made on).

    A session is closed when its loop shuts down (``asyncio.run`` ends): an async generator started
    on the loop is finalised by ``loop.shutdown_asyncgens()``, and closes it. A loop closed without that
    (``loop.close()`` alone) leaves its session to be dropped, closed, the next time one is made.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    held = _SESSIONS.get(id(loop))
    if held is not None and held[0]() is loop and not held[1].closed:
        return held[1]
    import aiohttp

    for key, (ref, old, _) in list(_SESSIONS.items()):
        gone = ref()
        if gone is None or gone.is_closed():
            del _SESSIONS[key]
            if not old.closed:  # its loop cannot run its close any more: mark it closed (sockets go with it)
                old.connector.close()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))  # proxies: _proxy, once per server
    keeper = _closes(session)
    await keeper.__anext__()  # started here, so the loop finalises it at shutdown
    _SESSIONS[id(loop)] = (weakref.ref(loop), session, keeper)
    return session


async def _closes(session: Any) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await session.close()


@cache
def _proxy(base: str) -> str | None:
    """The proxy the environment names for ``base`` (``HTTPS_PROXY``, ``NO_PROXY``, ...), read once per server:
    aiohttp's ``trust_env`` would read it (and ``~/.netrc``) on a thread for every request.
    """
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(base)
    if not parts.hostname or proxy_bypass(parts.hostname):
        return None
    return getproxies().get(parts.scheme)


def _apost(session: Any, kwargs: dict[str, Any]) -> Any:
    """The aiohttp POST of a call (enter it with ``async with``): its body, key, timeout and proxy."""
    return session.post(
        _url(kwargs),
        data=_dumps(body(kwargs)),
        headers=_headers(kwargs),
        timeout=_atimeout(kwargs),
        proxy=_proxy(kwargs["api_base"]),
    )


def _atimeout(kwargs: dict[str, Any]) -> Any:
    """One timeout as httpx (what litellm uses) reads it: to connect, and between any two reads."""
    import aiohttp

    seconds = kwargs.get("timeout")
    return aiohttp.ClientTimeout(total=None, connect=seconds, sock_read=seconds)


def complete(kwargs: dict[str, Any]) -> dict[str, Any]:
    """POST the request and return the response's JSON (an :class:`EndpointError` for any failure)."""
    import httpx

    try:
        response = _client(kwargs["api_base"]).post(
            _url(kwargs), content=_dumps(body(kwargs)), headers=_headers(kwargs), timeout=kwargs["timeout"]
        )
    except httpx.HTTPError as exc:
        raise _transport_error(exc) from None
    return _answer(response.status_code, response.content, response)


async def acomplete(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Async twin of :func:`complete` (over aiohttp: a tenth of httpx's CPU per async call)."""
    import aiohttp

    session = await _asession()
    try:
        async with _apost(session, kwargs) as response:
            content = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _transport_error(exc) from None
    return _answer(response.status, content, response)


def stream(kwargs: dict[str, Any]) -> Generator[dict[str, Any], None, None]:
    """POST a streamed request and yield each server-sent chunk's JSON; the stream closes when the caller stops."""
    import httpx

    read = False
    try:
        with _client(kwargs["api_base"]).stream(
            "POST", _url(kwargs), content=_dumps(body(kwargs)), headers=_headers(kwargs), timeout=kwargs["timeout"]
        ) as response:
            if response.status_code >= 400:
                response.read()
                _answer(response.status_code, response.content, response)
            for line in response.iter_lines():
                chunk = _event(line)
                if chunk is _DONE:
                    return
                if chunk is not None:
                    read = True
                    yield chunk
    except httpx.HTTPError as exc:
        raise _transport_error(exc, mid_stream=read) from None


async def astream(kwargs: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
    """Async twin of :func:`stream`."""
    import aiohttp

    session = await _asession()
    read = False
    try:
        async with _apost(session, kwargs) as response:
            if response.status >= 400:
                _answer(response.status, await response.read(), response)
            async for line in response.content:
                chunk = _event(line.decode(errors="replace"))
                if chunk is _DONE:
                    return
                if chunk is not None:
                    read = True
                    yield chunk
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _transport_error(exc, mid_stream=read) from None


_DONE: dict[str, Any] = {}


def _event(line: str) -> dict[str, Any] | None:
    """One server-sent event line: its JSON, ``_DONE`` at ``[DONE]``, ``None`` for anything else (comments, blanks)."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return _DONE
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise StreamFault("MalformedResponse", f"a streamed chunk is not JSON ({exc})") from None
    if isinstance(chunk, dict) and "error" in chunk and not chunk.get("choices"):
        raise EndpointError(_error_class(500, _message(chunk)), _message(chunk), 500)
    return chunk if isinstance(chunk, dict) else None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _answer(status: int, content: bytes, response: Any) -> dict[str, Any]:
    """The JSON of a 2xx answer; an :class:`EndpointError` for an error status, a :class:`StreamFault` for a body
    that is not JSON.
    """
    if status >= 400:
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
        message = _message(parsed) if isinstance(parsed, dict) else content.decode(errors="replace").strip()
        raise EndpointError(_error_class(status, message), message or f"status {status}", status, response)
    try:
        parsed = json.loads(content)
    except ValueError as exc:  # a 500, as litellm records it
        raise EndpointError("MalformedResponse", f"the response body is not JSON ({exc})", 500) from None
    if not isinstance(parsed, dict) or not parsed.get("choices"):
        raise StreamFault("EmptyResponse", "the provider gave back no answer (an empty or malformed response)")
    problem = _misshapen(parsed)
    if problem:
        raise EndpointError("MalformedResponse", f"the response is not an OpenAI chat completion: {problem}", 500)
    return parsed


def _misshapen(parsed: dict[str, Any]) -> str | None:
    """What in a 2xx answer's JSON is not shaped as OpenAI's chat completion (``None``: nothing)."""
    choices = parsed["choices"]
    if not isinstance(choices, list) or not isinstance(choices[0], dict):
        return "choices is not a list of objects"
    message = choices[0].get("message")
    if not isinstance(message, dict):
        return "choices[0].message is not an object"
    if not isinstance(message.get("content"), str | None):
        return "the message's content is not text"
    calls = message.get("tool_calls")
    if calls is not None and not (
        isinstance(calls, list)
        and all(
            isinstance(c, dict)
            and isinstance(c.get("function"), dict)
            and isinstance(c["function"].get("name"), str)
            and isinstance(c["function"].get("arguments"), str | None)
            for c in calls
        )
    ):
        return "the message's tool_calls are not a list of function calls"
    if not isinstance(parsed.get("usage"), dict | None):
        return "usage is not an object"
    return None


def count(value: Any) -> int:
    """A token count from a server's usage (a non-number, or a negative one, counts 0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _message(parsed: dict[str, Any]) -> str:
    error = parsed.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    if isinstance(error, str):
        return error
    return json.dumps(parsed)[:500]


def _error_class(status: int, message: str) -> str:
    if status == 400 and any(hint in message.lower() for hint in _CONTEXT):
        return "ContextWindowExceededError"
    if status == 400 and "content_policy" in message.lower():
        return "ContentPolicyViolationError"
    return _STATUS_CLASSES.get(status) or ("InternalServerError" if status >= 500 else "BadRequestError")


def _transport_error(exc: Exception, mid_stream: bool = False) -> EndpointError:
    """What a transport failure is called: a timeout, a connection that could not be made, or a stream cut."""
    import httpx

    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return EndpointError("Timeout", "Request timed out.", 408)
    if mid_stream:
        detail = str(exc) or type(exc).__name__
        return EndpointError("MidStreamFallbackError", f"the stream broke after it started ({detail})", 500)
    return EndpointError("APIConnectionError", "Connection error.", connection=True)


class StreamedReply:
    """A streamed answer put back together from its chunks' JSON: text pieces, tool-call deltas, usage, ids."""

    def __init__(self) -> None:
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.model: str | None = None
        self.fingerprint: str | None = None
        self.request_id: str | None = None

    def add(self, chunk: dict[str, Any]) -> str | None:
        """Take one chunk in; its text, if it carries some (a field not shaped as OpenAI's is left out)."""
        self.model = self.model or string(chunk.get("model"))
        self.request_id = self.request_id or string(chunk.get("id"))
        self.fingerprint = self.fingerprint or string(chunk.get("system_fingerprint"))
        if isinstance(chunk.get("usage"), dict) and chunk["usage"]:
            self.usage = chunk["usage"]
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return None
        choice = choices[0]
        if string(choice.get("finish_reason")):
            self.finish_reason = choice["finish_reason"]
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return None
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if not isinstance(call, dict):
                continue
            index = call.get("index")
            held = self.calls.setdefault(index if isinstance(index, int) else len(self.calls), {"function": {}})
            for key in ("id", "type"):
                if string(call.get(key)):
                    held[key] = call[key]
            function = call.get("function")
            function = function if isinstance(function, dict) else {}
            if string(function.get("name")):
                held["function"]["name"] = function["name"]
            if string(function.get("arguments")):
                held["function"]["arguments"] = held["function"].get("arguments", "") + function["arguments"]
        return string(delta.get("content"))

    def tool_calls(self) -> list[dict[str, Any]] | None:
        """The tool calls the deltas built, as litellm gives them back."""
        if not self.calls:
            return None
        return [tool_call(self.calls[i]) for i in sorted(self.calls)]


def string(value: Any) -> str | None:
    """``value`` if it is a non-empty text, else ``None`` (a server's field of another type is left out)."""
    return value if isinstance(value, str) and value else None


def tool_call(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call as litellm's ``ChatCompletionMessageToolCall.model_dump()`` has it."""
    function = call.get("function") or {}
    return {
        "function": {"arguments": function.get("arguments") or "", "name": function.get("name")},
        "id": call.get("id"),
        "type": call.get("type") or "function",
    }
