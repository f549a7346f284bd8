"""The approval card: a parked agent run's pending tool call, decided with a click.

A notebook cell can't block waiting for a widget click (the kernel would never see the
click), so the run is parked with its state saved and the cell ends, showing this card:
the action, its arguments, why it needs approval, and Approve / Edit / Reject (with a
reason). A click records the decision and resumes the run from its saved state; the
result appears in the card's own output area. If the resumed run needs another approval,
a new card appears there. A decision taken anywhere else — the JupyterLab panel,
``%llm_approvals --approve`` in another cell, a terminal, another kernel — shows on the card
within a second (a watcher thread reads the store while cards are open): its buttons go, and
the run resumes here, in this live kernel, on a thread of its own, its result shown in the
card. Resuming is exactly-once wherever it happens (the run is owned by one resumer at a
time and the tool call is claimed before it runs), so a ``wb.resume`` elsewhere at the same
moment runs nothing twice. If that resume fails, "Resume" tries again.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from html import escape
from typing import Any

WATCH_S = 1.0  # how often open cards look for decisions taken elsewhere
_cards: weakref.WeakSet[ApprovalCard] = weakref.WeakSet()
_watcher: threading.Thread | None = None
_watch_lock = threading.Lock()


def _watch() -> None:
    """While cards wait for a decision, look for decisions taken elsewhere and show them."""
    global _watcher
    while True:
        time.sleep(WATCH_S)
        with _watch_lock:
            waiting = [card for card in list(_cards) if not card.decided]
            if not waiting:
                _watcher = None
                return
        for card in waiting:
            try:
                card.refresh()
            except Exception:  # noqa: BLE001 - a closed store or kernel: the card stays as it is
                _cards.discard(card)


def _follow(card: ApprovalCard) -> None:
    global _watcher
    with _watch_lock:
        _cards.add(card)
        if _watcher is None:
            _watcher = threading.Thread(target=_watch, daemon=True, name="workbench-approval-cards")
            _watcher.start()


class ApprovalCard:
    """The widget for one pending approval of a parked run (``.widget`` is what the cell shows)."""

    def __init__(self, wb: Any, run: Any, by: str | None = None):
        import ipywidgets as widgets

        self.wb, self.run, self.by = wb, run, by
        row = wb.approvals.get(run.waiting_on)
        self.approval_id = row["id"]
        arguments = json.loads(row["arguments"])
        self.header = widgets.HTML(
            f"<div class='wb-approval-head'><b>approval needed</b> · {escape(row['risk'])} tool "
            f"<code>{escape(row['tool'])}</code> · agent {escape(row['agent'] or '')}</div>"
            f"<div class='wb-approval-why'>{escape(row['reason'])}</div>"
        )
        self.arguments = widgets.Textarea(
            value=json.dumps(arguments, indent=2),
            description="arguments",
            disabled=True,
            layout=widgets.Layout(width="95%", height="90px"),
        )
        self.reason = widgets.Text(placeholder="why (recorded)", description="reason")
        self.approve_button = widgets.Button(description="Approve", button_style="success", icon="check")
        self.edit_button = widgets.Button(description="Edit", icon="pencil")
        self.reject_button = widgets.Button(description="Reject", button_style="danger", icon="times")
        self.check_button = widgets.Button(
            description="Decided elsewhere?", icon="refresh", tooltip="pick up a decision taken in a terminal"
        )
        self.status = widgets.HTML()
        self.output = widgets.Output()
        self.approve_button.on_click(lambda _: self.decide("approve"))
        self.edit_button.on_click(lambda _: self.edit())
        self.reject_button.on_click(lambda _: self.decide("reject"))
        self.check_button.on_click(lambda _: self.check())
        buttons = widgets.HBox([self.approve_button, self.edit_button, self.reject_button, self.check_button])
        self.widget = widgets.VBox([self.header, self.arguments, self.reason, buttons, self.status, self.output])
        self.widget.add_class("wb-approval-card")
        self.decided = False
        _follow(self)

    def refresh(self) -> threading.Thread | None:
        """Take up a decision taken elsewhere, if there is one: show it and resume the run on a thread.

        The watcher calls this once a second; the returned thread (None when there is nothing
        to take up) is the resume, so the watcher goes on watching other cards meanwhile.
        """
        row = self.wb.approvals.get(self.approval_id)
        if self.decided or row["status"] in ("pending", "escalated"):
            return None
        self._lock()
        self.check_button.description, self.check_button.icon = "Resume", "play"
        decided = f"{escape(row['status'])} by {escape(row['decided_by'] or '')} (elsewhere)"
        self.status.value = f"<span class='wb-decided'>{decided} · resuming</span>"
        thread = threading.Thread(
            target=self._resume_here, args=(decided,), daemon=True, name=f"workbench-resume-{self.run.id}"
        )
        thread.start()
        return thread

    def _resume_here(self, decided: str) -> None:
        """Resume the run off the kernel's main thread; its result goes into the card's output area."""
        try:
            resumed = self.wb.resume(self.run.id)
        except Exception as exc:  # noqa: BLE001 - on this thread nobody else would see it: the card says it
            self.status.value = f"<span class='wb-error'>{decided}; resuming failed: {escape(str(exc))}</span>"
            self.check_button.disabled = False  # "Resume" tries again
            return
        self.output.append_display_data(resumed)  # an Output widget's context manager is for the main thread
        if resumed.status == "waiting":
            self.output.append_display_data(approval_card(self.wb, resumed, by=self.by))
        self.status.value = f"<span class='wb-decided'>{decided}</span>"

    def edit(self) -> None:
        """Let the arguments be edited; Approve then runs the tool with the edited ones (a modify)."""
        self.arguments.disabled = False
        self.approve_button.description = "Run edited"

    def check(self) -> None:
        """Pick up a decision taken elsewhere (``workbench approvals``, another kernel) and resume the run."""
        from workbench.errors import WorkbenchError

        self.wb.approvals.expire()
        row = self.wb.approvals.get(self.approval_id)
        if row["status"] in ("pending", "escalated"):
            self.status.value = (
                f"<span class='wb-pending'>still {escape(row['status'])}: decide here, with "
                "%llm_approvals, or workbench approvals in a terminal</span>"
            )
            return
        self._lock()
        self.status.value = (
            f"<span class='wb-decided'>{escape(row['status'])} by {escape(row['decided_by'] or '')} (elsewhere)</span>"
        )
        try:
            resumed = self.wb.resume(self.run.id)
        except WorkbenchError as exc:
            self.status.value = f"<span class='wb-error'>{escape(str(exc))}</span>"
            return
        self._show(resumed)

    def _lock(self) -> None:
        self.decided = True
        for button in (self.approve_button, self.edit_button, self.reject_button, self.check_button):
            button.disabled = True
        self.arguments.disabled = True

    def _show(self, resumed: Any) -> None:
        from IPython.display import display

        with self.output:
            display(resumed)
            if resumed.status == "waiting":
                display(approval_card(self.wb, resumed, by=self.by))

    def decide(self, decision: str) -> None:
        """Record the decision, resume the run, and show its result in this card's output area."""
        from workbench.errors import WorkbenchError

        edited = None
        if decision == "approve" and not self.arguments.disabled:
            try:
                edited = json.loads(self.arguments.value)
            except json.JSONDecodeError as exc:
                self.status.value = f"<span class='wb-error'>the arguments are not JSON: {escape(str(exc))}</span>"
                return
            decision = "modify"
        self._lock()
        try:
            self.wb.approvals.decide(self.approval_id, decision, by=self.by, reason=self.reason.value, arguments=edited)
            row = self.wb.approvals.get(self.approval_id)
            who = escape(row["decided_by"])
            self.status.value = f"<span class='wb-decided'>{escape(row['status'])} by {who}</span>"
            resumed = self.wb.resume(self.run.id)
        except WorkbenchError as exc:
            self.status.value = f"<span class='wb-error'>{escape(str(exc))}</span>"
            return
        self._show(resumed)


def approval_card(wb: Any, run: Any, by: str | None = None) -> Any:
    """The card widget for a waiting run (what ``%%llm -t`` shows when a tool needs approval)."""
    return ApprovalCard(wb, run, by).widget
