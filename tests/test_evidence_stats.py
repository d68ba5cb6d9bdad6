"""engine.evidence.stats against scipy computed independently: t-intervals, paired differences, verdicts."""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from engine.evidence import stats

HAND_MADE = [
    [0.6706, 0.7100, 0.6300, 0.6900, 0.6520],
    [0.81, 0.79],
    [0.5, 0.5, 0.5],
    [0.721, 0.722, 0.720, 0.721, 0.7205, 0.7215, 0.7212],
]


@pytest.mark.parametrize("values", HAND_MADE)
def test_summary_matches_scipy_t_interval(values):
    summary = stats.summarize(values)
    mean = sum(values) / len(values)
    sem = scipy_stats.sem(values)
    assert summary.n == len(values)
    assert summary.mean == pytest.approx(mean)
    assert summary.sd == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)))
    assert summary.se == pytest.approx(sem, abs=1e-15)
    if sem > 0:
        low, high = scipy_stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem)
        assert summary.low == pytest.approx(low, rel=1e-10)
        assert summary.high == pytest.approx(high, rel=1e-10)
    else:
        assert summary.half_width == 0


def test_a_single_value_has_no_interval():
    summary = stats.summarize([0.7])
    assert summary.mean == 0.7 and math.isnan(summary.half_width)
    assert summary.text() == "0.7000 (n=1)"
    with pytest.raises(ValueError):
        stats.summarize([])


def test_paired_difference_matches_scipy_paired_t():
    candidate = {42: 0.80, 43: 0.78, 44: 0.83, 45: 0.79, 46: 0.81, 47: 0.9}
    baseline = {42: 0.67, 43: 0.70, 44: 0.66, 45: 0.71, 46: 0.64}
    paired = stats.paired_difference(candidate, baseline)
    assert paired.seeds == (42, 43, 44, 45, 46)
    diffs = [candidate[s] - baseline[s] for s in paired.seeds]
    low, high = scipy_stats.t.interval(0.95, 4, loc=sum(diffs) / 5, scale=scipy_stats.sem(diffs))
    assert (paired.difference.low, paired.difference.high) == (pytest.approx(low), pytest.approx(high))
    # t-test of the same paired data: the interval excludes 0 exactly when p < 0.05
    assert (
        scipy_stats.ttest_rel(
            [candidate[s] for s in paired.seeds], [baseline[s] for s in paired.seeds]
        ).pvalue
        < 0.05
    )
    assert paired.verdict == stats.ROBUST_GAIN


def test_verdicts():
    baseline = {1: 0.70, 2: 0.70, 3: 0.70}
    assert stats.paired_difference({1: 0.80, 2: 0.69, 3: 0.72}, baseline).verdict == stats.SEED_SENSITIVE
    assert stats.paired_difference({1: 0.69, 2: 0.70, 3: 0.70}, baseline).verdict == stats.NO_GAIN
    assert stats.paired_difference({1: 0.75, 2: 0.75, 3: 0.75}, baseline).verdict == stats.ROBUST_GAIN
    assert stats.paired_difference({1: 0.75}, baseline).verdict == stats.TOO_FEW
    # lower is better: a drop is the gain
    assert (
        stats.paired_difference({1: 0.5, 2: 0.49, 3: 0.51}, baseline, maximize=False).verdict
        == stats.ROBUST_GAIN
    )
    with pytest.raises(ValueError, match="share no seed"):
        stats.paired_difference({9: 0.1}, baseline)
