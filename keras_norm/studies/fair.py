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

from keras_norm import fileio, parallel
from keras_norm.config import Learning
from keras_norm.report import variants
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


def summarize(results_by_norm, seeds, none_lr, lr_choice):
    """fair.json's content: test accuracy (%) per seed, per-norm intervals that stay in [0, 100], comparisons."""
    accuracy = {n: variants.test_accuracy_pct(rs) for n, rs in results_by_norm.items()}
    return {"seeds": list(seeds), "epochs": results_by_norm["none"][0]["epochs"], "penalty": "none",
            "peak_lr": {n: none_lr if n == "none" else RECIPE_LR for n in accuracy}, "none_peak_lr": none_lr,
            "none_lr_choice": {"rule": "seed 0, highest final-epoch validation accuracy; the recipe's 0.05 unless "
                                       "another beats it",
                               "final_val_accuracy": {f"{lr:g}": v for lr, v in lr_choice.items()}},
            "test_accuracy": accuracy, "summary": variants.summary(accuracy),
            "comparisons": variants.comparisons(accuracy, variants.all_pairs(accuracy)),
            "rule": "Welch's t for each pair; Holm's step-down adjustment over the six pairs; real when p_holm < 0.05"}


def plot(fair, path):
    labels = {n: f"{LABELS[n]}\nlr {fair['peak_lr'][n]:g}" for n in fair["test_accuracy"]}
    variants.plot(fair["test_accuracy"], fair["summary"], labels,
                  f"No penalty, {len(fair['seeds'])} seeds each, {fair['epochs']} epochs", path)


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
