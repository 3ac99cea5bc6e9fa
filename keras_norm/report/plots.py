"""The report's figures: Graph 1 (data loss), Graph 2 (test accuracy), training curves, the 5x2 grids of
the most confident mistakes, and the confusion matrices.

Curves are the mean over seeds with a min-max band. Legends carry the same numbers as report.md:
final-epoch means (with the 95% CI for the test accuracy).
"""

import os

import numpy as np
from matplotlib import ticker

from keras_norm import data
from keras_norm.errors import KerasNormError
from keras_norm.plotting import plt
from keras_norm.report import runs as runs_lib
from keras_norm.report import stats

DPI = 150
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def label(run):
    """Legend text: norm + regularization."""
    f = run.flags
    norm = {"bn": "BN", "gn": f"GN({f['groups']})", "ln": "LN", "in": "IN", "none": "no norm"}[f["norm"]]
    if f["norm"] == "ln" and f.get("ln_impl") == "layer":
        norm = "LN (per-activation affine)"
    reg = " + ".join(x for x in (f"L1 {f['l1']:g}" if f["l1"] else "", f"L2 {f['l2']:g}" if f["l2"] else "") if x)
    return norm + (f" + {reg}" if reg else "")


def _stack(runs, key, scale=1.0):
    n = min(len(r.history) for r in runs)
    return np.stack([r.series(key)[:n] for r in runs]) * scale


def _curves(ax, groups, key, scale=1.0, legend=None, style="-", with_label=True):
    """Seed means with min-max bands; returns the stacked values per group."""
    out = {}
    for i, (name, runs) in enumerate(groups.items()):
        values = _stack(runs, key, scale)
        epochs = np.arange(1, values.shape[1] + 1)
        text = label(runs[0]) + (f": {legend(values)}" if legend else "")
        ax.plot(epochs, values.mean(axis=0), style, color=COLORS[i % len(COLORS)], lw=1.6,
                label=text if with_label else None)
        if len(runs) > 1:
            ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=COLORS[i % len(COLORS)],
                            alpha=0.15, lw=0)
        out[name] = values
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3, which="both")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    return out


def _final_mean(values):
    return f"final {values[:, -1].mean():.4f}"  # as in report.md


def _final_ci(values):
    mean, (low, high) = stats.bounded_ci(values[:, -1])  # accuracies in percent: the interval stays in [0, 100]
    return f"final {mean:.3f}% (95% CI {low:.3f}–{high:.3f})" if values.shape[0] > 1 else f"final {mean:.3f}%"


def save_figure(fig, path, dpi=DPI, layout=True):
    """Lays the figure out (unless a legend sits outside the axes), writes it and frees it."""
    if layout:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def graph1_loss(path, groups):
    """Data loss (cross-entropy, no penalty) on the validation split and the test set."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, (key, what) in zip(axes, (("val_xent", "validation split"), ("test_xent", "test set"))):
        _curves(ax, groups, key, legend=_final_mean)
        ax.set_yscale("log")  # losses fall by 20x; on a log axis late differences stay visible
        ax.set_title(f"{what}: cross-entropy per epoch (mean of seeds)", fontsize=10)
        ax.legend(fontsize=8, loc="upper right")
    axes[0].set_ylabel("data loss (log scale)")
    fig.suptitle(f"Graph 1: data loss, L1/L2 penalty excluded\n{runs_lib.describe(groups)}", fontsize=10)
    save_figure(fig, path)


def graph2_accuracy(path, groups):
    """Test accuracy per epoch, zoomed on where the variants differ; the cut is stated on the figure."""
    fig, ax = plt.subplots(figsize=(9, 5.2))
    values = _curves(ax, groups, "test_accuracy", 100.0, legend=_final_ci)
    means = np.stack([v.mean(axis=0) for v in values.values()])
    half = means.shape[1] // 2
    low = max(0.0, np.floor(means[:, half:].min() * 10) / 10 - 0.1)
    high = min(100.0, max(v.max() for v in values.values()) + 0.1)
    ax.set_ylim(low, high)
    below = [e + 1 for e in range(means.shape[1]) if means[:, e].min() < low]
    if below:
        ax.text(0.01, 0.02, f"y-axis cut at {low:.1f}%: epochs {below[0]}–{below[-1]} of some curves lie below it",
                transform=ax.transAxes, fontsize=8, color="dimgrey")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Graph 2: test accuracy per epoch (mean of seeds, band min–max)\n{runs_lib.describe(groups)}",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # off the data
    save_figure(fig, path, layout=False)


def training_curves(path, groups):
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    specs = [("xent", "training data loss", 1.0, True), ("val_xent", "validation data loss", 1.0, True),
             ("accuracy", "training accuracy (%)", 100.0, False), ("val_accuracy", "validation accuracy (%)", 100.0, False)]
    for ax, (key, title, scale, log) in zip(axes.ravel(), specs):
        values = _curves(ax, groups, key, scale, legend=_final_mean if log else None)
        if log:
            ax.set_yscale("log")
        else:  # zoom on the second half, where the curves separate
            means = np.stack([v.mean(axis=0) for v in values.values()])
            ax.set_ylim(max(0.0, means[:, means.shape[1] // 2:].min() - 0.3), 100.0)
        ax.set_title(title + ("" if log else " (y-axis cut)"), fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(f"Training and validation curves (training numbers include dropout and augmentation)\n"
                 f"{runs_lib.describe(groups)}", fontsize=10)
    save_figure(fig, path)


def plot_mistakes(path, run, images):
    """The 10 most confident mistakes of the run's final model as a 5x2 grid."""
    fig, axes = plt.subplots(5, 2, figsize=(4.4, 10))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, item in zip(axes.ravel(), run.mistakes["images"]):
        ax.imshow(images[item["index"]], cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"#{item['index']}: pred {item['pred']} (p {item['p_pred']:.2f})\n"
                     f"true {item['true']} (p {item['p_true']:.2f})", fontsize=8)
    fig.suptitle(f"{label(run)}, seed {run.seed}, final model:\n{min(10, run.mistakes['errors'])} most confident of its "
                 f"{run.mistakes['errors']} test errors", fontsize=9)
    save_figure(fig, path)


def confusion_matrices(path, groups):
    """One confusion matrix per variant (final model, lowest seed), the diagonal left out of the colour scale."""
    shown = {n: rs[0] for n, rs in groups.items() if rs[0].mistakes}
    cols = min(2, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.2 * rows), squeeze=False)
    for ax in axes.ravel()[len(shown):]:
        ax.axis("off")
    for ax, (name, run) in zip(axes.ravel(), shown.items()):
        matrix = np.array(run.mistakes["confusion"])
        off = np.where(np.eye(10, dtype=bool), 0, matrix)
        top = max(1, off.max())
        ax.imshow(off, cmap="Reds", vmin=0, vmax=top)
        for t, p in zip(*np.nonzero(off)):
            ax.text(p, t, str(off[t, p]), ha="center", va="center", fontsize=7,
                    color="white" if off[t, p] > top / 2 else "black")
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        ax.tick_params(labelsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.set_title(f"{label(run)}, seed {run.seed}\n{run.mistakes['errors']} errors", fontsize=8)
    fig.suptitle("Test errors by true and predicted class (off-diagonal counts)", fontsize=10)
    save_figure(fig, path)


def mistake_grids(artifacts_dir, groups, log):
    """One grid per variant (its lowest seed); returns the files written."""
    cache, written = {}, []
    for name, runs in groups.items():
        run = runs[0]
        if not run.mistakes:
            log(f"report: no misclassified.json in {os.path.basename(run.folder)}; grid skipped")
            continue
        key = (run.flags["data_path"], run.flags["test_limit"])
        try:
            if key not in cache:
                cache[key] = data.raw_test_images(*key)
        except KerasNormError as e:
            log(f"report: grid for {name} skipped: {e}")
            continue
        path = os.path.join(artifacts_dir, f"misclassified_{name}.png")
        plot_mistakes(path, run, cache[key])
        written.append(path)
    return written
