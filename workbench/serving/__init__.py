"""Factor 1, the model serving layer: routes, deployments, litellm, offline models, replay."""

from workbench.serving.replay import ReplayServing
from workbench.serving.router import FailoverPlan, Router, TokenSink, litellm_module, needs_litellm, prepare
from workbench.serving.types import LOCAL_MODELS, Attempt, Completion, Request, canonical_json

__all__ = [
    "LOCAL_MODELS",
    "Attempt",
    "Completion",
    "FailoverPlan",
    "ReplayServing",
    "Request",
    "Router",
    "TokenSink",
    "canonical_json",
    "litellm_module",
    "needs_litellm",
    "prepare",
]
