"""The report's tables: results.json and report.md, from the grouped runs."""

import numpy as np

TARGET = 99.4  # percent


def results(groups):
    """results.json content: one entry per run name, lists over seeds."""
    out = []
    for name, runs in groups.items():
        first = runs[0]
        out.append({
            "name": name,
            "norm": first.flags["norm"],
            "l1": first.flags["l1"],
            "l2": first.flags["l2"],
            "params": first.config["params"],
            "dataset": first.config["dataset"]["name"],
            "train_size": first.config["dataset"]["train_size"],
            "test_size": first.config["dataset"]["test_size"],
            "epochs": len(first.history),
            "batch_size": first.flags["batch_size"],
            "seeds": [r.seed for r in runs],
            "final_test_accuracy": [round(float(r.series("val_accuracy")[-1]), 6) for r in runs],
            "best_test_accuracy": [round(float(r.series("val_accuracy").max()), 6) for r in runs],
            "min_test_loss": [round(float(r.series("val_loss").min()), 6) for r in runs],
            "epoch_seconds": [round(float(r.series("seconds").mean()), 3) for r in runs],
        })
    return {"runs": out}


def _pm(values, scale=100.0, digits=2):
    v = np.asarray(values) * scale
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}" if len(v) > 1 else f"{v[0]:.{digits}f}"


def _final(runs):
    return np.array([100 * r.series("val_accuracy")[-1] for r in runs])


def _summary_row(name, runs):
    f = runs[0].flags
    first_hits = [r.metrics.get("first_epoch_at_99.4") for r in runs]
    weights = [r.metrics.get("weights") or {} for r in runs]
    near_zero = [w.get("near_zero_fraction") for w in weights]
    mean_abs = [w.get("mean_abs_weight") for w in weights]
    near_zero = _pm(near_zero, 100, 1) + "%" if None not in near_zero else "n/a"
    mean_abs = _pm(mean_abs, 1, 3) if None not in mean_abs else "n/a"
    return (f"| {name} | {f['norm']} | {f['l1']:g} | {f['l2']:g} | {runs[0].config['params']:,} | "
            f"{', '.join(str(r.seed) for r in runs)} | "
            f"{_pm([r.series('val_accuracy')[-1] for r in runs], digits=3)} | "
            f"{_pm([r.series('val_accuracy').max() for r in runs], digits=3)} | "
            f"{_pm([r.series('val_loss').min() for r in runs], 1, 4)} | "
            f"{', '.join('—' if h is None else str(h) for h in first_hits)} | {near_zero} | {mean_abs} | "
            f"{_pm([r.series('seconds').mean() for r in runs], 1, 1)} | {runs[0].config['dataset']['name']} |")


def summary_table(groups):
    return ["| run | norm | l1 | l2 | params | seeds | final-epoch test acc | best-epoch test acc | "
            "min test loss | first epoch ≥ 99.4% | near-zero weights (abs < 1e-3) | mean abs weight | s/epoch | dataset |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"] + [_summary_row(n, rs) for n, rs in groups.items()]


def bar_lines(groups):
    lines = [f"Bar: final-epoch test accuracy ≥ {TARGET:.2f}% as the seed mean, < 8,000 parameters:", ""]
    for name, runs in groups.items():
        mean = float(np.mean(_final(runs)))
        ok = mean >= TARGET and runs[0].config["params"] < 8000
        lines.append(f"- {name}: {mean:.3f}%, {runs[0].config['params']:,} params: "
                     f"{'meets the bar' if ok else 'misses the bar'}")
    return lines


def per_seed_lines(groups):
    lines = ["Per seed (final-epoch / best-epoch test accuracy, %):", ""]
    for name, runs in groups.items():
        per = ", ".join(f"seed {r.seed}: {100 * r.series('val_accuracy')[-1]:.2f} / "
                        f"{100 * r.series('val_accuracy').max():.2f}" for r in runs)
        lines.append(f"- {name}: {per}")
    return lines


def gap_table(groups):
    """Pairwise gaps of the mean final-epoch test accuracy, for names with several seeds."""
    multi = {n: rs for n, rs in groups.items() if len(rs) > 1}
    if len(multi) < 2:
        return []
    lines = ["Gaps between runs (final-epoch test accuracy, percentage points). A gap counts as "
             "real only if the two seed ranges (min–max) do not overlap:", "",
             "| run A | run B | mean A − mean B | range A | range B | ranges overlap? |", "|---|---|---|---|---|---|"]
    names = list(multi)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            va, vb = _final(multi[a]), _final(multi[b])
            overlap = va.min() <= vb.max() and vb.min() <= va.max()
            lines.append(f"| {a} | {b} | {va.mean() - vb.mean():+.2f} | {va.min():.2f}–{va.max():.2f} | "
                         f"{vb.min():.2f}–{vb.max():.2f} | {'yes: within noise' if overlap else 'no: a real gap'} |")
    return lines


def report_markdown(groups, failed, suite, description):
    """report.md: the summary table, the bar, per-seed numbers, gaps, failed runs, the suite's wall time."""
    lines = ["# Results", "", f"Data: {description}. Mean ± std over seeds (population std); "
             "accuracies in %, measured on the test set after every epoch.", ""]
    lines += summary_table(groups) + [""] + bar_lines(groups) + [""] + per_seed_lines(groups)
    gaps = gap_table(groups)
    lines += [""] + gaps if gaps else []
    if failed:
        lines += ["", "## Failed runs", ""]
        lines += [f"- {r.name} seed {r.seed}: {r.metrics.get('reason', r.status)}" for r in failed]
    if suite:
        lines += ["", f"Suite `{suite['suite']}`: wall time {suite['wall_seconds'] / 60:.1f} min with "
                  f"{suite['parallel_jobs']} parallel training processes ({suite['trained_now']} runs trained "
                  "in that invocation)."]
    return "\n".join(lines) + "\n"
