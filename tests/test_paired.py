"""Paired tests of per-user figures: no difference, a known shift, scipy's own figures."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from model.paired import paired_test


def test_no_difference_gives_p_one_and_a_zero_interval():
    a = np.array([1.0, 0.0, 1.0, 0.5, 0.0])
    result = paired_test(a, a.copy())
    assert result.mean_difference == 0.0
    assert (result.ci_low, result.ci_high) == (0.0, 0.0)
    assert result.t_pvalue == 1.0 and result.wilcoxon_pvalue == 1.0


def test_a_known_shift_is_detected_and_inside_the_interval():
    rng = np.random.default_rng(0)
    b = rng.random(2000)
    a = b + 0.05 + rng.normal(0.0, 0.2, size=b.size)
    result = paired_test(a, b)
    assert result.n == 2000
    assert result.t_pvalue < 1e-6 and result.wilcoxon_pvalue < 1e-6
    assert result.ci_low < 0.05 < result.ci_high
    assert result.ci_low < result.mean_difference < result.ci_high
    flipped = paired_test(b, a)
    assert flipped.mean_difference == pytest.approx(-result.mean_difference)
    assert flipped.t_pvalue == pytest.approx(result.t_pvalue)


def test_noise_is_not_called_a_difference():
    rng = np.random.default_rng(3)
    b = rng.random(500)
    a = b + rng.normal(0.0, 0.1, size=b.size)  # no shift
    result = paired_test(a, b)
    assert result.t_pvalue > 0.05 and result.ci_low < 0 < result.ci_high


def test_figures_match_scipy_on_a_fixed_array():
    a = np.array([0.2, 0.5, 0.9, 0.1, 0.7, 0.4, 0.8, 0.3])
    b = np.array([0.1, 0.6, 0.5, 0.1, 0.3, 0.2, 0.9, 0.0])
    result = paired_test(a, b)
    d = a - b  # 0.1, -0.1, 0.4, 0, 0.4, 0.2, -0.1, 0.3: mean 0.15
    assert result.mean_difference == pytest.approx(0.15)
    assert result.t_pvalue == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
    se = d.std(ddof=1) / np.sqrt(d.size)
    half = stats.t.ppf(0.975, d.size - 1) * se
    assert (result.ci_low, result.ci_high) == pytest.approx((0.15 - half, 0.15 + half))
    t = 0.15 / se  # the t statistic by hand
    assert result.t_pvalue == pytest.approx(2 * stats.t.sf(abs(t), d.size - 1))
    assert result.wilcoxon_pvalue == pytest.approx(stats.wilcoxon(d[d != 0]).pvalue)


def test_bad_input():
    with pytest.raises(ValueError):
        paired_test(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError):
        paired_test(np.array([1.0]), np.array([0.0]))
    with pytest.raises(ValueError):
        paired_test(np.array([1.0, np.nan]), np.array([0.0, 0.0]))
