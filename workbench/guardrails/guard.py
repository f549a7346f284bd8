"""The guardrail stages: scan a call's input before anything is sent, and its output before it is shown.

Per stage and scanner, ``[guardrails]`` says what to do with a finding:

- ``block`` (input only): raise :class:`GuardrailViolation` naming the scanner and what it
  found; nothing is sent to the provider;
- ``redact``: replace each finding with ``[REDACTED:kind]`` — in what is sent (input) or
  in what is shown and stored (output);
- ``flag``: let it through, recorded;
- ``off``: do not scan.

Defaults: input ``secrets = "block"``, ``pii = "flag"``, ``max_length = "block"``; output
``secrets = "redact"``, ``pii = "flag"``. Every finding is a row in ``guard_events``
(stage, scanner, action, and the kinds and character spans found — never the text).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workbench.config import GuardrailSettings
from workbench.errors import GuardrailViolation
from workbench.guardrails.scanners import Finding, find_pii, find_secrets, redact
from workbench.store import Store, utcnow

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One scanner's verdict on one text."""

    scanner: str
    stage: str
    action: str
    findings: tuple[Finding, ...]

    @property
    def passed(self) -> bool:
        return not self.findings


class Guard:
    """``wb.guard``: runs the scanners a stage's policy names, records what they find."""

    def __init__(self, store: Store, settings: GuardrailSettings):
        self.store, self.settings = store, settings
        self.scanners: dict[str, Callable[[str], list[Finding]]] = {
            "secrets": find_secrets,
            "pii": find_pii,
            "max_length": self._too_long,
        }

    def check(self, stage: str, text: str, call_id: str | None = None, session: str | None = None) -> str:
        """``text`` as the stage lets it through (redacted where the policy says); raises on ``block``."""
        policy = self.settings.input if stage == "input" else self.settings.output
        results = []
        for scanner, action in policy.items():
            if action == "off":
                continue
            findings = tuple(self.scanners[scanner](text))
            if findings:
                results.append(ScanResult(scanner, stage, action, findings))
        if not results:
            return text
        self._record(results, call_id, session)
        blocked = [r for r in results if r.action == "block"]
        if blocked:
            r = blocked[0]
            kinds = ", ".join(sorted({f.kind for f in r.findings}))
            where = ", ".join(f"{f.start}-{f.end}" for f in r.findings[:3])
            raise GuardrailViolation(
                f"the {stage} was blocked by the {r.scanner} guardrail: found {kinds} (characters {where}); "
                f"nothing was sent. Remove it, or set [guardrails.{stage}] {r.scanner} = \"redact\""
            )
        redactions = [f for r in results if r.action == "redact" for f in r.findings]
        return redact(text, redactions) if redactions else text

    def df(self, session: str | None = None) -> pd.DataFrame:
        """Guard events, newest first (``session`` to narrow)."""
        import pandas as pd

        where, params = ("WHERE session = ?", (session,)) if session else ("", ())
        rows = self.store.query(f"SELECT id, at, call_id, session, stage, scanner, action, findings FROM guard_events "
                                f"{where} ORDER BY id DESC", params)  # fmt: skip
        return pd.DataFrame(rows, columns=["id", "at", "call_id", "session", "stage", "scanner", "action", "findings"])

    def _too_long(self, text: str) -> list[Finding]:
        limit = self.settings.max_input_chars
        return [Finding(f"over_{limit}_chars", limit, len(text))] if len(text) > limit else []

    def _record(self, results: list[ScanResult], call_id: str | None, session: str | None) -> None:
        now = utcnow()
        rows = [(now, call_id, session, r.stage, r.scanner, r.action,
                 json.dumps([{"kind": f.kind, "start": f.start, "end": f.end} for f in r.findings]))
                for r in results]  # fmt: skip
        with self.store.transaction() as conn:
            conn.executemany("INSERT INTO guard_events (at, call_id, session, stage, scanner, action, findings) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)  # fmt: skip
