"""Factor 7, rate limits and latency: rate limiter, response cache, and the chaos server for drills."""

from workbench.limits.cache import ResponseCache
from workbench.limits.chaos import ChaosServer
from workbench.limits.ratelimit import RateLimiter

__all__ = ["ChaosServer", "RateLimiter", "ResponseCache"]
