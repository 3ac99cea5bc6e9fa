"""Variants compared over seeds: per-seed test accuracy, intervals that stay in [0, 100], pairwise tests with
Holm's rule, and a figure with every seed drawn (the suites `fair` and `groups` use it)."""

import numpy as np

from keras_norm.plotting import plt
from keras_norm.report import stats, tables
from keras_norm.report.plots import save_figure


def test_accuracy_pct(results):
    """Final-epoch test accuracy (%) of each run, from the exact count."""
    return [round(100 * tables.exact(r["final_test_accuracy"], r["dataset"]["test_size"]), 4) for r in results]


def summary(accuracy):
    """{variant: mean, sd, the 95% interval on the logit scale (inside [0, 100]), seeds at or above 99.4%}."""
    out = {}
    for name, values in accuracy.items():
        mean, (low, high) = stats.bounded_ci(values)
        out[name] = {"mean": round(mean, 4), "sd": round(float(np.std(values, ddof=1)), 4) if len(values) > 1
                     else None, "ci95_logit": None if np.isnan(low) else [round(low, 4), round(high, 4)],
                     "seeds_at_or_above_99.4": int(sum(v >= 99.4 for v in values))}
    return out


def comparisons(accuracy, pairs):
    """One family of differences a - b (pp): Welch's 95% interval and p, Holm's adjusted p, and the verdict."""
    tests = [stats.welch_test(accuracy[a], accuracy[b]) for a, b in pairs]
    adjusted = stats.holm([p for _, _, p in tests])
    return [{"a": a, "b": b, "difference_pp": round(diff, 4), "ci95_pp": [round(low, 4), round(high, 4)],
             "p": round(p, 6), "p_holm": round(q, 6), "real": bool(q < 1 - stats.LEVEL)}
            for (a, b), (diff, (low, high), p), q in zip(pairs, tests, adjusted)]


def all_pairs(names):
    names = list(names)
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]


def plot(accuracy, summaries, labels, title, path):
    """Per-seed test accuracy of each variant (dots), the mean (bar) and its 95% interval (line)."""
    fig, ax = plt.subplots(figsize=(max(6.4, 1.3 * len(accuracy)), 4.2))
    rng = np.random.default_rng(0)  # horizontal jitter only, so that equal seeds do not hide each other
    for i, (name, values) in enumerate(accuracy.items()):
        s = summaries[name]
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=16, alpha=0.6, color=f"C{i}")
        ax.hlines(s["mean"], i - 0.25, i + 0.25, color=f"C{i}", lw=2)
        if s["ci95_logit"]:
            ax.vlines(i + 0.3, *s["ci95_logit"], color=f"C{i}", lw=2)
    ax.set_xticks(range(len(accuracy)), [labels.get(n, n) for n in accuracy])
    ax.set_ylabel("final-epoch test accuracy (%)")
    ax.set_title(title + "\ndots: seeds; bar: mean; line: 95% interval (t on the logit scale)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)
