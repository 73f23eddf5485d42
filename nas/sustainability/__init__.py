"""What the search itself costs: codecarbon tracking per phase, and budgets that stop it."""

from nas.sustainability._tracker import BudgetExceeded, Budgets, PhaseTotals, SearchTracker, method_of

__all__ = [
    "BudgetExceeded",
    "Budgets",
    "PhaseTotals",
    "SearchTracker",
    "method_of",
]
