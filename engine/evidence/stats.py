"""Small-sample statistics for seed repeats: mean, sd, se, Student-t intervals, paired differences.

Pure Python (no scipy at run time): Student's t quantile comes from its CDF, written with
the regularised incomplete beta function (continued fraction), inverted by bisection.
The tests check every number against scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95


def _incomplete_beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz method)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return result


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularised incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _incomplete_beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _incomplete_beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, not {df}")
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom, e.g. t(0.975, 4) = 2.776."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability must be between 0 and 1, not {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-13 * max(1.0, high):
            break
    return (low + high) / 2.0


@dataclass(frozen=True)
class Summary:
    """Mean of ``n`` scores with its sample sd, standard error and t-interval half-width."""

    n: int
    mean: float
    sd: float  # sample standard deviation (n - 1); nan for n < 2
    se: float
    half_width: float  # t(0.975, n-1) * se; nan for n < 2

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def text(self, digits: int = 4) -> str:
        if self.n < 2:
            return f"{self.mean:.{digits}f} (n={self.n})"
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """Mean, sd, se and the two-sided ``confidence`` t-interval half-width of ``values``."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError("no values to summarise")
    mean = math.fsum(values) / n
    if n < 2:
        return Summary(n, mean, math.nan, math.nan, math.nan)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    se = sd / math.sqrt(n)
    return Summary(n, mean, sd, se, t_quantile(0.5 + confidence / 2.0, n - 1) * se)


ROBUST_GAIN = "robust gain"
SEED_SENSITIVE = "seed-sensitive"
NO_GAIN = "no gain"
TOO_FEW = "too few seeds"


@dataclass(frozen=True)
class Paired:
    """Candidate minus baseline over the seeds both ran, with its interval and verdict."""

    seeds: tuple[int, ...]
    difference: Summary
    verdict: str


def paired_difference(
    candidate: dict[int, float], baseline: dict[int, float], maximize: bool = True
) -> Paired:
    """Per matched seed ``candidate - baseline`` (sign-flipped when lower is better).

    Verdict: a *robust gain* when the 95% interval of the mean difference lies above zero,
    *seed-sensitive* when the mean gains but the interval reaches zero, else *no gain*.
    """
    seeds = tuple(sorted(set(candidate) & set(baseline)))
    if not seeds:
        raise ValueError("the candidate and the baseline share no seed")
    sign = 1.0 if maximize else -1.0
    difference = summarize([sign * (candidate[s] - baseline[s]) for s in seeds])
    if difference.n < 2:
        verdict = TOO_FEW
    elif difference.mean > 0 and (difference.low > 0 or difference.sd == 0):
        verdict = ROBUST_GAIN
    elif difference.mean > 0:
        verdict = SEED_SENSITIVE
    else:
        verdict = NO_GAIN
    return Paired(seeds, difference, verdict)
