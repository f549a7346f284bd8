"""Map provider exceptions to what the router should do with them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from workbench.guardrails.scanners import scrub

# litellm class names (they mirror openai's) that are worth retrying on the same deployment.
_TRANSIENT = {
    "RateLimitError",
    "Timeout",
    "APITimeoutError",
    "APIConnectionError",
    "InternalServerError",
    "ServiceUnavailableError",
    "BadGatewayError",
    "MidStreamFallbackError",  # the stream broke after it started
}
_PROVIDER_MODULES = ("litellm", "openai", "httpx", "httpcore", "anthropic")
# litellm repeats the class name: "litellm.RateLimitError: RateLimitError: OpenAIException - ...",
# "litellm.Timeout: Timeout Error: OpenAIException - ...", "litellm.Timeout: APITimeoutError - ...",
# "litellm.ContextWindowExceededError: litellm.BadRequestError: ContextWindowExceededError: OpenAIException - ..."
_PREFIX = re.compile(r"^(?:(?:litellm\.)?\w*(?:Error|Timeout)(?::| -) )+(?:\w+ Error: )?(?:\w+Exception - )?")


class StreamFault(Exception):
    """A stream that ended without an answer (a malformed or cut-off body): a failed attempt, never billed."""

    def __init__(self, error_class: str, message: str):
        super().__init__(message)
        self.error_class = error_class


class LocalModelFault(StreamFault):
    """A local model (a plug-in's function, a scripted rule) raised: a failed attempt, retried and failed over,
    as litellm's custom provider reports it (``APIConnectionError``).
    """

    def __init__(self, exc: Exception):
        super().__init__("APIConnectionError", f"the local model raised {type(exc).__name__}: {exc}")


class EndpointError(Exception):
    """A failure calling an OpenAI-compatible server directly (openai_http.py), named as litellm names it."""

    def __init__(
        self,
        error_class: str,
        message: str,
        status_code: int | None = None,
        response: Any = None,
        connection: bool = False,
    ):
        super().__init__(message)
        self.error_class, self.status_code, self.response, self.connection = (
            error_class,
            status_code,
            response,
            connection,
        )


_AUTH_HINTS = re.compile(
    r"missing credentials|api[_ ]key|invalid.{0,20}(?:key|token)|unauthori[sz]ed|"
    r"authentication|incorrect api key|permission denied|forbidden",
    re.I,
)
_MALFORMED = re.compile(
    r"unterminated string|expecting (?:value|property name|',' delimiter)|jsondecodeerror|"
    r"invalid control character|extra data",
    re.I,
)
_CONNECTION = re.compile(
    r"connection (?:error|refused|reset|aborted)|name or service not known|"
    r"failed to establish|nodename nor servname|temporary failure in name resolution",
    re.I,
)


@dataclass(slots=True)
class Failure:
    """A provider error, classified."""

    error_class: str
    message: str
    status_code: int | None
    retry_after: float | None
    transient: bool


_BUDGET = re.compile(r"budget has been exceeded|budget_exceeded|exceeded (?:its |the )?budget", re.I)


def classify(exc: BaseException, secrets: tuple[str, ...] = (), host: str | None = None) -> Failure | None:
    """Classify a provider error; ``None`` means it is not one (a bug: let it propagate).

    litellm labels several failures ``InternalServerError`` (status 500); they are told apart
    here: missing or refused credentials are auth errors (never retried on the same
    deployment), a refused connection names the host, a body that is not JSON is malformed.
    """
    if isinstance(exc, StreamFault):
        return Failure(exc.error_class, str(exc), None, None, True)
    if isinstance(exc, EndpointError):
        name = exc.error_class
    elif type(exc).__module__.split(".")[0] in _PROVIDER_MODULES:
        name = type(exc).__name__
    else:
        return None
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    message = _PREFIX.sub("", " ".join(str(exc).split()))[:500]
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    if (
        status in (401, 403)
        or name in ("AuthenticationError", "PermissionDeniedError")
        or (name == "InternalServerError" and _AUTH_HINTS.search(message))
    ):
        name = "PermissionDeniedError" if status == 403 or name == "PermissionDeniedError" else "AuthenticationError"
        return Failure(name, scrub(message) or "", status if status in (401, 403) else 401, None, False)
    if getattr(exc, "connection", False) or (
        _CONNECTION.search(message) and name in ("InternalServerError", "APIConnectionError", "ServiceUnavailableError")
    ):
        name, status = "APIConnectionError", None
        message = f"cannot connect to {host or 'the provider'} ({message})"
    elif _MALFORMED.search(message):
        name = "MalformedResponse"
    elif _BUDGET.search(message):  # a gateway's budget (a LiteLLM Proxy's "Budget has been exceeded!")
        return Failure("BudgetExceeded", scrub(message) or "", status, None, False)
    transient = (
        name in _TRANSIENT
        or name == "MalformedResponse"
        or (status is not None and (status >= 500 or status in (408, 429)))
    )
    if name == "ContextWindowExceededError":
        transient = False  # the same request will not fit on a retry: fail over at once
    return Failure(name, scrub(message) or "", status, retry_after(exc), transient)


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait (``Retry-After`` / ``retry-after-ms``), if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        if headers.get("retry-after-ms") is not None:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        if headers.get("retry-after") is not None:
            return max(0.0, float(headers["retry-after"]))
    except (TypeError, ValueError):
        return None  # an HTTP-date Retry-After: fall back to our own backoff
    return None
