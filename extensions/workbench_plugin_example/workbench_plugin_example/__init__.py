"""An example workbench plug-in, installed as a package (``pip install extensions/workbench_plugin_example``).

``register(registry)`` is the entry point (group ``workbench``); it adds one of each kind:

- scanner ``ticket_ids``: finds internal ticket ids (``TCK-123456``) so a policy can redact them;
- scorer ``no_shouting``: 1.0 unless the answer is in capitals;
- check ``ticket_id``: a tool argument must be a well-formed ticket id;
- model ``local/upper``: answers with the question in capitals (offline, like ``local/echo``);
- tool ``tickets.lookup``: looks a ticket up in a small in-memory table.
"""

from __future__ import annotations

import re
from typing import Any

TICKET = re.compile(r"\bTCK-\d{6}\b")
TICKETS = {"TCK-000042": "printer on floor 3 is out of toner (open)", "TCK-000043": "VPN drops at 17:00 (closed)"}


def find_ticket_ids(text: str, ctx: Any) -> list[Any]:
    from workbench.guardrails import Finding

    return [Finding("ticket_id", m.start(), m.end()) for m in TICKET.finditer(text)]


def no_shouting(output: str, case: dict[str, Any], ctx: Any, **options: Any) -> float:
    letters = [c for c in output if c.isalpha()]
    return 0.0 if letters and all(c.isupper() for c in letters) else 1.0


def ticket_id(value: Any, context: Any) -> str | None:
    return None if isinstance(value, str) and TICKET.fullmatch(value) else f"{value!r} is not a ticket id (TCK-NNNNNN)"


def upper(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    last = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
    return str(last).upper()


def lookup(ticket: str) -> str:
    """Look up a support ticket by id.

    Args:
        ticket: the ticket id, such as TCK-000042

    """
    return TICKETS.get(ticket, f"no ticket {ticket}")


def register(registry: Any) -> None:
    """The entry point: add this package's scanner, scorer, check, model and tool to the workbench."""
    from workbench.guardrails import Scanner

    registry.add("scanner", "ticket_ids", Scanner("ticket_ids", find_ticket_ids, frozenset({"input", "output"})))
    registry.add("scorer", "no_shouting", no_shouting)
    registry.add("check", "ticket_id", ticket_id)
    registry.add("model", "local/upper", upper)
    registry.add("tool", "tickets.lookup", lookup)
