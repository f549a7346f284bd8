"""Factor 2, context: specs, the composer and token budgeter, document retrieval, prompt templates."""

from workbench.context.budget import Block, ContextOverflow, ContextPlan, Item, fit
from workbench.context.compose import Composer, ContextArg, format_context
from workbench.context.docs import Chunk, Docs
from workbench.context.spec import ContextSpec, SourceSpec, load_spec
from workbench.context.template import fill

__all__ = [
    "Block",
    "Chunk",
    "Composer",
    "ContextArg",
    "ContextOverflow",
    "ContextPlan",
    "ContextSpec",
    "Docs",
    "Item",
    "SourceSpec",
    "fill",
    "fit",
    "format_context",
    "load_spec",
]
