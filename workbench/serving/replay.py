"""Replay mode: answer from recorded calls matched by request fingerprint.

A miss names the closest recorded request and shows a unified diff of it against
the new one, so an edited prompt in a regression notebook says what changed.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from workbench.errors import ReplayMiss
from workbench.serving.types import Attempt, Completion, Request
from workbench.store import Store, utcnow

_RECORDED = "mode = 'live' AND status = 'ok' AND compacted_at IS NULL"  # what a replay answers from


def _lines(route: str, request: dict[str, Any]) -> list[str]:
    lines = [f"route: {route}"]
    lines += [f"{k}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(request.get("params", {}).items())]
    for message in request.get("messages", []):
        content = message.get("content")
        text = content if isinstance(content, str) else json.dumps(content, sort_keys=True)
        for i, line in enumerate((text or "").splitlines() or [""]):
            lines.append(f"{message.get('role', '?') if i == 0 else ' ' * len(message.get('role', '?'))}: {line}")
    return lines


class ReplayServing:
    """Serves recorded completions; never calls a provider."""

    def __init__(self, store: Store):
        self.store = store

    def complete(self, request: Request, fingerprint: str, checked: dict[str, Any] | None = None) -> Completion:
        """The most recent recorded live call with this fingerprint, as a completion.

        ``checked``: a recorded call the caller has read and checked (``store.recorded_call``), e.g. the one a
        session re-run re-sends; when it is the one the fingerprint finds, it is served as checked, not read again.
        """
        rows = self.store.query(
            "SELECT id FROM calls WHERE fingerprint = ? AND mode = 'live' AND status = 'ok' AND compacted_at IS NULL "
            "ORDER BY started_at DESC LIMIT 1",
            (fingerprint,),
        )
        if not rows:
            raise self.miss(request)
        found = rows[0]["id"]
        row = checked if checked is not None and checked["id"] == found else self.store.recorded_call(found)
        # (what is served is what was checked: an edit is refused)
        answered = [a for a in row["attempts"] if a["status"] == "ok"]
        served: dict[str, Any] = answered[0] if answered else {}  # with the model version the provider reported
        attempt = Attempt(
            n=1,
            deployment=f"replay:{row['deployment']}",
            model=row["model"],
            status="ok",
            started_at=utcnow(),
            endpoint=f"replay:{row['deployment']}",
            response_model=served.get("response_model"),
            system_fingerprint=served.get("system_fingerprint"),
        )
        return Completion(
            text=row["text"] or "",
            model=row["model"],
            deployment=row["deployment"],
            usage={k: row[k] or 0 for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
            attempts=[attempt],
            finish_reason=row["finish_reason"],
            tool_calls=json.loads(row["tool_calls"]) if row["tool_calls"] else None,
            replay_of=row["id"],
            recorded_cost_usd=row["cost_usd"],
        )

    def miss(self, request: Request) -> ReplayMiss:
        """The error for a request nothing was recorded for, with the closest one diffed."""
        new = json.loads(request.to_json())
        new_lines = _lines(request.route, new)
        candidates = self.store.query(
            f"SELECT id, route, request FROM calls WHERE {_RECORDED} ORDER BY started_at DESC LIMIT 500"
        )
        where = f"the store {self.store.path}"
        if not candidates:
            return ReplayMiss(
                f"replay: {where} holds no recorded calls; run once with mode = 'live' "
                "(WORKBENCH_MODE=live) to record them"
            )
        best, best_score, best_lines = None, -1.0, []
        new_text = "\n".join(new_lines)
        for row in candidates:
            lines = _lines(row["route"], json.loads(row["request"]))
            similarity = difflib.SequenceMatcher(None, "\n".join(lines), new_text, autojunk=False).ratio()
            score = similarity + (row["route"] == request.route)
            if score > best_score:
                best, best_score, best_lines = row, score, lines
        assert best is not None
        diff = "\n".join(
            difflib.unified_diff(best_lines, new_lines, f"recorded call {best['id']}", "this request", lineterm="")
        )
        return ReplayMiss(
            f"replay: no recorded call matches this request to {request.route!r}; closest is "
            f"call {best['id']} in {where} (- recorded, + now). Re-record it in live mode, "
            f"or undo the change:\n{diff}",
            closest_call_id=best["id"],
            diff=diff,
        )
