"""Learning-rate tolerance (`--suite=lr_sweep`): does BN allow much higher learning rates than GN, LN or no norm?

bn, gn, ln and none, no L1/L2 penalty (the norm alone; the penalties are the grid's question), at peak
learning rates on a log grid from 0.01 to 1.0, the main recipe otherwise (one-cycle schedule) shortened to
EPOCHS epochs on the full training split, 2 seeds, op determinism. A run is **diverged** when its loss became
NaN/inf (its accuracies are null, and it is not trained again when the suite resumes) or when it ends at
chance level (final validation accuracy below COLLAPSED: dead ReLUs give a finite loss but learn nothing).
Diverged runs are kept and shown, never dropped.
Writes `artifacts/lr_sweep.json` and `artifacts/lr_sweep.png`; the runs live in `artifacts/lr_sweep/runs/`.
"""

import os
import time

import numpy as np

from keras_norm import fileio, parallel
from keras_norm.plotting import plt
from keras_norm.report.plots import save_figure
from keras_norm.run_folder import RunFolder, run_dir

LRS = tuple(round(10 ** (-2 + 0.4 * k), 4) for k in range(6))  # 0.01, 0.0251, 0.0631, 0.1585, 0.3981, 1.0
NORMS = ("bn", "gn", "ln", "none")
SEEDS = (0, 1)
EPOCHS = 5
COLLAPSED = 0.2  # twice chance (10 classes): below it a finished run learned nothing that lasted


def configs(base, norms=NORMS, lrs=LRS, seeds=SEEDS, epochs=EPOCHS):
    folder = os.path.join(base.outputs.artifacts_dir, "lr_sweep")
    return [base.replace(norm=norm, l1=0.0, l2=0.0, lr=lr, seed=seed, epochs=epochs, deterministic=True,
                         export=False, artifacts_dir=folder, run_name=f"{norm}_lr-{lr:g}_seed-{seed}")
            for norm in norms for lr in lrs for seed in seeds]


def _diverged_before(config):
    """The failed metrics.json of a run that diverged in an earlier invocation (not worth training again)."""
    metrics = RunFolder(run_dir(config)).read("metrics.json")
    return metrics if metrics and metrics.get("status") == "failed" and "diverged" in metrics.get("reason", "") \
        else None


def train_cells(todo, jobs):
    """Each config's result: its metrics, or a failed result when it diverged (now or before)."""
    earlier = {c.folder_name: _diverged_before(c) for c in todo}
    fresh = [c for c in todo if not earlier[c.folder_name]]
    trained = dict(zip([c.folder_name for c in fresh], parallel.train_all(fresh, jobs, fresh_processes=True)))
    return [earlier[c.folder_name] or trained[c.folder_name] for c in todo]


def summarize(todo, results, norms, lrs, seeds):
    """lr_sweep.json's content: per norm, per learning rate, one value per seed (None when diverged)."""
    cells = {(c.learning.norm, c.learning.lr, c.learning.seed): r for c, r in zip(todo, results)}
    out = {"lrs": list(lrs), "epochs": todo[0].learning.epochs, "seeds": list(seeds), "penalty": "none",
           "diverged_means": f"loss NaN/inf (accuracies null) or final validation accuracy < {COLLAPSED}",
           "val_accuracy": {}, "test_accuracy": {}, "diverged": {}}
    for norm in norms:
        rows = [[cells[(norm, lr, s)] for s in seeds] for lr in lrs]
        finished = [[r.get("status") == "finished" for r in row] for row in rows]
        out["diverged"][norm] = [[not f or r["final_val_accuracy"] < COLLAPSED for r, f in zip(row, fin)]
                                 for row, fin in zip(rows, finished)]
        for key, metric in (("val_accuracy", "final_val_accuracy"), ("test_accuracy", "final_test_accuracy")):
            out[key][norm] = [[r[metric] if f else None for r, f in zip(row, fin)]
                              for row, fin in zip(rows, finished)]
    failed = [r for r in results if r.get("status") != "finished" and "diverged" not in r.get("reason", "")]
    out["failed_otherwise"] = [r.get("reason") for r in failed]
    return out


def plot(sweep, path):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    for ax, key, what in zip(axes, ("val_accuracy", "test_accuracy"), ("validation split", "test set")):
        for norm, rows in sweep[key].items():
            err = [np.mean([100 * (1 - a) for a in row]) if None not in row else 100.0 for row in rows]
            line, = ax.plot(sweep["lrs"], err, "o-", label=norm)
            gone = [(lr, e) for lr, e, d in zip(sweep["lrs"], err, sweep["diverged"][norm]) if any(d)]
            ax.plot([g[0] for g in gone], [g[1] for g in gone], "x", color="black", markersize=11)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("peak learning rate (one-cycle), log scale")
        ax.set_title(f"final error on the {what}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("error (%), log scale")
    axes[0].text(0.02, 0.02, "x = a seed diverged (NaN: drawn at 100%) or collapsed to chance", fontsize=8,
                 transform=axes[0].transAxes)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"Learning-rate tolerance: {sweep['epochs']} epochs, no penalty, mean of seeds "
                 f"{', '.join(map(str, sweep['seeds']))}", fontsize=11)
    save_figure(fig, path)


def run(base, options, log=print, norms=NORMS, lrs=LRS, seeds=SEEDS, epochs=EPOCHS):
    artifacts = base.outputs.artifacts_dir
    fileio.check_writable(os.path.join(artifacts, "lr_sweep"))
    todo = configs(base, norms, lrs, seeds, epochs)
    start = time.time()
    log(f"suite lr_sweep: {len(todo)} runs of {epochs} epochs ({len(norms)} norms x {len(lrs)} lrs x "
        f"{len(seeds)} seeds)")
    results = train_cells(todo, options.jobs)
    sweep = dict(summarize(todo, results, norms, lrs, seeds), wall_seconds=round(time.time() - start, 1))
    sweep["train_size"] = next((r["dataset"]["train_size"] for r in results if "dataset" in r), None)
    fileio.write_json(os.path.join(artifacts, "lr_sweep.json"), sweep)
    plot(sweep, os.path.join(artifacts, "lr_sweep.png"))
    parallel.raise_failures("lr_sweep", [r for r in results if "diverged" not in r.get("reason", "")])
    log(f"suite lr_sweep: done in {sweep['wall_seconds'] / 60:.1f} min")
    return sweep
