"""Factor 9b, evaluation: suites of cases and scorers, runs over models and contexts, the regression gate."""

from workbench.evals.gate import compare
from workbench.evals.run import EvalReport, Evals
from workbench.evals.scorers import Score, ScoreContext, register_scorer
from workbench.evals.suite import Suite, load_suite

__all__ = [
    "EvalReport",
    "Evals",
    "Score",
    "ScoreContext",
    "Suite",
    "compare",
    "load_suite",
    "register_scorer",
]
