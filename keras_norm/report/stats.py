"""The statistics the report states: seed means with 95% confidence intervals, and gaps between variants.

A single difference is called real when its 95% confidence interval excludes zero. Where a finding rests on a
family of differences (every pair of norms, every batch size), the rule is Holm's: the family's p-values are
adjusted by Holm's step-down method (`holm`), and a difference is real when its adjusted p-value is below
0.05, which bounds the chance of calling anything in the family real by accident at 5%.

* One variant: mean and sample standard deviation (n - 1) over seeds; the CI of the mean is Student's t,
  mean +- t(0.975, n - 1) * sd / sqrt(n).
* Two variants: Welch's interval for the difference of means, which does not assume equal variances:
  se = sqrt(sd_a^2 / n_a + sd_b^2 / n_b), with Welch-Satterthwaite degrees of freedom.
* Accuracies and error rates in percent: `bounded_ci`, Student's t on the logit scale, transformed back, so the
  interval stays inside [0, 100] (bimodal or near-boundary seeds no longer give a "CI 43-109").
* A paired design (one model evaluated two ways, e.g. BN with moving and with batch statistics): `paired`, the
  t interval of the per-seed differences (SciPy's `ttest_rel`).
* The test set's own sampling error: an accuracy p measured on n images has a binomial standard error
  sqrt(p (1 - p) / n), the same for every seed (it is one fixed test set).
"""

import math
import warnings

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
    if len(a) < 2 or len(b) < 2:  # an empty cell (a run still missing) has no mean either
        diff = float(a.mean() - b.mean()) if len(a) and len(b) else float("nan")
        return diff, (float("nan"), float("nan"))
    diff = float(a.mean() - b.mean())
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
    diff, (low, high), _ = contrast_test(pairs)
    return diff, (low, high)


def contrast_test(pairs):
    """(difference, (low, high), p): `contrast` with its two-sided p-value, t = difference / se on the same
    Welch-Satterthwaite degrees of freedom (one block: Welch's test, SciPy's `ttest_ind(equal_var=False)`).
    With no spread at all, the interval is the difference itself and p is 0 or 1."""
    k = len(pairs)
    diff = float(np.mean([np.mean(a) - np.mean(b) for a, b in pairs]))
    if any(len(a) < 2 or len(b) < 2 for a, b in pairs):
        return diff, (float("nan"), float("nan")), float("nan")
    terms = [(np.var(v, ddof=1) / len(v) / k ** 2, len(v) - 1) for pair in pairs for v in pair]
    var = sum(t for t, _ in terms)
    if var == 0:
        return diff, (diff, diff), float(diff == 0)
    df = var ** 2 / sum(t ** 2 / dof for t, dof in terms)
    half = float(stats.t.ppf(0.5 + LEVEL / 2, df)) * math.sqrt(var)
    return diff, (diff - half, diff + half), float(2 * stats.t.sf(abs(diff) / math.sqrt(var), df))


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


def welch_test(a, b):
    """(mean(a) - mean(b), (low, high), p): Welch's 95% interval and two-sided p-value (SciPy's `ttest_ind` with
    unequal variances). With no spread at all, the interval is the difference itself and p is 0 or 1."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff, interval = welch(a, b)
    if math.isnan(interval[0]) or interval[0] == interval[1]:
        return diff, interval, float("nan") if math.isnan(interval[0]) else float(diff == 0)
    with warnings.catch_warnings():  # one side's seeds all equal (a zero-width cell): SciPy warns of round-off
        warnings.simplefilter("ignore", RuntimeWarning)
        return diff, interval, float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def paired(a, b):
    """(mean(a - b), (low, high), p) over paired values (the same seed's model measured two ways): Student's t
    on the differences (SciPy's `ttest_rel`)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = a - b
    diff = float(d.mean())
    if len(d) < 2:
        return diff, (float("nan"), float("nan")), float("nan")
    if np.all(d == d[0]):
        return diff, (diff, diff), float(diff == 0)
    result = stats.ttest_rel(a, b)
    ci = result.confidence_interval(LEVEL)
    return diff, (float(ci.low), float(ci.high)), float(result.pvalue)


def holm(pvalues):
    """Holm's step-down adjusted p-values, in the given order (NaN stays NaN and is not counted)."""
    p = np.asarray(pvalues, dtype=float)
    ok = np.flatnonzero(~np.isnan(p))
    out = np.full(len(p), np.nan)
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (len(ok) - rank) * p[i]))
        out[i] = running
    return out.tolist()


def real_by_holm(pvalues, alpha=1 - LEVEL):
    """For each p-value of one family: whether it is real under Holm's rule at family-wise level `alpha`."""
    return [bool(q < alpha) for q in holm(pvalues)]


def family(name, pairs, paired=False):
    """One comparison made at each key of `pairs` ({key: (a, b)}, e.g. one per batch size), as one family: per key
    the difference, its 95% interval, p (Welch's or the paired t), Holm's adjusted p over the keys and the verdict
    (real when p_holm < 0.05). A key with too few values for a test has null numbers."""
    test = paired_or_nan if paired else welch_test
    return {"name": name, "test": "paired t" if paired else "Welch",
            "by_batch": holm_rows({str(key): test(a, b) for key, (a, b) in pairs.items()})}


def holm_rows(tests, scale=1.0, digits=4):
    """{key: (difference, (low, high), p)} of one family -> {key: {"difference_pp", "ci95_pp", "p", "p_holm",
    "real"}}: the differences times `scale` (100: fractions to percentage points), Holm's rule over the family."""
    adjusted = holm([p for _, _, p in tests.values()])
    pp = lambda v: rounded_or_none(scale * v, digits)  # noqa: E731
    return {key: {"difference_pp": pp(d), "ci95_pp": [pp(lo), pp(hi)], "p": rounded_or_none(p),
                  "p_holm": rounded_or_none(q), "real": bool(q < 1 - LEVEL)}
            for (key, (d, (lo, hi), p)), q in zip(tests.items(), adjusted)}


def rounded_or_none(value, digits=6):
    """A statistic rounded for a JSON file, or None where it could not be computed (NaN; JSON has no NaN)."""
    return None if math.isnan(value) else round(float(value), digits)


def paired_or_nan(a, b):
    """`paired`, or NaNs where the two sides do not pair up (a missing seed)."""
    if len(a) != len(b) or not len(a):
        return float("nan"), (float("nan"), float("nan")), float("nan")
    return paired(a, b)


def bounded_ci(values, low=0.0, high=100.0):
    """(mean, (low, high)): the mean of values bounded by [low, high] (accuracies or error rates in percent) with a
    95% interval that stays inside the bounds: Student's t on the logit of the rescaled values, transformed back.
    (nan, nan) for one value; identical values give a zero-width interval."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, (float("nan"), float("nan"))
    if np.all(v == v[0]):
        return mean, (mean, mean)
    eps = 1e-6  # keeps a seed at exactly 0% or 100% finite on the logit scale
    u = np.clip((v - low) / (high - low), eps, 1 - eps)
    z = np.log(u / (1 - u))
    lo, hi = stats.t.interval(LEVEL, len(z) - 1, loc=z.mean(), scale=z.std(ddof=1) / math.sqrt(len(z)))
    back = lambda t: low + (high - low) / (1 + math.exp(-t))  # noqa: E731
    return mean, (back(lo), back(hi))
