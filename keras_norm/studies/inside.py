"""`--suite=inside`: the seeds suite's `inside.json` files (keras_norm/layer_stats.py) gathered per norm into
`artifacts/inside.json`, and `artifacts/inside.png` (no training).

Per norm, statistic and layer: the mean over the suite's seeds at every epoch. Columns of the figure are the
norms; rows are the standard deviation of the activations entering the norm, of those leaving it, and the
gradient norm of each convolution's kernel.
"""

import glob
import os

import numpy as np

from keras_norm import fileio, layer_stats
from keras_norm.errors import KerasNormError
from keras_norm.plotting import plt
from keras_norm.report.plots import save_figure
from keras_norm.run_folder import RunFolder
from keras_norm.studies.seeds import suite_dir

STATS = ("in_mean", "in_std", "out_mean", "out_std", "grad_norm", "kernel_norm")
# (statistic, y-axis label, and for the no-norm model, which has no norm layer, what the statistic is there)
PLOTTED = (("in_std", "std entering the norm", "std after the convolution"),
           ("out_std", "std leaving the norm (before ReLU)", "std after the convolution (no norm)"),
           ("grad_norm", "|g|: data loss's kernel gradient", None),
           ("relative_grad", "|g| / |w|: relative step size", None))


def gather(artifacts_dir):
    """{norm: {"seeds": [...], "layers": [...], stat: [epochs][layers] mean over seeds, stat_per_seed}}."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(suite_dir(artifacts_dir), "runs", "*"))):
        folder = RunFolder(path)
        metrics, rows = folder.finished_metrics(), folder.read(layer_stats.FILE, {}).get("epochs")
        if metrics and rows:
            runs.setdefault(metrics["norm"], []).append((metrics["seed"], rows))
    if not runs:
        raise KerasNormError(f"no finished run with {layer_stats.FILE} under {suite_dir(artifacts_dir)}; "
                             "run --suite=seeds first")
    return {norm: _per_norm(sorted(found, key=lambda s: s[0])) for norm, found in sorted(runs.items())}


def _per_norm(found):
    epochs = min(len(rows) for _, rows in found)
    out = {"seeds": [s for s, _ in found], "epochs": epochs,
           "layers": [layer["layer"] for layer in found[0][1][0]["layers"]]}
    for stat in STATS:
        per_seed = np.array([layer_stats.series(rows[:epochs], stat) for _, rows in found])  # seeds, epochs, layers
        out[stat] = np.round(per_seed.mean(axis=0), 6).tolist()
    out["data_loss"] = np.round(np.mean([[r["data_loss"] for r in rows[:epochs]] for _, rows in found], 0),
                                6).tolist()
    return out


def _series(entry, stat):
    """(epochs, layers) array of a statistic; |g|/|w| from the gradient and kernel norms."""
    if stat == "relative_grad":
        return np.array(entry["grad_norm"]) / np.array(entry["kernel_norm"])
    return np.array(entry[stat])


def plot(result, path):
    norms = list(result)
    fig, axes = plt.subplots(len(PLOTTED), len(norms), figsize=(3.3 * len(norms), 2.5 * len(PLOTTED)),
                             sharex=True, sharey="row", squeeze=False)
    for col, norm in enumerate(norms):
        entry = result[norm]
        epochs = np.arange(1, entry["epochs"] + 1)
        for row, (stat, label, without_norm) in enumerate(PLOTTED):
            ax = axes[row][col]
            for i, layer in enumerate(entry["layers"]):
                ax.plot(epochs, _series(entry, stat)[:, i], label=layer)
            ax.set_yscale("log")
            title = without_norm if norm == "none" and without_norm else label
            ax.set_title(f"{norm}: {title}" if row == 0 else title, fontsize=8)
            ax.grid(alpha=0.3, which="both")
            if col == 0:
                ax.set_ylabel(f"{label.split(':')[0]}\n(log scale)", fontsize=8)
        axes[-1][col].set_xlabel("epoch")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"Inside the network: {layer_stats.PROBE_IMAGES} fixed validation images after each epoch, "
                 "mean over seeds; every y axis is log-scaled", fontsize=10)
    return save_figure(fig, path)


def replot(base, options, log=print):
    """Redraws inside.png from inside.json (no runs needed)."""
    artifacts = base.outputs.artifacts_dir
    plot(fileio.read_json(os.path.join(artifacts, "inside.json"))["norms"], os.path.join(artifacts, "inside.png"))
    log(f"suite inside: figure redrawn from {os.path.join(artifacts, 'inside.json')}")


def run(base, options, log=print):
    artifacts = base.outputs.artifacts_dir
    fileio.check_writable(artifacts)
    result = gather(artifacts)
    fileio.write_json(os.path.join(artifacts, "inside.json"), {"probe_images": layer_stats.PROBE_IMAGES, "norms": result})
    plot(result, os.path.join(artifacts, "inside.png"))
    seeds = ", ".join(f"{norm} ({len(entry['seeds'])} seeds)" for norm, entry in result.items())
    log(f"suite inside: {seeds} -> {os.path.join(artifacts, 'inside.json')}")
    return result
