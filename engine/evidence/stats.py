"""Small-sample statistics for seed repeats: mean, sd, se, Student-t intervals, paired differences.

Student's t quantile is scipy's; what this module owns is the summary and the verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95


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
    from scipy.stats import t as student_t  # here, not at the top: scipy.stats costs every `afr` ~1 s

    return Summary(n, mean, sd, se, float(student_t.ppf(0.5 + confidence / 2.0, n - 1)) * se)


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
