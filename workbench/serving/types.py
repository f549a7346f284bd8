"""What goes into and comes out of the serving layer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from workbench.plugins import REGISTRY
from workbench.store.jsontext import encoder
from workbench.store.records import AttemptRow, AttemptStatus

LOCAL_MODELS = ("local/echo", "local/extractive", "local/scripted")  # built in: no key, no network


def local_models() -> list[str]:
    """The built-in local models and those plug-ins add (``@workbench.plugins.model("local/NAME")``)."""
    return [*LOCAL_MODELS, *(n for n in REGISTRY.names("model") if n not in LOCAL_MODELS)]


# Parameters that change what a model answers: part of the request fingerprint.
OUTPUT_PARAMS = ("temperature", "max_tokens", "top_p", "stop", "seed", "response_format", "tools")


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces) for hashing and storing."""
    return _canonical(value)


# json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str), its encoder built once
_canonical = encoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(slots=True)
class Request:
    """A fully composed request to a route: the final messages and output-affecting params."""

    route: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    priority: int = field(default=0, compare=False)  # place in a rate-limited deployment's queue (higher first)
    max_wait_s: float | None = field(default=None, compare=False)  # longest wait for a slot (None: the deadline)
    answer_cap: int | None = field(default=None, compare=False)  # answer tokens a stream is read up to (reserved)
    _prompt_tokens: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    blobs: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # sha256 -> Image it names
    who: dict[str, str] = field(default_factory=dict, repr=False, compare=False)  # user, session, task, agent

    def prompt_tokens(self, model: str) -> int:
        """The messages' token count for ``model``'s tokenizer, counted once per request (an image by its tiles)."""
        if model not in self._prompt_tokens:
            from workbench.serving import tokens

            messages, images = self.text_messages()
            self._prompt_tokens[model] = tokens.count_messages(model, messages) + images
        return self._prompt_tokens[model]

    def text_messages(self) -> tuple[list[dict[str, Any]], int]:
        """The messages with each image as its marker, and the tokens the images add."""
        if not self.blobs:
            return self.messages, 0
        from workbench.serving.images import text_view

        return text_view(self.messages, self.blobs)

    def wire_messages(self) -> list[dict[str, Any]]:
        """The messages as a provider receives them (each stored image's bytes as a ``data:`` URL)."""
        if not self.blobs:
            return self.messages
        from workbench.serving.images import wire

        return wire(self.messages, self.blobs)

    def to_json(self) -> str:
        """The stored form (also what the fingerprint hashes)."""
        return canonical_json({"route": self.route, "messages": self.messages, "params": self.params})

    @staticmethod
    def fingerprint_of(stored_json: str) -> str:
        """The replay key of a stored request."""
        return hashlib.sha256(stored_json.encode()).hexdigest()


@dataclass(slots=True)
class Attempt:
    """One try of one deployment, as recorded in the ``attempts`` table."""

    n: int
    deployment: str
    model: str
    status: AttemptStatus
    started_at: str
    latency_ms: float = 0.0
    error_class: str | None = None
    error: str | None = None
    status_code: int | None = None
    retry_after: float | None = None
    end_ns: int = 0  # wall clock at the end of the attempt (for its span)
    endpoint: str | None = None  # model @ base URL [key variable]: what the breaker and health are kept by
    response_model: str | None = None  # what the provider says served it (a dated snapshot, say)
    system_fingerprint: str | None = None
    request_id: str | None = None

    def row(self, call_id: str) -> AttemptRow:
        """The attempt as a store row."""
        return {
            "call_id": call_id,
            "n": self.n,
            "deployment": self.deployment,
            "model": self.model,
            "status": self.status,
            "error_class": self.error_class,
            "error": self.error,
            "status_code": self.status_code,
            "retry_after": self.retry_after,
            "started_at": self.started_at,
            "latency_ms": round(self.latency_ms, 3),
            "endpoint": self.endpoint,
            "response_model": self.response_model,
            "system_fingerprint": self.system_fingerprint,
            "request_id": self.request_id,
        }


@dataclass(slots=True)
class Completion:
    """What a route answered, with every attempt it took to get there."""

    text: str
    model: str
    deployment: str
    usage: dict[str, int]
    attempts: list[Attempt]
    finish_reason: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    ttft_ms: float | None = None
    raw: Any = None  # the provider response (litellm's ModelResponse, or a server's JSON), for pricing
    replay_of: str | None = None
    cached_from: str | None = None
    recorded_cost_usd: float | None = None
    gateway_cost_usd: float | None = None  # what a LiteLLM Proxy gateway reported it cost
    routing: str | None = None  # the routing policy's decision and its reason
