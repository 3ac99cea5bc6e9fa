"""The batch-size sweep (`--suite=batch_sweep`): bn, gn and ln at batch sizes 2..128, trained properly.

Every cell trains the same number of epochs (`--sweep_epochs`, default 5) on the full training split, no
L1/L2 penalty (the norm alone), the main recipe otherwise (its one-cycle schedule ramps the rate up over the
first 25% of the steps: the warm-up). The peak learning rate follows a rule from the main recipe's batch size
and peak rate (REFERENCE): `linear` (lr * B/64) or `sqrt` (lr * sqrt(B/64)), chosen first on the **validation split** at
batch RULE_BATCH (seed 0, every norm): the rule with the higher mean final validation accuracy trains the grid.

BN is evaluated twice: with its moving statistics (as deployed) and with each test batch's own statistics
at the batch size it trained with. Cells go seed by seed, cheapest first, two at a time; the suite resumes
any time. Runs live in `artifacts/sweep/runs/`; results in `artifacts/batch_sweep.json` and `.png`.
"""

import collections
import os
import time

import numpy as np

from keras_norm import data, fileio, parallel
from keras_norm.config import Learning
from keras_norm.plotting import plt
from keras_norm.report import stats
from keras_norm.report.plots import save_figure
from keras_norm.studies import bn_batch_stats

BATCH_SIZES = (2, 4, 8, 16, 32, 64, 128)
NORMS = ("bn", "gn", "ln")
REFERENCE = (Learning().batch_size, Learning().lr)  # the main recipe's batch size and peak learning rate
RULES = {"linear": lambda b: b / REFERENCE[0], "sqrt": lambda b: (b / REFERENCE[0]) ** 0.5}
RULE_BATCH = 8
SEEDS = 2  # seeds 0..N-1 per cell unless --sweep_seeds says otherwise


def seed_list(options, seeds=tuple(range(SEEDS))):
    """`seeds`, or 0..N-1 when --sweep_seeds=N (fewer: a sweep that is still running, from its finished seeds)."""
    return tuple(range(options.sweep_seeds)) if options.sweep_seeds else tuple(seeds)


def cell(base, norm, batch, seed, epochs, rule):
    return base.replace(
        norm=norm, l1=0.0, l2=0.0, batch_size=batch, seed=seed, epochs=epochs, lr=REFERENCE[1] * RULES[rule](batch),
        export=False, deterministic=True, run_name=f"{norm}_bs{batch}_{rule}_seed-{seed}",
        steps_per_execution=max(base.runtime.steps_per_execution, 64 // batch),  # many tiny steps per call
        artifacts_dir=os.path.join(base.outputs.artifacts_dir, "sweep"))


def choose_rule(base, epochs, norms, jobs, log):
    """{rule: mean final validation accuracy at RULE_BATCH} and the chosen rule."""
    todo = [cell(base, norm, RULE_BATCH, 0, epochs, rule) for rule in RULES for norm in norms]
    results, _ = parallel.train_checked("batch_sweep (rule)", todo, jobs)
    scores = {rule: round(float(np.mean([r["final_val_accuracy"] for c, r in zip(todo, results)
                                         if c.outputs.run_name.endswith(f"_{rule}_seed-0")])), 5) for rule in RULES}
    chosen = max(scores, key=scores.get)
    log(f"suite batch_sweep: lr rule chosen on validation at batch {RULE_BATCH}: {chosen} {scores}")
    return scores, chosen


def grid(base, epochs, batch_sizes, norms, seeds, rule):
    """Seed by seed, largest batch (cheapest) first, so a stopped sweep has whole curves."""
    return [cell(base, norm, b, s, epochs, rule) for s in seeds for b in sorted(batch_sizes, reverse=True)
            for norm in norms]


def bn_batch_error(result, batch, test_set):
    """Test error (%) of a BN run's model with each test batch's own statistics (cached in the run folder)."""
    path = os.path.join(result["folder"], "batch_statistics.json")
    if not os.path.exists(path):
        model, x = bn_batch_stats.load_model_and_images(result["folder"], test_set[0])
        acc = float(np.mean(bn_batch_stats.batch_statistics_logits(model, x, batch).argmax(1) == test_set[1]))
        fileio.write_json(path, {"batch_size": batch, "test_accuracy": acc})
    return round(100 * (1 - fileio.read_json(path)["test_accuracy"]), 3)


def summarize(todo, results, test_set):
    """batch_sweep.json's per-cell numbers: {key: {norm: [per batch [per seed]]}}."""
    out = collections.defaultdict(lambda: collections.defaultdict(lambda: collections.defaultdict(list)))
    for config, result in zip(todo, results):
        norm, batch = config.learning.norm, config.learning.batch_size
        out["test_error_per_seed"][norm][batch].append(round(100 * (1 - result["final_test_accuracy"]), 3))
        out["val_error_per_seed"][norm][batch].append(round(100 * (1 - result["final_val_accuracy"]), 3))
        if norm == "bn":
            out["bn_batch_statistics_test_error_per_seed"][norm][batch].append(
                bn_batch_error(result, batch, test_set))
    return out


def as_lists(per_cell, batch_sizes):
    """{norm: {batch: [seeds]}} -> per seed lists in batch order, and their means (None when missing)."""
    per_seed = {n: [cells.get(b, []) for b in batch_sizes] for n, cells in per_cell.items()}
    means = {n: [round(float(np.mean(v)), 3) if v else None for v in rows] for n, rows in per_seed.items()}
    return per_seed, means


def _bounded_or_none(values):
    """[low, high] of a cell's logit-t interval, inside [0, 100] (report/stats.py, `bounded_ci`); None with fewer
    than 2 seeds (JSON has no NaN)."""
    if len(values) < 2:
        return None
    return [round(v, 3) for v in stats.bounded_ci(values)[1]]


def intervals(sweep):
    """95% CIs over seeds of each cell's test error (logit t, inside [0, 100]), and the differences at each batch
    size, each comparison one family under Holm's rule over the batch sizes: between norms Welch's (independent
    runs); BN's batch statistics minus its moving ones paired (the same models measured two ways)."""
    errors, sizes = sweep["test_error_per_seed"], sweep["batch_sizes"]
    by_batch = lambda a, b: {size: (x, y) for size, x, y in zip(sizes, a, b)}  # noqa: E731
    out = {"test_error_ci95_logit": {n: [_bounded_or_none(v) for v in rows] for n, rows in errors.items()}}
    out["differences"] = [stats.family(f"{a} - {b}", by_batch(errors[a], errors[b]))
                          for a, b in (("bn", "gn"), ("bn", "ln"), ("gn", "ln")) if a in errors and b in errors]
    batch_stats = sweep.get("bn_batch_statistics_test_error_per_seed", {}).get("bn")
    if batch_stats is not None:
        out["differences"].append(stats.family("bn batch statistics - moving statistics",
                                               by_batch(batch_stats, errors["bn"]), paired=True))
    out["rule"] = "per comparison, the batch sizes are one family: Holm's step-down adjustment; real when p_holm < 0.05"
    return out


def run(base, options, log=print, batch_sizes=BATCH_SIZES, norms=NORMS):
    """Chooses the lr rule, trains every cell (skipping finished ones); writes batch_sweep.json and .png."""
    seeds, epochs = seed_list(options), options.sweep_epochs
    artifacts = base.outputs.artifacts_dir
    fileio.check_writable(os.path.join(artifacts, "sweep"))
    start = time.time()
    scores, rule = choose_rule(base, epochs, norms, options.jobs, log)
    todo = grid(base, epochs, batch_sizes, norms, seeds, rule)
    log(f"suite batch_sweep: {len(todo)} runs of {epochs} epochs")
    results, _ = parallel.train_checked("batch_sweep", todo, options.jobs)
    cells = summarize(todo, results, data.raw_test_set(base.learning.data_path, base.learning.test_limit))
    sweep = {"batch_sizes": list(batch_sizes), "epochs": epochs, "seeds": list(seeds), "penalty": "none",
             "lr_rule": {"chosen": rule, "peak_lr": {str(b): round(REFERENCE[1] * RULES[rule](b), 6)
                                                     for b in batch_sizes},
                         "validation_accuracy_at_batch": RULE_BATCH, "mean_final_val_accuracy": scores,
                         "warm_up": "one-cycle: the rate rises over the first 25% of the steps"}}
    for key in cells:
        sweep[key], sweep[key.replace("_per_seed", "")] = as_lists(cells[key], batch_sizes)
    sweep.update(intervals(sweep))
    sweep.update({k: results[0]["dataset"][k] for k in ("train_size", "val_size", "test_size")})
    sweep["wall_seconds"] = round(time.time() - start, 1)
    fileio.write_json(os.path.join(artifacts, "batch_sweep.json"), sweep)
    plot(os.path.join(artifacts, "batch_sweep.png"), sweep)
    log(f"suite batch_sweep: done in {sweep['wall_seconds'] / 60:.1f} min")
    return sweep


def plot(path, sweep):
    names = {"bn": "BatchNorm (moving statistics)", "gn": "GroupNorm (4 groups)", "ln": "LayerNorm"}
    fig, ax = plt.subplots(figsize=(8, 5))
    sizes = sweep["batch_sizes"]
    per_seed = sweep["test_error_per_seed"]
    curves = [(names.get(n, n), e, per_seed[n], "o-") for n, e in sweep["test_error"].items()]
    curves += [("BatchNorm (each test batch's own statistics, test batch = training batch)", e,
                sweep["bn_batch_statistics_test_error_per_seed"][n], "s--")
               for n, e in sweep.get("bn_batch_statistics_test_error", {}).items()]
    for label, errors, seeds, style in curves:
        xs = [b for b, e in zip(sizes, errors) if e is not None]
        ys = [e for e in errors if e is not None]
        line, = ax.plot(xs, ys, style, label=label)
        for x, y in zip(xs, ys):
            ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
        points = [(b, e) for b, cell in zip(sizes, seeds) for e in cell]  # every seed, where the mean hides a spread
        ax.plot([p[0] for p in points], [p[1] for p in points], ".", color=line.get_color(), alpha=0.45, ms=5)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(b) for b in sizes])
    ax.invert_xaxis()  # as in the GN paper: batch size shrinks to the right
    ax.set_xlabel("batch size (images per step), log2 scale")
    ax.set_ylabel("final test error (%), log scale")
    ax.set_title(f"Test error vs batch size: {sweep['train_size']} training images, {sweep['epochs']} epochs, "
                 f"{sweep['lr_rule']['chosen']} lr rule, no penalty\nlines: mean of seed(s) "
                 f"{', '.join(map(str, sweep['seeds']))}; dots: each seed", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save_figure(fig, path)
