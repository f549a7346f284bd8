"""Factor 8, cost control: pricing of every call."""

from workbench.cost.pricing import Pricing

__all__ = ["Pricing"]
