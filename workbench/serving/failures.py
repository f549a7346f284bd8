"""Map provider exceptions to what the router should do with them."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
# litellm repeats the class name: "litellm.RateLimitError: RateLimitError: OpenAIException - ..."
_PREFIX = re.compile(r"^(litellm\.)?\w+Error: (\w+Error: )?(\w+Exception - )?")


@dataclass(slots=True)
class Failure:
    """A provider error, classified."""

    error_class: str
    message: str
    status_code: int | None
    retry_after: float | None
    transient: bool


def classify(exc: BaseException, secrets: tuple[str, ...] = ()) -> Failure | None:
    """Classify a provider error; ``None`` means it is not one (a bug: let it propagate)."""
    if type(exc).__module__.split(".")[0] not in _PROVIDER_MODULES:
        return None
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    transient = name in _TRANSIENT or (status is not None and (status >= 500 or status in (408, 429)))
    if name == "ContextWindowExceededError":
        transient = False  # the same request will not fit on a retry: fail over at once
    message = _PREFIX.sub("", " ".join(str(exc).split()))[:500]
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
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
