"""What the orchestration loops need of the workbench: narrow protocols, not the whole ``Workbench``.

An agent takes model turns (``step``) and a workflow asks (``ask``); both run tools behind the
guardrails and approvals, and record in the store. ``Workbench`` satisfies both (mypy checks it
where it builds them); a test or another runtime can pass anything else that does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Unpack

if TYPE_CHECKING:
    from workbench.approvals import Approvals
    from workbench.config import Settings
    from workbench.guardrails import Guard
    from workbench.integrations import Tools
    from workbench.memory import Memory
    from workbench.options import AskKwargs, AskOptions
    from workbench.result import Result
    from workbench.store import Store


class ToolHost(Protocol):
    """The parts every loop that runs tools uses."""

    settings: Settings
    store: Store
    tools: Tools
    guard: Guard
    approvals: Approvals


class AgentHost(ToolHost, Protocol):
    """An agent's: one model turn on its messages, and memory."""

    memory: Memory

    def step(
        self,
        messages: list[dict[str, Any]],
        options: AskOptions | None = None,
        *,
        tools: list[dict[str, Any]] | None = None,
        check_input: str | None = None,
        trace: tuple[str, str] | None = None,
    ) -> Result: ...


class WorkflowHost(ToolHost, Protocol):
    """A workflow's: an LLM step is one call."""

    def ask(self, prompt: str, options: AskOptions | None = None, **kwargs: Unpack[AskKwargs]) -> Result: ...
