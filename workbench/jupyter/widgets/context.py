"""``%llm_context``: a context plan as blocks with token bars (dropped ones greyed) and the final messages."""

from __future__ import annotations

from html import escape
from typing import Any

_COLORS = {"included": "#4c78a8", "truncated": "#f58518", "summarised": "#54a24b", "dropped": "#bab0ac"}


def plan_html(plan: Any) -> str:
    """The plan's blocks as an HTML table with one bar per block (width = share of the budget)."""
    head = (
        f"<b>{escape(plan.spec or '(inline)')}</b> v{escape(plan.version or '-')} — {plan.used} of {plan.budget} tokens"
    )
    rows = []
    for block in plan.blocks:
        width = min(100.0, 100.0 * block.tokens / max(1, plan.budget))
        style = "opacity:0.45;" if block.status == "dropped" else ""
        bar = (
            f'<div style="background:{_COLORS.get(block.status, "#999")};width:{width:.1f}%;'
            f'min-width:2px;height:10px"></div>'
        )
        rows.append(
            f'<tr class="wb-block wb-{block.status}" style="{style}"><td>{escape(block.source)}</td>'
            f"<td><code>{escape(block.ref)}</code></td><td style='width:30%'>{bar}</td>"
            f"<td style='text-align:right'>{block.tokens}</td><td>{block.status}</td>"
            f"<td>{escape(block.reason)}</td></tr>"
        )
    table = (
        "<table class='wb-plan'><tr><th>source</th><th>ref</th><th>tokens</th><th></th><th>status</th>"
        f"<th>reason</th></tr>{''.join(rows)}</table>"
    )
    return f"<div class='wb-context'><p>{head}</p>{table}</div>"


def messages_html(messages: list[dict[str, Any]]) -> str:
    """The final messages, one pre block each."""
    return "".join(
        f"<p><b>{escape(m['role'])}</b></p><pre style='white-space:pre-wrap'>"
        f"{escape(str(m.get('content') or ''))}</pre>"
        for m in messages
    )


def context_view(plan: Any) -> Any:
    """An ipywidgets box: the plan, then the final messages in a collapsible section."""
    import ipywidgets as widgets

    final = widgets.Accordion(children=[widgets.HTML(messages_html(plan.messages))])
    final.set_title(0, f"final messages ({len(plan.messages)})")
    box = widgets.VBox([widgets.HTML(plan_html(plan)), final])
    box.add_class("wb-context-view")
    return box
