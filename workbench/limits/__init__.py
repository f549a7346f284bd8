"""Factor 7, rate limits and latency: the chaos server for failure drills."""

from workbench.limits.chaos import ChaosServer

__all__ = ["ChaosServer"]
