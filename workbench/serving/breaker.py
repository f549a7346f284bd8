"""Circuit breakers, one per deployment (in this process).

closed --N consecutive failures--> open --cool-down--> half-open --probe ok--> closed
                                    ^                                |
                                    +-------- probe fails -----------+

While open, a deployment is skipped without sending anything. After the cool-down
one call probes it (half-open); others keep skipping it until the probe ends.
Rate limiting (429) and request-specific errors (context window, bad request) do
not count: they say nothing about the deployment's health.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

_NOT_HEALTH = {"RateLimitError", "ContextWindowExceededError", "BadRequestError"}


@dataclass(slots=True)
class _State:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


class Breakers:
    """The breakers of every deployment a router has used."""

    def __init__(self, failures: int = 5, cooldown_s: float = 30.0, clock=time.monotonic):
        self.threshold, self.cooldown_s, self._clock = failures, cooldown_s, clock
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    def state(self, deployment: str) -> str:
        """``closed``, ``open`` or ``half-open``."""
        with self._lock:
            s = self._states.get(deployment)
            if s is None or s.opened_at is None:
                return "closed"
            return "half-open" if s.probing or self._clock() - s.opened_at >= self.cooldown_s else "open"

    def allow(self, deployment: str) -> bool:
        """May a call be sent to ``deployment`` now? (Claims the half-open probe if due.)"""
        with self._lock:
            s = self._states.get(deployment)
            if s is None or s.opened_at is None:
                return True
            if s.probing or self._clock() - s.opened_at < self.cooldown_s:
                return False
            s.probing = True
            return True

    def retry_at(self, deployment: str) -> float:
        """Seconds from now until ``deployment`` may be probed (0 if it may be tried now)."""
        with self._lock:
            s = self._states.get(deployment)
            if s is None or s.opened_at is None:
                return 0.0
            return max(0.0, s.opened_at + self.cooldown_s - self._clock())

    def succeeded(self, deployment: str) -> None:
        """A call went through: close the breaker."""
        with self._lock:
            self._states[deployment] = _State()

    def failed(self, deployment: str, error_class: str) -> None:
        """A call failed: count it, and open (or re-open) the breaker at the threshold."""
        if error_class in _NOT_HEALTH:
            with self._lock:
                s = self._states.get(deployment)
                if s is not None:
                    s.probing = False
            return
        with self._lock:
            s = self._states.setdefault(deployment, _State())
            s.failures += 1
            if s.probing or s.failures >= self.threshold:
                s.opened_at, s.probing = self._clock(), False
