"""Factor 8, cost control: pricing, the ledger, budgets and the kill switch."""

from workbench.cost.budgets import Attribution, Budgets, BudgetWarning
from workbench.cost.ledger import Costs
from workbench.cost.pricing import Pricing

__all__ = ["Attribution", "BudgetWarning", "Budgets", "Costs", "Pricing"]
