"""ipywidgets views: the context plan, the memory inspector, approval cards, rating buttons."""

from workbench.jupyter.widgets.approval import ApprovalCard, approval_card
from workbench.jupyter.widgets.context import context_view
from workbench.jupyter.widgets.memory import MemoryInspector
from workbench.jupyter.widgets.rating import RatingBar, rating_bar

__all__ = ["ApprovalCard", "MemoryInspector", "RatingBar", "approval_card", "context_view", "rating_bar"]
