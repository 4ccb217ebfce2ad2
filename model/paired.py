"""Paired tests of two models' per-user figures on the same users (the per-user arrays of
`Evaluator.evaluate_per_user`).

`paired_test(a, b)` looks at the per-user differences a - b: their mean, a confidence interval of that mean
(Student's t), the two-sided paired t-test and the two-sided Wilcoxon signed-rank test (scipy.stats; zero
differences dropped, as Wilcoxon's original method). Identical arrays give a mean difference of 0, an
interval of [0, 0] and p = 1 for both tests (no evidence of any difference), where scipy would give NaN.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedResult:
    """A paired comparison of a against b.

    Attributes:
        n: users compared.
        mean_difference: mean of a - b.
        ci_low, ci_high: the `confidence` interval of that mean (t distribution, n - 1 degrees of freedom).
        t_pvalue: two-sided paired t-test.
        wilcoxon_pvalue: two-sided Wilcoxon signed-rank test (zero differences dropped).
        confidence: level of the interval.
    """

    n: int
    mean_difference: float
    ci_low: float
    ci_high: float
    t_pvalue: float
    wilcoxon_pvalue: float
    confidence: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def paired_test(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> PairedResult:
    """Paired t-test, Wilcoxon signed-rank test and confidence interval of mean(a - b).

    Args:
        a, b: (n,) per-user figures of two models on the same users, in the same order; finite, n >= 2.
        confidence: level of the interval of the mean difference.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be (n,) arrays of one shape, got {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError(f"a paired test needs at least 2 users, got {a.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("per-user figures must be finite")
    diff = a - b
    mean = float(diff.mean())
    if not diff.any():
        return PairedResult(a.size, 0.0, 0.0, 0.0, 1.0, 1.0, confidence)
    t = stats.ttest_rel(a, b)
    low, high = t.confidence_interval(confidence)
    wilcoxon = stats.wilcoxon(diff, zero_method="wilcox")
    return PairedResult(
        n=int(a.size),
        mean_difference=mean,
        ci_low=float(low),
        ci_high=float(high),
        t_pvalue=float(t.pvalue),
        wilcoxon_pvalue=float(wilcoxon.pvalue),
        confidence=confidence,
    )
