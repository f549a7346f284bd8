"""Per-deployment rpm/tpm limits, enforced before sending and shared by every process on the store.

A GCRA ("virtual scheduling"): each deployment has a theoretical arrival time for
requests and one for tokens. A call reserves the next free slot, atomically in one
``BEGIN IMMEDIATE`` transaction, then sleeps until it: calls queue in arrival order
instead of failing, are paced at the limit (``60 / rpm`` seconds apart; tokens at
``60 / tpm`` seconds each), and never poll. A slot further away than the caller may
wait is not reserved: the router skips the deployment (``RateLimited``) and fails over.
"""

from __future__ import annotations

import time

from workbench.store import Store


class RateLimiter:
    """Slots for deployments that set ``rpm`` and/or ``tpm``."""

    def __init__(self, store: Store, clock=time.time):
        self.store, self._clock = store, clock

    def reserve(self, deployment: str, rpm: int | None, tpm: int | None, tokens: int,
                max_wait_s: float) -> float | None:  # fmt: skip
        """Seconds to wait before sending (the slot is then held), or ``None`` if that exceeds ``max_wait_s``."""
        if rpm is None and tpm is None:
            return 0.0
        with self.store.transaction() as conn:
            now = self._clock()
            row = conn.execute("SELECT tat_req, tat_tok FROM rate_state WHERE deployment = ?", (deployment,)).fetchone()
            tat_req, tat_tok = row if row else (now, now)
            slot = max(now, tat_req if rpm else now, tat_tok if tpm else now)
            wait = slot - now
            if wait > max_wait_s:
                return None
            new_req = slot + 60.0 / rpm if rpm else tat_req
            new_tok = max(tat_tok, slot) + tokens * 60.0 / tpm if tpm else tat_tok
            conn.execute(
                "INSERT INTO rate_state (deployment, tat_req, tat_tok) VALUES (?, ?, ?) ON CONFLICT(deployment) "
                "DO UPDATE SET tat_req = excluded.tat_req, tat_tok = excluded.tat_tok",
                (deployment, new_req, new_tok),
            )
            return wait
