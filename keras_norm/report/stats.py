"""The statistics the report states: seed means with 95% confidence intervals, and gaps between variants.

A difference is called real only when its 95% confidence interval excludes zero.

* One variant: mean and sample standard deviation (n - 1) over seeds; the CI of the mean is Student's t,
  mean +- t(0.975, n - 1) * sd / sqrt(n).
* Two variants: Welch's interval for the difference of means, which does not assume equal variances:
  se = sqrt(sd_a^2 / n_a + sd_b^2 / n_b), with Welch-Satterthwaite degrees of freedom.
* The test set's own sampling error: an accuracy p measured on n images has a binomial standard error
  sqrt(p (1 - p) / n), the same for every seed (it is one fixed test set).
"""

import math

import numpy as np
from scipy import stats

LEVEL = 0.95


def mean_ci(values):
    """(mean, sd, (low, high)) of the mean over seeds; the interval is (nan, nan) for one value."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, float("nan"), (float("nan"), float("nan"))
    sd = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, len(v) - 1)) * sd / math.sqrt(len(v))
    return mean, sd, (mean - half, mean + half)


def welch(a, b):
    """(mean(a) - mean(b), (low, high)): Welch's 95% interval of the difference."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return diff, (float("nan"), float("nan"))
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, (diff, diff)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, df)) * se
    return diff, (diff - half, diff + half)


def contrast(pairs):
    """(difference, (low, high)): the mean over blocks of mean(a) - mean(b), for pairs [(a, b), ...] of
    samples (e.g. one pair per penalty when comparing two norms), with Welch-Satterthwaite's 95% interval:
    each block's means are independent, so the variance is sum(var(a)/n_a + var(b)/n_b) / blocks^2."""
    k = len(pairs)
    diff = float(np.mean([np.mean(a) - np.mean(b) for a, b in pairs]))
    if any(len(a) < 2 or len(b) < 2 for a, b in pairs):
        return diff, (float("nan"), float("nan"))
    terms = [(np.var(v, ddof=1) / len(v) / k ** 2, len(v) - 1) for pair in pairs for v in pair]
    var = sum(t for t, _ in terms)
    if var == 0:
        return diff, (diff, diff)
    df = var ** 2 / sum(t ** 2 / dof for t, dof in terms)
    half = float(stats.t.ppf(0.5 + LEVEL / 2, df)) * math.sqrt(var)
    return diff, (diff - half, diff + half)


def ci_or_none(values):
    """[low, high] of the mean's 95% CI, or None with fewer than 2 values (JSON has no NaN)."""
    return list(mean_ci(values)[2]) if len(values) > 1 else None


def difference_or_none(result, scale=1.0, digits=3):
    """A `welch` or `contrast` result as [difference, low, high] (times `scale`, rounded), or None when it has
    no interval (too few values; JSON has no NaN)."""
    diff, (low, high) = result
    return None if math.isnan(low) else [round(scale * v, digits) for v in (diff, low, high)]


def excludes_zero(interval):
    low, high = interval
    return bool(low > 0 or high < 0)


def binomial_se(p, n):
    """Standard error of an accuracy p measured on n images."""
    return math.sqrt(p * (1 - p) / n)
