"""The report's tables: results.json and report.md, from the grouped runs.

Headline numbers are the final-epoch test accuracy (mean over seeds with its 95% CI) and the test accuracy
at the epoch the validation split chose. Accuracies are fractions in results.json and % in report.md.
"""

import numpy as np

from keras_norm.report import stats

TARGET = 99.4  # percent: the epoch each run first reaches it is reported
BAR = 99.45  # percent: the mean final-epoch test accuracy a normalized variant must reach
BUDGET = 8000  # trainable parameters


def exact(accuracy, n):
    """An accuracy on n images is a count over n; Keras reports it in float32 (0.9948999881...), so snap
    it back to count / n: averages and the bar are then computed on the true values."""
    return round(float(accuracy) * n) / n


def final_test(runs):
    return [exact(r.series("test_accuracy")[-1], r.config["dataset"]["test_size"]) for r in runs]


def at_val_best(runs):
    return [exact(r.metrics["test_accuracy_at_val_best"], r.config["dataset"]["test_size"]) for r in runs]


def _entry(name, runs):
    first, ds = runs[0], runs[0].config["dataset"]
    _, ci = stats.bounded_ci(final_test(runs), 0.0, 1.0)
    return {
        "name": name, "norm": first.flags["norm"], "l1": first.flags["l1"], "l2": first.flags["l2"],
        "params": first.config["params"], "seeds": [r.seed for r in runs], "train_size": ds["train_size"],
        "val_size": ds.get("val_size"), "test_size": ds["test_size"], "epochs": len(first.history),
        "batch_size": first.flags["batch_size"],
        "final_test_accuracy": [round(v, 6) for v in final_test(runs)],
        "test_accuracy_at_val_best": [round(v, 6) for v in at_val_best(runs)],
        "val_best_epoch": [r.metrics["val_best_epoch"] for r in runs],
        "ci95_logit": [stats.rounded_or_none(ci[0]), stats.rounded_or_none(ci[1])],
        "final_test_xent": [round(float(r.series("test_xent")[-1]), 6) for r in runs],
        "first_epoch_at_99.4": [r.metrics.get("first_epoch_at_99.4") for r in runs],
        "epoch_seconds": [round(float(r.series("seconds").mean()), 3) for r in runs],
    }


def pairs(groups):
    """Every pair of variants, one family: the difference of mean final-epoch test accuracy with Welch's 95% CI and
    p, Holm's adjusted p over the pairs, and the verdict (real when that is below 0.05)."""
    names = list(groups)
    tests = [(a, b, stats.welch_test(final_test(groups[a]), final_test(groups[b])))
             for i, a in enumerate(names) for b in names[i + 1:]]
    adjusted = stats.holm([p for _, _, (_, _, p) in tests])
    number = stats.rounded_or_none
    return [{"a": a, "b": b, "diff": number(diff), "ci95": [number(ci[0]), number(ci[1])], "p": number(p),
             "p_holm": number(q), "real": bool(q < 1 - stats.LEVEL)}
            for (a, b, (diff, ci, p)), q in zip(tests, adjusted)]


def results(groups):
    """results.json content: one entry per variant (lists over seeds), then the pairs."""
    return {"runs": [_entry(n, rs) for n, rs in groups.items()], "pairs": pairs(groups)}


def _pm(values, scale=100.0, digits=2):
    """mean ± sample std over seeds."""
    mean, sd, _ = stats.mean_ci(np.asarray(values, dtype=float) * scale)
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"


def _ci(values):
    _, (low, high) = stats.bounded_ci(np.asarray(values) * 100)
    return f"{low:.3f}–{high:.3f}"


def _summary_row(name, runs):
    f = runs[0].flags
    weights = [r.metrics.get("weights") or {} for r in runs]
    penalty = [float(r.series("loss")[-1] - r.series("xent")[-1]) for r in runs]
    hits = ", ".join("—" if r.metrics.get("first_epoch_at_99.4") is None else str(r.metrics["first_epoch_at_99.4"])
                     for r in runs)
    return (f"| {name} | {f['norm']} | {f['l1']:g} | {f['l2']:g} | {runs[0].config['params']:,} | {len(runs)} | "
            f"{_pm(final_test(runs), digits=3)} | {_ci(final_test(runs))} | {_pm(at_val_best(runs), digits=3)} | "
            f"{_pm([r.series('test_xent')[-1] for r in runs], 1, 4)} | {_pm(penalty, 1, 4)} | {hits} | "
            f"{_pm([w['near_zero_fraction'] for w in weights], 100, 1)}% | "
            f"{_pm([w['mean_abs_weight'] for w in weights], 1, 3)} | {_pm([r.series('seconds').mean() for r in runs], 1, 1)} |")


def summary_table(groups):
    return ["| variant | norm | L1 | L2 | params | seeds | final-epoch test acc. (%) | 95% CI of the mean (logit t) | "
            "test acc. at the validation-best epoch (%) | final test data loss | L1/L2 penalty (final) | "
            "first epoch ≥ 99.4% test | near-zero weights (abs(w) < 1e-3) | mean abs(w) | s/epoch |",
            "|---" * 15 + "|"] + [_summary_row(n, rs) for n, rs in groups.items()]


def pair_table(groups):
    """The pairs with their verdict: real when Holm's adjusted p over the pairs is below 0.05."""
    lines = ["| A | B | mean A − mean B (pp) | 95% CI (Welch) | p | p (Holm, all pairs) | verdict |",
             "|---|---|---|---|---|---|---|"]
    for p in pairs(groups):
        if p["p"] is None:
            lines.append(f"| {p['a']} | {p['b']} | {100 * p['diff']:+.3f} | — | — | — | too few seeds |")
            continue
        verdict = "real" if p["real"] else "not distinguishable"
        lines.append(f"| {p['a']} | {p['b']} | {100 * p['diff']:+.3f} | "
                     f"{100 * p['ci95'][0]:+.3f} to {100 * p['ci95'][1]:+.3f} | {p['p']:.4f} | {p['p_holm']:.4f} | "
                     f"{verdict} |")
    return lines


def bar_lines(groups):
    lines = [f"Bar: mean final-epoch test accuracy ≥ {BAR:.2f}% with < {BUDGET:,} parameters (normalized variants):",
             ""]
    for name, runs in groups.items():
        if runs[0].flags["norm"] == "none":
            continue
        mean = 100 * float(np.mean(final_test(runs)))
        ok = round(mean, 6) >= BAR and runs[0].config["params"] < BUDGET  # the mean of counts, not float noise
        lines.append(f"- {name}: {mean:.3f}% over {len(runs)} seeds, {runs[0].config['params']:,} params: "
                     f"{'meets the bar' if ok else 'misses the bar'}")
    return lines


def per_seed_lines(groups):
    lines = ["Per seed (final-epoch test accuracy / test accuracy at the validation-best epoch (that epoch), %):", ""]
    for name, runs in groups.items():
        per = ", ".join(f"seed {r.seed}: {100 * r.series('test_accuracy')[-1]:.2f} / "
                        f"{100 * r.metrics['test_accuracy_at_val_best']:.2f} ({r.metrics['val_best_epoch']})"
                        for r in runs)
        lines.append(f"- {name}: {per}")
    return lines


def noise_lines(groups):
    """The test set's own sampling error, next to the seed-to-seed spread."""
    runs = [r for rs in groups.values() for r in rs]
    p, n = float(np.mean(final_test(runs))), runs[0].config["dataset"]["test_size"]
    return [f"Test-set sampling error: an accuracy of {100 * p:.2f}% measured on {n:,} images has a binomial "
            f"standard error of {100 * stats.binomial_se(p, n):.3f} pp. It is the same for every run (one fixed "
            "test set), so it does not enter the seed CIs above, but it bounds how far these numbers carry over "
            "to new digits."]


def mistake_lines(groups):
    """Test images that every variant's final model (lowest seed) gets wrong, and those only one gets wrong."""
    wrong = {n: {i["index"] for i in rs[0].mistakes["images"]} for n, rs in groups.items() if rs[0].mistakes}
    if len(wrong) < 2:
        return []
    common = set.intersection(*wrong.values())
    lines = [f"Shared mistakes (final models of seed {min(rs[0].seed for rs in groups.values())}): "
             f"{len(common)} test images are wrong for every variant"
             + (f" ({', '.join(f'#{i}' for i in sorted(common))})" if common else "") + ".", "",
             "| variant | test errors | wrong only for this variant |", "|---|---|---|"]
    for name, indices in wrong.items():
        others = set().union(*(v for n, v in wrong.items() if n != name))
        lines.append(f"| {name} | {len(indices)} | {len(indices - others)} |")
    return lines


def report_markdown(groups, failed, suite, description):
    """report.md: the summary, the pairs, the bar, noise, shared mistakes, per-seed numbers, failures, wall time."""
    lines = ["# Results", "", f"Data: {description}. Mean ± sample std over seeds; the validation split chose "
             "each run's best epoch, the test set only reports. Data loss = cross-entropy without the L1/L2 "
             "penalty.", ""]
    rule = ("The pairs are one family under Holm's rule: a difference is real when its Holm-adjusted p (Welch's test) "
            "is below 0.05:")
    lines += summary_table(groups) + ["", rule, ""]
    lines += pair_table(groups) + [""] + bar_lines(groups) + [""] + noise_lines(groups)
    shared = mistake_lines(groups)
    lines += ([""] + shared if shared else []) + [""] + per_seed_lines(groups)
    if failed:
        lines += ["", "## Failed runs", ""]
        lines += [f"- {r.name} seed {r.seed}: {r.metrics.get('reason', r.status)}" for r in failed]
    if suite:
        lines += ["", f"Suite `{suite['suite']}`: wall time {suite['wall_seconds'] / 60:.1f} min with "
                  f"{suite['parallel_jobs']} parallel training processes ({suite['trained_now']} runs trained "
                  "in that invocation)."]
    return "\n".join(lines) + "\n"
