"""Factor 7, rate limits and latency: the response cache and the chaos server for failure drills."""

from workbench.limits.cache import ResponseCache
from workbench.limits.chaos import ChaosServer

__all__ = ["ChaosServer", "ResponseCache"]
