"""Does normalization help this network, like with like (`--suite=fair`): BN, GN, LN and no norm, all without
a penalty, the main recipe, 10 seeds each.

The main suite compares BN + L1 + L2, GN + L1 and LN + L2 with a no-norm model without a penalty, on a recipe
tuned for the normalized models: a penalty and a learning rate are confounded with the norm. Here every model
trains without a penalty, and the no-norm model gets a peak learning rate chosen for it by the rule the tune
suite used for the others (keras_norm/studies/tune.py): seed 0, 20 epochs, the candidates `NONE_LRS`, the
highest final-epoch **validation** accuracy wins, and the recipe's 0.05 stays unless another beats it (a run
that diverges scores 0). The normalized models keep 0.05, which the tune suite chose for them that way.

Runs that other suites already trained are found, not trained again: the grid's no-penalty cells (seeds 0-2)
and the seeds suite's no-norm runs (seeds 0-4) are these cells' runs. Comparisons: every pair of the four, by
Welch's test (the models differ, so seeds do not pair them), with Holm's rule over the six (report/stats.py).
Writes `artifacts/fair.json` and `artifacts/fair.png`.
"""

import os

import numpy as np

from keras_norm import fileio, parallel
from keras_norm.config import Learning
from keras_norm.plotting import plt
from keras_norm.report import stats, tables
from keras_norm.report.plots import save_figure
from keras_norm.studies import grid
from keras_norm.studies import seeds as seeds_suite

NORMS = ("bn", "gn", "ln", "none")
SEEDS = tuple(range(10))
NONE_LRS = (0.025, 0.05, 0.1)
RECIPE_LR = Learning().lr
LABELS = {"bn": "BN", "gn": "GN (4 groups)", "ln": "LN", "none": "no norm"}


def suite_dir(artifacts_dir):
    return os.path.join(artifacts_dir, "fair")


def cell(base, norm, seed, lr=RECIPE_LR):
    """The config of one run without a penalty: the grid's (or, without a norm, the seeds suite's) own run where
    that suite trained it, else one in this suite's folder."""
    owner_seeds = seeds_suite.SEEDS if norm == "none" else grid.SEEDS
    if lr == RECIPE_LR and seed in owner_seeds:
        [config] = grid.configs(base, norms=(norm,), penalties=("none",), seeds=(seed,))
        return config
    return base.replace(norm=norm, seed=seed, lr=lr, l1=0.0, l2=0.0, deterministic=True,
                        artifacts_dir=suite_dir(base.outputs.artifacts_dir))


def choose_lr(results, lrs):
    """(chosen peak lr, {lr: final validation accuracy}): the tune suite's rule; a failed run scores 0."""
    val = {lr: r["final_val_accuracy"] if r.get("status") == "finished" else 0.0 for lr, r in zip(lrs, results)}
    best = max(lrs, key=lambda lr: val[lr])
    return (best if val[best] > val[RECIPE_LR] else RECIPE_LR), val


def comparisons(accuracy):
    """Every pair of norms: difference of mean test accuracy (pp), Welch's 95% interval and p, Holm's verdict."""
    pairs = [(a, b) for i, a in enumerate(accuracy) for b in list(accuracy)[i + 1:]]
    tests = [stats.welch_test(accuracy[a], accuracy[b]) for a, b in pairs]
    adjusted = stats.holm([p for _, _, p in tests])
    return [{"a": a, "b": b, "difference_pp": round(diff, 4), "ci95_pp": [round(low, 4), round(high, 4)],
             "p": round(p, 6), "p_holm": round(q, 6), "real": bool(q < 1 - stats.LEVEL)}
            for (a, b), (diff, (low, high), p), q in zip(pairs, tests, adjusted)]


def summarize(results_by_norm, seeds, none_lr, lr_choice):
    """fair.json's content: test accuracy (%) per seed, per-norm intervals that stay in [0, 100], comparisons."""
    accuracy = {n: [round(100 * tables.exact(r["final_test_accuracy"], r["dataset"]["test_size"]), 4) for r in rs]
                for n, rs in results_by_norm.items()}
    summary = {}
    for n, values in accuracy.items():
        mean, (low, high) = stats.bounded_ci(values)
        summary[n] = {"mean": round(mean, 4), "sd": round(float(np.std(values, ddof=1)), 4) if len(values) > 1
                      else None, "ci95_logit": None if np.isnan(low) else [round(low, 4), round(high, 4)],
                      "seeds_at_or_above_99.4": int(sum(v >= 99.4 for v in values))}
    return {"seeds": list(seeds), "epochs": results_by_norm["none"][0]["epochs"], "penalty": "none",
            "peak_lr": {n: none_lr if n == "none" else RECIPE_LR for n in accuracy}, "none_peak_lr": none_lr,
            "none_lr_choice": {"rule": "seed 0, highest final-epoch validation accuracy; the recipe's 0.05 unless "
                                       "another beats it", "final_val_accuracy": {f"{lr:g}": v for lr, v in
                                                                                lr_choice.items()}},
            "test_accuracy": accuracy, "summary": summary,
            "comparisons": comparisons(accuracy),
            "rule": "Welch's t for each pair; Holm's step-down adjustment over the six pairs; real when p_holm < 0.05"}


def plot(fair, path):
    """Per-seed test accuracy of each norm (dots), the mean (bar) and its 95% interval."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    rng = np.random.default_rng(0)  # horizontal jitter only, so that equal seeds do not hide each other
    for i, (norm, values) in enumerate(fair["test_accuracy"].items()):
        s = fair["summary"][norm]
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=16, alpha=0.6, color=f"C{i}")
        ax.hlines(s["mean"], i - 0.25, i + 0.25, color=f"C{i}", lw=2)
        if s["ci95_logit"]:
            ax.vlines(i + 0.3, *s["ci95_logit"], color=f"C{i}", lw=2)
    ax.set_xticks(range(len(fair["test_accuracy"])),
                  [f"{LABELS[n]}\nlr {fair['peak_lr'][n]:g}" for n in fair["test_accuracy"]])
    ax.set_ylabel("final-epoch test accuracy (%)")
    ax.set_title(f"No penalty, {len(fair['seeds'])} seeds each: dots = seeds, bar = mean, line = 95% CI",
                 fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


def run(base, options, log=print, seeds=SEEDS, none_lrs=NONE_LRS):
    artifacts = base.outputs.artifacts_dir
    fileio.check_writable(suite_dir(artifacts))
    tuning = [cell(base, "none", 0, lr) for lr in none_lrs]
    log(f"suite fair: the no-norm model's peak lr from {', '.join(f'{lr:g}' for lr in none_lrs)} (seed 0)")
    none_lr, lr_choice = choose_lr(parallel.train_all(tuning, options.jobs, fresh_processes=True), none_lrs)
    log(f"suite fair: no norm trains at peak lr {none_lr:g}; {len(NORMS)} norms x {len(seeds)} seeds")
    todo = [cell(base, n, s, none_lr if n == "none" else RECIPE_LR) for s in seeds for n in NORMS]
    results, wall = parallel.train_checked("fair", todo, options.jobs)
    by_norm = {n: [r for c, r in zip(todo, results) if c.learning.norm == n] for n in NORMS}
    fair = dict(summarize(by_norm, seeds, none_lr, lr_choice), wall_seconds=wall)
    fileio.write_json(os.path.join(artifacts, "fair.json"), fair)
    plot(fair, os.path.join(artifacts, "fair.png"))
    log(f"suite fair: done in {wall / 60:.1f} min")
    return fair
