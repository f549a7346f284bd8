"""The regression gate: a run against a baseline, per scorer, with a bootstrap confidence interval.

Scores are paired by case. Each bootstrap round resamples the cases and, within each case,
its repeats (both runs'), so the interval covers a judge that answers differently on a
re-run as well as which cases happened to be in the dataset. The verdict is *regressed*
only when the whole interval is below zero (and the drop is over ``min_effect``), *improved*
only when it is all above, and *unchanged* otherwise: noise that straddles a threshold does
not flip the gate. The seed is fixed, so the same two runs always get the same verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

GATE_COLUMNS = ["scorer", "cases", "baseline", "candidate", "delta", "ci_low", "ci_high", "verdict"]


def _matrix(df: pd.DataFrame, cases: list[str]) -> np.ndarray:
    """Scores as a cases x repeats matrix (NaN where a repeat is missing)."""
    table = df.pivot_table(index="case_id", columns="repeat", values="score", aggfunc="mean")
    return table.reindex(cases).to_numpy(dtype=float)


def compare(
    baseline: pd.DataFrame,
    candidate: pd.DataFrame,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    min_effect: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Per scorer: baseline and candidate means over shared cases, the delta, its interval and a verdict."""
    import numpy as np
    import pandas as pd

    rows = []
    for scorer in sorted(set(baseline["scorer"]) & set(candidate["scorer"])):
        b_all, c_all = baseline[baseline["scorer"] == scorer], candidate[candidate["scorer"] == scorer]
        cases = sorted(set(b_all["case_id"]) & set(c_all["case_id"]))
        if not cases:
            continue
        b, c = _matrix(b_all, cases), _matrix(c_all, cases)
        b_case, c_case = np.nanmean(b, axis=1), np.nanmean(c, axis=1)
        delta = float(np.mean(c_case) - np.mean(b_case))
        rng = np.random.default_rng(seed)
        n = len(cases)
        pick = rng.integers(0, n, size=(n_boot, n))
        deltas = np.nanmean(_resampled(c, pick, rng), axis=(1, 2)) - np.nanmean(_resampled(b, pick, rng), axis=(1, 2))
        low, high = np.percentile(deltas, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
        if high < 0 and -delta > min_effect:
            verdict = "regressed"
        elif low > 0 and delta > min_effect:
            verdict = "improved"
        else:
            verdict = "unchanged"
        rows.append(
            {
                "scorer": scorer,
                "cases": n,
                "baseline": float(np.mean(b_case)),
                "candidate": float(np.mean(c_case)),
                "delta": delta,
                "ci_low": float(low),
                "ci_high": float(high),
                "verdict": verdict,
            }
        )
    return pd.DataFrame(rows, columns=GATE_COLUMNS)


def _resampled(matrix: np.ndarray, pick: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each round, the picked cases' rows with their repeats resampled: (rounds, cases, repeats)."""
    import numpy as np

    m = np.asarray(matrix)
    repeats = m.shape[1]
    rows = m[pick]  # (rounds, cases, repeats)
    if repeats == 1:
        return rows
    within = rng.integers(0, repeats, size=rows.shape)
    return np.take_along_axis(rows, within, axis=2)


def interval(scores: pd.DataFrame, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """A bootstrap interval of one run's mean score (cases and repeats resampled), for error bars."""
    import numpy as np

    cases = sorted(set(scores["case_id"]))
    if not cases:
        return (float("nan"), float("nan"))
    m = _matrix(scores, cases)
    rng = np.random.default_rng(seed)
    means = np.nanmean(_resampled(m, rng.integers(0, len(cases), size=(n_boot, len(cases))), rng), axis=(1, 2))
    low, high = np.percentile(means, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(low), float(high)
