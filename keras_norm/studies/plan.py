"""The whole study from one command (`--suite=all`): every suite in dependency order, then the report; with
`--dry_run`, what would run, what is already done, and an estimate of the time left.

Each suite resumes on its own (finished runs are found, an interrupted one continues from its last epoch), so
`--suite=all` can be started again at any point. A suite's planned runs are the configs it trains; evaluation
suites train none. The estimate takes, per suite, the median wall time of its finished runs (epochs times
their mean epoch seconds, two runs at a time as the suites train them), and for a suite with none finished
the median over every suite's finished runs, scaled by epochs.
"""

import contextlib
import dataclasses

import numpy as np

from keras_norm import parallel
from keras_norm.errors import KerasNormError
from keras_norm.run_folder import RunFolder, run_dir
from keras_norm.studies import (
    batch_sweep,
    fair,
    grid,
    groups,
    lr_sweep,
    noise,
    seeds,
    small_batch,
    tune,
)

# Dependency order: tune chose the recipe the others use; fair finds the grid's and the seeds suite's runs, groups
# the fair suite's; the evaluation suites read the models the training suites left.
ORDER = ("tune", "seeds", "noise", "grid", "fair", "groups", "lr_sweep", "batch_sweep", "small_batch",
         "shift", "bn_batch_stats", "bn_adapt", "mnist_c", "inside")
EVALUATION = ("shift", "bn_batch_stats", "bn_adapt", "mnist_c", "inside")

# --scale=tiny: every suite at the smallest shape that still fills every part of its JSON and figures (two seeds,
# since an interval needs two; one epoch; the fewest cells, all of them cells of the full study; no SavedModel
# export), so the whole pipeline runs in minutes on a small --data_path (a test split of more than 256 images:
# MNIST-C adapts BN on 256 of them). Its numbers mean nothing.
TINY_EPOCHS = 1
TINY = {
    "tune": dict(lrs=(tune.BEFORE["lr"],), dropouts=(tune.BEFORE["dropout"],)),
    "seeds": dict(seeds=(0, 1)),
    "grid": dict(penalties=("none",), seeds=(0, 1)),
    "fair": dict(seeds=(0, 1), none_lrs=(0.05, 0.1)),
    "groups": dict(seeds=(0, 1), names=("gn2", "gn4")),
    "lr_sweep": dict(norms=("none",), lrs=(lr_sweep.LRS[2], lr_sweep.LRS[-1]), seeds=(0, 1), epochs=1),
    "batch_sweep": dict(batch_sizes=(8, 16), norms=("bn",)),
    "small_batch": dict(batch_sizes=(8,), seeds=(0, 1), epochs=1),
    "bn_adapt": dict(sizes=(8,), names=("brightness", "inverted")),
    "mnist_c": dict(names=("shot_noise", "brightness")),
}


def scaled(base, options):
    """(base, options, {suite: its arguments}) at `options.scale`."""
    if options.scale == "full":
        return base, options, {}
    options = dataclasses.replace(options, sweep_epochs=TINY_EPOCHS, sweep_seeds=2)
    return base.replace(epochs=TINY_EPOCHS, export=False), options, TINY


def planned(name, base, options, kw=None):
    """The configs suite `name` trains with arguments `kw` (for fair and batch_sweep, the choosing runs and the cells
    at the recipe's rate and the sqrt rule: the count is right, the chosen rate may differ)."""
    kw = kw or {}
    if name in EVALUATION:
        return []
    if name == "fair":
        return [fair.cell(base, "none", 0, lr) for lr in kw.get("none_lrs", fair.NONE_LRS)] + [
            fair.cell(base, n, s) for s in kw.get("seeds", fair.SEEDS) for n in fair.NORMS]
    if name == "groups":
        return [groups.cell(base, v, s) for s in kw.get("seeds", groups.SEEDS)
                for v in kw.get("names", groups.VARIANTS)]
    if name == "small_batch":
        return [c for *_, c in small_batch.configs(base, tuple(small_batch.VARIANTS),
                                                   kw.get("batch_sizes", small_batch.BATCH_SIZES),
                                                   batch_sweep.seed_list(options, kw.get("seeds", small_batch.SEEDS)),
                                                   kw.get("epochs", small_batch.EPOCHS))]
    if name == "batch_sweep":
        epochs, seed_list = options.sweep_epochs, batch_sweep.seed_list(options)
        norms = kw.get("norms", batch_sweep.NORMS)
        rule = [batch_sweep.cell(base, n, batch_sweep.RULE_BATCH, 0, epochs, r) for r in batch_sweep.RULES
                for n in norms]
        return rule + batch_sweep.grid(base, epochs, kw.get("batch_sizes", batch_sweep.BATCH_SIZES), norms,
                                       seed_list, "sqrt")
    return {"tune": tune.configs, "seeds": seeds.configs, "noise": noise.configs, "grid": grid.configs,
            "lr_sweep": lr_sweep.configs}[name](base, **kw)


def run_seconds(config):
    """The wall time a finished run took (its epochs times its mean epoch seconds), or None."""
    metrics = RunFolder(run_dir(config)).finished_metrics()
    return metrics and metrics.get("epochs", 0) * metrics.get("mean_epoch_seconds", 0.0)


def table(base, options):
    """[{suite, runs, done, left, estimate_seconds}] in order, and the total estimate."""
    base, options, kwargs = scaled(base, options)
    rows, per_epoch = [], []
    for name in ORDER:
        configs = list({c.folder_name + c.outputs.artifacts_dir: c
                        for c in planned(name, base, options, kwargs.get(name))}.values())
        seconds = [(c, run_seconds(c)) for c in configs]
        done = [s for _, s in seconds if s is not None]
        per_epoch += [s / c.learning.epochs for c, s in seconds if s]
        left = [c for c, s in seconds if s is None]
        rows.append({"suite": name, "runs": len(configs), "done": len(done), "left": left,
                     "median_run_seconds": float(np.median(done)) if done else None})
    fallback = float(np.median(per_epoch)) if per_epoch else None
    jobs = parallel.default_jobs(options.jobs)
    for row in rows:
        estimate = [row["median_run_seconds"] or (fallback and fallback * c.learning.epochs) for c in row["left"]]
        row["estimate_seconds"] = None if None in estimate else sum(estimate) / jobs
        row["left"] = len(row["left"])
    total = None if any(r["estimate_seconds"] is None for r in rows) else sum(r["estimate_seconds"] for r in rows)
    return rows, total


def _minutes(seconds):
    return "unknown (no run finished yet to time)" if seconds is None else f"{seconds / 60:.0f} min"


def dry_run(base, options, log=print):
    rows, total = table(base, options)
    log(f"suite all: {len(ORDER)} suites in this order, then the report (--scale={options.scale}, "
        f"--jobs={parallel.default_jobs(options.jobs)})")
    for r in rows:
        what = "evaluates models, no training" if r["suite"] in EVALUATION else \
            f"{r['runs']} runs: {r['done']} done, {r['left']} to train, about {_minutes(r['estimate_seconds'])}"
        log(f"  {r['suite']:15s} {what}")
    log(f"suite all: about {_minutes(total)} of training left (from the finished runs' epoch times)")
    return rows, total


def run_all(base, options, runner, log=print):
    """Runs every suite in ORDER with `runner(name)` (the registry's); each skips what is done. An evaluation suite
    whose models are not on this machine (they are not committed) is skipped with its reason; returns those. At
    --scale=tiny the runs share one pool of processes (parallel.reused_processes)."""
    base, options, kwargs = scaled(base, options)
    skipped = []
    reuse = options.scale == "tiny" and not options.cluster
    with parallel.reused_processes(options.jobs) if reuse else contextlib.nullcontext():
        for name in ORDER:
            log(f"suite all: {name}")
            try:
                runner(name)(base, options, **kwargs.get(name, {}))
            except KerasNormError as e:
                if name not in EVALUATION:
                    raise
                skipped.append(name)
                log(f"suite all: {name} skipped: {e}")
    return skipped
