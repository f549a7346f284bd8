"""Feedback on answers: a thumbs up or down (and a note) stored with the call.

``wb.feedback.rate(call_id, "down", note="wrong date")``, or the buttons ``%%llm --rate``
puts under an answer. Each rating is a row beside the call and an audit entry, written
together; ``wb.evals.add_cases(suite, rated="down")`` turns the badly rated calls into
cases of a suite, so what users disliked is checked on every later change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.errors import WorkbenchError
from workbench.guardrails.scanners import check_name, scrub
from workbench.store import Store, utcnow

if TYPE_CHECKING:
    import pandas as pd

_RATINGS = {"up": 1, "down": -1, "+1": 1, "-1": -1, "good": 1, "bad": -1}


class Feedback:
    """``wb.feedback``: ``rate`` a call, read the ratings with ``df``."""

    def __init__(self, store: Store):
        self.store = store

    def rate(self, call_id: str, rating: str | int | bool, note: str = "", by: str | None = None) -> int:
        """Record ``up`` / ``down`` (or ``True``/``False``, ``1``/``-1``) for a call; returns +1 or -1."""
        value = _value(rating)
        note = scrub(note) or ""
        if not self.store.query("SELECT 1 FROM calls WHERE id = ?", (call_id,)):
            raise WorkbenchError(f"no call {call_id!r} to rate; %llm_calls lists the recorded ones")
        from workbench.audit.entry import actor

        who = check_name("by", by or actor()["os_user"] or "unknown")
        with self.store.transaction() as conn:
            row_id = conn.execute(
                "INSERT INTO feedback (call_id, rating, note, by, at) VALUES (?, ?, ?, ?, ?)",
                (call_id, value, note, who, utcnow()),
            ).lastrowid
            self.store.audit(
                conn,
                "feedback",
                call_id,
                {"rating": value, "note": note},
                who={"user": who},
                bind=[("feedback", str(row_id))],
            )
        return value

    def df(self, call_id: str | None = None) -> pd.DataFrame:
        """Every rating (of one call), newest first, with the call's prompt and model."""
        import pandas as pd

        where, params = ("WHERE f.call_id = ?", (call_id,)) if call_id else ("", ())
        rows = self.store.query(
            "SELECT f.at, f.call_id, f.rating, f.note, f.by, c.model, c.prompt FROM feedback f "
            f"JOIN calls c ON c.id = f.call_id {where} ORDER BY f.id DESC",
            params,
        )
        return pd.DataFrame(rows, columns=["at", "call_id", "rating", "note", "by", "model", "prompt"])


def _value(rating: str | int | bool) -> int:
    if isinstance(rating, bool):
        return 1 if rating else -1
    if isinstance(rating, int) and rating in (1, -1):
        return rating
    if isinstance(rating, str) and rating.lower() in _RATINGS:
        return _RATINGS[rating.lower()]
    raise WorkbenchError(f"a rating is up or down (True/False, 1/-1), not {rating!r}")
