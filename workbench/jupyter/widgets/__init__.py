"""ipywidgets views: the context plan and the long-term memory inspector."""

from workbench.jupyter.widgets.context import context_view
from workbench.jupyter.widgets.memory import MemoryInspector

__all__ = ["MemoryInspector", "context_view"]
