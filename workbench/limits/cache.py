"""The exact response cache: the recorded calls themselves, looked up by request fingerprint.

No second copy of answers is kept: a hit is the newest successful live call with the
same fingerprint inside the TTL (served by the ``(fingerprint, started_at)`` index), served
only as its audit entry recorded it (``Store.recorded_call``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from workbench.errors import WorkbenchError
from workbench.serving import Attempt, Completion
from workbench.store import Store, utcnow


class ResponseCache:
    """Answers a repeated request from the store."""

    def __init__(self, store: Store):
        self.store = store

    def clear(self, route: str | None = None) -> None:
        """Answer nothing from calls recorded until now (of ``route``, or of every route); they stay recorded."""
        if route is not None and (not isinstance(route, str) or not route.strip()):
            raise WorkbenchError(f"clear() takes a route's name, or nothing for every route, not {route!r}")
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO cache_clears (route, at) VALUES (?, ?) ON CONFLICT(route) DO UPDATE SET at = excluded.at",
                (route or "*", utcnow()),
            )

    def lookup(self, fingerprint: str, ttl_s: float, route: str | None = None) -> Completion | None:
        """The cached completion for ``fingerprint`` (a call of ``route``), or ``None``."""
        return self._answer("fingerprint = ?", (fingerprint,), self._since(ttl_s, route))

    def similar(
        self, route: str, context: str, vector: Any, threshold: float, ttl_s: float
    ) -> tuple[Completion, float] | None:
        """The answer of the recorded call whose last user message is closest to ``vector`` (cosine at least
        ``threshold``) among those with the same route and ``context`` (parameters, earlier messages).
        """
        import numpy as np

        rows = self.store.query(
            "SELECT call_id, vector FROM prompt_vectors WHERE context = ? AND route = ? AND at >= ?",
            (context, route, self._since(ttl_s, route)),
        )
        if not rows:
            return None
        matrix = np.frombuffer(b"".join(bytes(r["vector"]) for r in rows), dtype=np.float32).reshape(len(rows), -1)
        scores = matrix @ np.asarray(vector, dtype=np.float32)
        best = int(np.argmax(scores))
        if float(scores[best]) < threshold:
            return None
        hit = self._answer("id = ?", (rows[best]["call_id"],), "")
        return (hit, float(scores[best])) if hit is not None else None

    def remember(self, call_id: str, route: str, context: str, vector: Any, at: str) -> None:
        """Keep an answered call's prompt vector for the semantic cache."""
        import numpy as np

        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO prompt_vectors (call_id, route, context, vector, at) VALUES (?, ?, ?, ?, ?)",
                (call_id, route, context, np.asarray(vector, dtype=np.float32).tobytes(), at),
            )

    def _since(self, ttl_s: float, route: str | None) -> str:
        since = (datetime.now(UTC) - timedelta(seconds=ttl_s)).isoformat(timespec="microseconds")
        cleared = self.store.query("SELECT MAX(at) AS at FROM cache_clears WHERE route IN (?, '*')", (route or "*",))
        return str(max(since, cleared[0]["at"] or ""))

    def _answer(self, where: str, args: tuple[Any, ...], since: str) -> Completion | None:
        with self.store.lock:
            found = self.store.conn.execute(
                f"SELECT id FROM calls WHERE {where} AND started_at >= ? AND status = 'ok' AND mode = 'live' "
                "AND cached_from IS NULL AND compacted_at IS NULL ORDER BY started_at DESC LIMIT 1",
                (*args, since),
            ).fetchone()
        if found is None:
            return None
        row = self.store.recorded_call(found[0], "cache")  # an answer edited in the file is refused, never reused
        usage = {k: row[k] or 0 for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        return Completion(
            text=row["text"] or "",
            model=row["model"],
            deployment=row["deployment"],
            usage=usage,
            attempts=[Attempt(n=1, deployment="cache", model=row["model"], status="ok", started_at=utcnow())],
            finish_reason=row["finish_reason"],
            tool_calls=json.loads(row["tool_calls"]) if row["tool_calls"] else None,
            cached_from=row["id"],
            recorded_cost_usd=row["cost_usd"],
        )
