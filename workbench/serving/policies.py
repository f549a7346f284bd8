"""Routing policies: the order in which a route's deployments are tried, and why.

- ``ordered``: as configured (failover only).
- ``cheapest``: cheapest first, by this request's prompt tokens and answer budget at each
  deployment's price (config prices, else litellm's price map); deployments whose context
  window is too small for the prompt go last, unknown prices after known ones.
- ``fastest``: lowest recent latency first (an EWMA of successful attempts in this
  process); a deployment never measured goes first, so it gets measured.
- ``complexity``: list the route cheap-to-strong. A prompt scoring
  ``COMPLEX_AT`` or more is *hard* and tries the deployments strongest-first; otherwise
  the configured order. The score, transparently: +1 for a prompt over 100 tokens, +1
  more over 400; +2 for code (a ``` fence or a ``def``/``class``/``SELECT`` line); +1 for
  each reasoning cue (see ``CUES``), at most 3; +1 for two or more questions.

Failover still applies after ordering. The decision is recorded on the call.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from workbench.config import Deployment, Route, Settings
from workbench.serving import tokens
from workbench.serving.types import Request

COMPLEX_AT = 2
CUES = (
    "step by step",
    "prove",
    "derive",
    "analy",
    "design",
    "debug",
    "refactor",
    "optimi",
    "compare",
    "trade-off",
    "explain why",
    "root cause",
)
_CODE = re.compile(r"```|^\s*(def|class|select|function|import)\b", re.IGNORECASE | re.MULTILINE)
DEFAULT_ANSWER_TOKENS = 256


class LatencyTracker:
    """EWMA of successful attempt latency per deployment (thread-safe)."""

    def __init__(self, alpha: float = 0.3):
        self.alpha = alpha
        self._ewma: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe(self, deployment: str, latency_ms: float) -> None:
        """Fold one successful attempt's latency in."""
        with self._lock:
            old = self._ewma.get(deployment)
            self._ewma[deployment] = latency_ms if old is None else self.alpha * latency_ms + (1 - self.alpha) * old

    def get(self, deployment: str) -> float | None:
        """The current estimate in ms, or ``None`` if never measured."""
        with self._lock:
            return self._ewma.get(deployment)


def complexity(request: Request, count_tokens: Any) -> tuple[int, list[str]]:
    """The complexity score of the last user message and the reasons that make it up."""
    text = next((m.get("content") or "" for m in reversed(request.text_messages()[0]) if m.get("role") == "user"), "")
    text = text if isinstance(text, str) else str(text)
    score, why = 0, []
    tokens = count_tokens(text)
    if tokens > 100:
        score += 1 + (tokens > 400)
        why.append(f"{tokens} tokens")
    if _CODE.search(text):
        score += 2
        why.append("code")
    cues = [c for c in CUES if c in text.lower()][:3]
    if cues:
        score += len(cues)
        why.append("cues: " + ", ".join(cues))
    if text.count("?") >= 2:
        score += 1
        why.append(f"{text.count('?')} questions")
    return score, why


def order(
    route: Route, request: Request, settings: Settings, latency: LatencyTracker, litellm: Any
) -> tuple[list[Deployment], str]:
    """The deployments in the order to try them, and the reason, under the route's policy."""
    deployments = list(route.deployments)
    if route.policy == "ordered" or len(deployments) < 2:
        return deployments, route.policy
    if route.policy == "fastest":

        def speed(d: Deployment) -> float:
            ms = latency.get(d.endpoint)
            return -1.0 if ms is None else ms

        ranked = sorted(deployments, key=speed)
        shown = ", ".join(f"{d.label} {'unmeasured' if speed(d) < 0 else f'{speed(d):.0f} ms'}" for d in ranked)
        return ranked, f"fastest: {shown}"
    if route.policy == "cheapest":
        prompt = request.prompt_tokens(deployments[0].model)
        answer = request.params.get("max_tokens") or DEFAULT_ANSWER_TOKENS

        def cost(d: Deployment) -> tuple[int, float]:
            info = _model_info(litellm, d.model)
            fits = info.get("max_input_tokens") is None or prompt <= info["max_input_tokens"]
            units = unit_prices(settings, d, litellm)
            if units is None:
                return (0 if fits else 2, float("inf"))
            return (0 if fits else 2, prompt * units[0] + answer * units[1])

        ranked = sorted(deployments, key=cost)
        shown = ", ".join(f"{d.label} ${cost(d)[1]:.6f}" + ("" if cost(d)[0] == 0 else " (too long)") for d in ranked)
        return ranked, f"cheapest: {shown}"
    score, why = complexity(request, lambda text: tokens.count_text("gpt-4o", text))
    hard = score >= COMPLEX_AT
    ranked = deployments[::-1] if hard else deployments
    detail = "; ".join(why) or "no signals"
    return ranked, f"complexity {score} ({detail}): {'hard, strongest first' if hard else 'simple, cheapest first'}"


def unit_prices(settings: Settings, deployment: Deployment, litellm: Any) -> tuple[float, float] | None:
    """(input, output) USD per token: configured prices, else 0 for local models, else litellm's map."""
    price = settings.price_for(deployment)
    if price is not None:
        return price.input_cost_per_token, price.output_cost_per_token
    if deployment.model.startswith("local/"):
        return 0.0, 0.0
    info = _model_info(litellm, deployment.model)
    if info.get("input_cost_per_token") is None:
        return None
    return info["input_cost_per_token"], info.get("output_cost_per_token") or 0.0


def _model_info(litellm: Any, model: str) -> dict[str, Any]:
    if model.startswith("local/"):
        return {}  # litellm's map knows no local model
    try:
        return dict(litellm.get_model_info(model))
    except Exception:  # litellm raises plain Exception for models missing from its map
        return {}
