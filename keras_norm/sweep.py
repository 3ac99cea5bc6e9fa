"""The batch-size sweep: test error of bn, gn and ln at batch sizes 2..128 (the GN paper's test).

Every cell trains the same number of epochs; the learning rate scales linearly with the batch
size from the 128 setting (lr_B = lr * B / 128). BN is evaluated as deployed: in inference mode,
with its moving statistics. Runs live in `artifacts/sweep/runs/` so that they stay out of the main
report; the results go to `artifacts/batch_sweep.json` and `artifacts/batch_sweep.png`.
"""

import os
import time

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_norm import fileio, parallel  # noqa: E402

BATCH_SIZES = (2, 4, 8, 16, 32, 64, 128)
NORMS = ("bn", "gn", "ln")
REFERENCE_BATCH = 128


def configs(base, epochs, batch_sizes=BATCH_SIZES, norms=NORMS, seeds=(0,)):
    out = []
    for norm in norms:
        for b in batch_sizes:
            for seed in seeds:
                out.append(base.replace(
                    norm=norm, l1=0.0, l2=0.0, batch_size=b, seed=seed, epochs=epochs,
                    lr=base.learning.lr * b / REFERENCE_BATCH, export=False,
                    run_name=f"{norm}_bs{b}" + (f"_seed-{seed}" if seed else ""),
                    # Many tiny steps: run several per compiled call (same updates, less overhead).
                    steps_per_execution=max(base.runtime.steps_per_execution, 64 // b),
                    artifacts_dir=os.path.join(base.outputs.artifacts_dir, "sweep")))
    return out


def summarize(results, batch_sizes, norms, seeds, epochs):
    """batch_sweep.json content: test error (%) per norm and batch size, mean over seeds."""
    error, per_seed = {}, {}
    for norm in norms:
        error[norm], per_seed[norm] = [], []
        for b in batch_sizes:
            accs = [r["final_test_accuracy"] for r in results
                    if r.get("norm") == norm and r.get("batch_size") == b]
            error[norm].append(round(100 * (1 - float(np.mean(accs))), 3) if len(accs) == len(seeds) else None)
            per_seed[norm].append([round(100 * (1 - a), 3) for a in accs])
    return {"batch_sizes": list(batch_sizes), "epochs": epochs, "seeds": list(seeds), "test_error": error,
            "test_error_per_seed": per_seed}


def plot(path, sweep):
    names = {"bn": "BatchNorm (inference mode)", "gn": "GroupNorm (4 groups)", "ln": "LayerNorm", "none": "no norm"}
    fig, ax = plt.subplots(figsize=(8, 5))
    for norm, errors in sweep["test_error"].items():
        xs = [b for b, e in zip(sweep["batch_sizes"], errors) if e is not None]
        ys = [e for e in errors if e is not None]
        ax.plot(xs, ys, "o-", label=names.get(norm, norm))
        for x, y in zip(xs, ys):
            ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sweep["batch_sizes"])
    ax.set_xticklabels([str(b) for b in sweep["batch_sizes"]])
    ax.invert_xaxis()  # as in the GN paper: batch size shrinks to the right
    ax.set_xlabel("batch size (images per step), log2 scale")
    ax.set_ylabel("test error (%)")
    ax.set_title(f"Test error vs batch size, MNIST ({sweep.get('train_size')} train / {sweep.get('test_size')} test "
                 f"images), {sweep['epochs']} epoch(s), lr scaled with batch size\n"
                 f"mean of seed(s) {', '.join(map(str, sweep['seeds']))}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def run(base, options, log=print, batch_sizes=BATCH_SIZES, norms=NORMS):
    """Trains every cell (skipping finished ones); writes batch_sweep.json and batch_sweep.png."""
    seeds, epochs = tuple(range(options.sweep_seeds)), options.sweep_epochs
    fileio.check_writable(base.outputs.artifacts_dir)
    todo = configs(base, epochs, batch_sizes, norms, seeds)
    start = time.time()
    log(f"suite batch_sweep: {len(todo)} runs of {epochs} epoch(s)")
    results = parallel.train_all(todo, options.jobs)
    for config, result in zip(todo, results):
        result["batch_size"] = config.learning.batch_size
    sweep = summarize(results, batch_sizes, norms, seeds, epochs)
    dataset = next((r["dataset"] for r in results if "dataset" in r), {})
    sweep["train_size"], sweep["test_size"] = dataset.get("train_size"), dataset.get("test_size")
    sweep["lr_rule"] = f"lr = {base.learning.lr:g} * batch_size / {REFERENCE_BATCH}, {base.learning.schedule} schedule"
    sweep["wall_seconds"] = round(time.time() - start, 1)
    parallel.raise_failures("batch_sweep", results)
    fileio.write_json(os.path.join(base.outputs.artifacts_dir, "batch_sweep.json"), sweep)
    plot(os.path.join(base.outputs.artifacts_dir, "batch_sweep.png"), sweep)
    log(f"suite batch_sweep: done in {sweep['wall_seconds'] / 60:.1f} min")
    return sweep
