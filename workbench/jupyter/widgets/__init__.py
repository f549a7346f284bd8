"""ipywidgets views: the context plan and the long-term memory inspector."""

from workbench.jupyter.widgets.approval import ApprovalCard, approval_card
from workbench.jupyter.widgets.context import context_view
from workbench.jupyter.widgets.memory import MemoryInspector

__all__ = ["ApprovalCard", "MemoryInspector", "approval_card", "context_view"]
