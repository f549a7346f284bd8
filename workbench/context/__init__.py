"""Factor 2, context management: composing what a call sends."""

from workbench.context.compose import Composer, format_context
from workbench.context.template import fill

__all__ = ["Composer", "fill", "format_context"]
