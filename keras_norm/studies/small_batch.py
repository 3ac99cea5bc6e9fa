"""Small batches and their remedies (`--suite=small_batch`): BN, BN with batch renormalization (Ioffe 2017),
GN, GN with weight-standardized convolutions (Qiao et al. 2019) and LN at batch 2, 4, 8, 16 and 64.

The batch sweep's protocol (keras_norm/studies/batch_sweep.py): no penalty, 5 epochs on the full training
split, the peak learning rate lr·sqrt(B/64) (the rule that sweep chose on validation), op determinism; its runs
of bn, gn and ln are these cells' runs and are found, not trained again. Cells go seed by seed and, within a
seed, smallest batch first: the small batches are where the norms differ, so a stopped suite has them.

BN models are evaluated as deployed (moving statistics) and with each test batch's own statistics at the batch
size they trained with; the two are the same model measured two ways, so they are compared paired over seeds.
Differences per batch size (pp of test error): BN - GN, BN - LN, renorm - BN, GN+WS - GN (Welch), and BN's batch
statistics - moving statistics (paired). Each comparison across the batch sizes is one family under Holm's rule.
Writes `artifacts/small_batch.json` and `artifacts/small_batch.png`.
"""

import os
import time

import numpy as np

from keras_norm import data, fileio, parallel, studies
from keras_norm.plotting import plt
from keras_norm.report import stats
from keras_norm.report.plots import save_figure
from keras_norm.studies import batch_sweep

BATCH_SIZES = (2, 4, 8, 16, 64)
SEEDS = (0, 1, 2, 3, 4)
EPOCHS = 5
RULE = "sqrt"
VARIANTS = {"bn": dict(norm="bn"), "bn_renorm": dict(norm="bn", renorm=True), "gn": dict(norm="gn"),
            "gn_ws": dict(norm="gn", weight_standardization=True), "ln": dict(norm="ln")}
DIFFERENCES = (("bn", "gn"), ("bn", "ln"), ("bn_renorm", "bn"), ("gn_ws", "gn"))
LABELS = {"bn": "BN (moving statistics)", "bn_renorm": "BN + batch renorm", "gn": "GN (4 groups)",
          "gn_ws": "GN + weight standardization", "ln": "LN"}


def cell(base, variant, batch, seed, epochs=EPOCHS):
    """One run: the batch sweep's cell (the same run, for bn, gn and ln) with the variant's settings."""
    settings = VARIANTS[variant]
    config = batch_sweep.cell(base, settings["norm"], batch, seed, epochs, RULE)
    return config.replace(run_name=f"{variant}_bs{batch}_{RULE}_seed-{seed}", **settings)


def configs(base, names, batch_sizes, seeds, epochs=EPOCHS):
    return [(v, b, s, cell(base, v, b, s, epochs)) for s in seeds for b in sorted(batch_sizes) for v in names]


def per_cell(todo, results, test_set):
    """{"test_error": {variant: {batch: [per seed]}}, "batch_statistics_test_error": {bn variants: ...}} (%)."""
    error, batch_stats = {}, {}
    for (variant, batch, _, _), result in zip(todo, results):
        error.setdefault(variant, {}).setdefault(batch, []).append(round(100 * (1 - result["final_test_accuracy"]), 3))
        if VARIANTS[variant]["norm"] == "bn":
            batch_stats.setdefault(variant, {}).setdefault(batch, []).append(
                batch_sweep.bn_batch_error(result, batch, test_set))
    return error, batch_stats


def family(name, a_rows, b_rows, batch_sizes, paired=False):
    """One comparison at every batch size, Holm's rule over them (report/stats.py, `family`)."""
    return stats.family(name, {b: (a_rows[b], b_rows[b]) for b in batch_sizes}, paired)


def summarize(error, batch_stats, batch_sizes, seeds, epochs=EPOCHS):
    bounded = {v: {str(b): [round(x, 4) for x in stats.bounded_ci(rows[b])[1]] for b in batch_sizes}
               for v, rows in error.items()}
    differences = [family(f"{a} - {b}", error[a], error[b], batch_sizes) for a, b in DIFFERENCES
                   if a in error and b in error]
    differences += [family(f"{v} batch statistics - moving statistics", batch_stats[v], error[v], batch_sizes,
                           paired=True) for v in batch_stats]
    return {"batch_sizes": list(batch_sizes), "seeds": list(seeds), "epochs": epochs, "penalty": "none",
            "peak_lr": {str(b): round(batch_sweep.REFERENCE[1] * batch_sweep.RULES[RULE](b), 6) for b in batch_sizes},
            "test_error": {v: {str(b): rows[b] for b in batch_sizes} for v, rows in error.items()},
            "test_error_ci95_logit": bounded,
            "batch_statistics_test_error": {v: {str(b): rows[b] for b in batch_sizes} for v, rows in batch_stats.items()},
            "differences": differences,
            "rule": "per comparison, the batch sizes are one family: Holm's step-down adjustment; real when "
                    "p_holm < 0.05"}


def plot(result, path):
    sizes = result["batch_sizes"]
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (variant, rows) in enumerate(result["test_error"].items()):
        means = [np.mean(rows[str(b)]) for b in sizes]
        ci = np.array([result["test_error_ci95_logit"][variant][str(b)] for b in sizes]).T
        offset = 1 + 0.04 * (i - 2)  # side by side on the log axis, so the intervals do not hide each other
        xs = [b * offset for b in sizes]
        # The interval is Student's t on the logit scale: with one outlying seed the mean can lie outside it.
        ax.plot(xs, means, "o-", color=f"C{i}", label=LABELS[variant])
        ax.vlines(xs, ci[0], ci[1], color=f"C{i}", linewidth=1.2)
        for x, b in zip(xs, sizes):
            ax.scatter([x] * len(rows[str(b)]), rows[str(b)], s=8, alpha=0.35, color=f"C{i}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.invert_xaxis()  # as in the GN paper: batch size shrinks to the right
    ax.set_xlabel("batch size (images per step), log2 scale")
    ax.set_ylabel("final test error (%)")
    ax.set_title(f"Small batches and their remedies: {result['epochs']} epochs, lr·sqrt(B/64), no penalty, "
                 f"seeds {', '.join(map(str, result['seeds']))}\nlines: mean; bars: 95% interval (t on the logit scale, "
                 "inside [0, 100]); dots: seeds",
                 fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def write(artifacts, result):
    plot(result, os.path.join(artifacts, "small_batch.png"))
    return result


def replot(base, options, log=print):
    """Redraws small_batch.png from small_batch.json (no runs needed)."""
    return studies.redraw(base, "small_batch", write, "figure", log)


def run(base, options, log=print, names=tuple(VARIANTS), batch_sizes=BATCH_SIZES, seeds=SEEDS, epochs=EPOCHS):
    artifacts = base.outputs.artifacts_dir
    fileio.check_writable(os.path.join(artifacts, "sweep"))
    start = time.time()
    seeds = batch_sweep.seed_list(options, seeds)
    todo = configs(base, names, batch_sizes, seeds, epochs)
    log(f"suite small_batch: {len(todo)} runs ({len(names)} variants x {len(batch_sizes)} batch sizes x "
        f"{len(seeds)} seeds), {epochs} epochs each")
    results, _ = parallel.train_checked("small_batch", [c for *_, c in todo], options.jobs)
    error, batch_stats = per_cell(todo, results, data.raw_test_set(base.learning.data_path, base.learning.test_limit))
    result = dict(summarize(error, batch_stats, batch_sizes, seeds, epochs), wall_seconds=round(time.time() - start, 1))
    fileio.write_json(os.path.join(artifacts, "small_batch.json"), result)
    write(artifacts, result)
    log(f"suite small_batch: done in {result['wall_seconds'] / 60:.1f} min")
    return result
