"""What a call cost: configured per-token prices first, else litellm's price map.

A call through a LiteLLM Proxy gateway is priced both ways: the workbench's own estimate,
and what the proxy reports (``x-litellm-response-cost``, kept as ``gateway_cost_usd``); its
``cost_usd`` is the larger of the two, so budgets count at least what was billed.
"""

from __future__ import annotations

from workbench.config import Deployment, Settings
from workbench.serving import Completion, catalog, litellm_module


class Pricing:
    """The ``cost.settle`` stage: turn a completion's real usage into USD."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._unpriced: set[str] = set()  # models litellm's map does not know (a failed lookup costs ~3 ms)

    def settle(self, deployment: Deployment | None, completion: Completion) -> float | None:
        """The call's cost in USD, or ``None`` when no price is known for the model."""
        if completion.cached_from is not None:
            return 0.0  # what it would have cost is recorded as saved_usd
        if completion.replay_of is not None:
            return completion.recorded_cost_usd
        if deployment is not None and deployment.gateway:
            own = self._estimate(deployment, completion)
            reported = completion.gateway_cost_usd
            return own if reported is None else max(own or 0.0, reported)  # what it was billed, or more
        price = self.settings.price_for(deployment) if deployment else None
        usage = completion.usage
        if price is not None:
            return (
                usage["prompt_tokens"] * price.input_cost_per_token
                + usage["completion_tokens"] * price.output_cost_per_token
            )
        if completion.model.startswith("local/"):
            return 0.0
        if completion.model in self._unpriced:
            return None
        if not catalog.may_price(completion.model, completion.raw):  # what litellm would say, without importing it
            return None
        litellm = litellm_module()
        try:
            return float(litellm.completion_cost(completion_response=completion.raw, model=completion.model))
        except Exception:  # litellm raises plain Exception for models missing from its map
            self._unpriced.add(completion.model)
            return None

    def _estimate(self, deployment: Deployment, completion: Completion) -> float | None:
        """The workbench's own price of a gateway call: configured, else litellm's map (never the proxy's header)."""
        usage = completion.usage
        price = self.settings.price_for(deployment)
        if price is not None:
            return (
                usage["prompt_tokens"] * price.input_cost_per_token
                + usage["completion_tokens"] * price.output_cost_per_token
            )
        try:
            cost_in, cost_out = litellm_module().cost_per_token(
                model=deployment.model,
                prompt_tokens=usage["prompt_tokens"],
                completion_tokens=usage["completion_tokens"],
            )
            return float(cost_in + cost_out)
        except Exception:  # litellm raises plain Exception for models missing from its map
            return None
