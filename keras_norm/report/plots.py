"""The report's figures: Graph 1 and 2, the training curves, the 5x2 grids of misclassified digits."""

import math
import os

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_norm import data, fileio  # noqa: E402
from keras_norm.report import runs as runs_lib  # noqa: E402
from keras_norm.errors import KerasNormError  # noqa: E402

DPI = 150
TARGET = 99.4  # percent


def label(run):
    """Legend text: norm + regularization + parameters."""
    f = run.flags
    norm = {"bn": "BatchNorm", "gn": f"GroupNorm({f['groups']})", "ln": "LayerNorm", "in": "InstanceNorm",
            "none": "no norm"}[f["norm"]]
    if f["norm"] == "ln" and f.get("ln_impl") == "layer":
        norm = "LayerNorm (per-activation affine)"
    reg = [f"L1 {f['l1']:g}" if f["l1"] else "", f"L2 {f['l2']:g}" if f["l2"] else ""]
    reg = " + ".join(r for r in reg if r) or "no reg."
    return f"{norm} + {reg} ({run.config['params']:,} params)"


def _stack(runs, key, scale=1.0):
    n = min(len(r.history) for r in runs)
    return np.stack([r.series(key)[:n] for r in runs]) * scale


def short_label(run):
    f = run.flags
    reg = " + ".join(x for x in (f"L1 {f['l1']:g}" if f["l1"] else "", f"L2 {f['l2']:g}" if f["l2"] else "") if x)
    return f"{f['norm'].upper()}" + (f" + {reg}" if reg else "")


def _plot_metric(ax, groups, key, percent, mark="max", zoom=False, target=False, long_labels=True):
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lows, highs = [], []
    for i, (name, runs) in enumerate(groups.items()):
        color = colors[i % len(colors)]
        values = _stack(runs, key, 100.0 if percent else 1.0)
        mean = values.mean(axis=0)
        epochs = np.arange(1, len(mean) + 1)
        best = int(np.argmax(mean) if mark == "max" else np.argmin(mean))
        text = f"{mean[best]:.2f}%" if percent else f"{mean[best]:.4f}"
        # The best epoch's value goes into the legend: annotations next to the curves collide.
        name = label(runs[0]) if long_labels else short_label(runs[0])
        ax.plot(epochs, mean, color=color, lw=1.6,
                label=f"{name}: {'best' if mark == 'max' else 'min'} {text} @ epoch {epochs[best]}")
        if len(runs) > 1:
            ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=color, alpha=0.18, lw=0)
        ax.plot(epochs[best], mean[best], "o", color=color, ms=6, mec="black", mew=0.6)
        # Zoom on the second half of the mean curve, where the 99.0-99.6% differences live.
        lows.append(mean[len(mean) // 2:].min())
        highs.append(values[:, len(mean) // 2:].max())
    if zoom and percent:
        lo = max(0.0, math.floor(min(lows) * 10) / 10 - 0.1)
        hi = min(100.0, max(highs) + 0.15)
        ax.set_ylim(lo, hi)
        if target and lo < TARGET < hi:
            ax.axhline(TARGET, color="grey", ls="--", lw=0.8)
            ax.text(1, TARGET, " 99.4% target", va="bottom", fontsize=7, color="grey")
    if not percent:
        ax.set_yscale("log")  # losses fall by 20x; on a log axis late differences stay visible
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3, which="both")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))


def plot_single(path, groups, key, ylabel, title, percent=False, mark="max", zoom=False):
    fig, ax = plt.subplots(figsize=(8, 5))
    _plot_metric(ax, groups, key, percent, mark, zoom, target=key == "val_accuracy")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}\n{runs_lib.describe(groups)}", fontsize=10)
    ax.legend(fontsize=8, loc="lower right" if percent else "upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def plot_training_curves(path, groups):
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    specs = [("loss", "training loss", False, "min"), ("val_loss", "test loss", False, "min"),
             ("accuracy", "training accuracy (%)", True, "max"), ("val_accuracy", "test accuracy (%)", True, "max")]
    for ax, (key, ylabel, percent, mark) in zip(axes.ravel(), specs):
        _plot_metric(ax, groups, key, percent, mark, zoom=percent, target=key == "val_accuracy", long_labels=False)
        ax.set_ylabel(ylabel)
        ax.set_title(ylabel, fontsize=10)
        ax.legend(fontsize=7, loc="lower right" if percent else "upper right")
    fig.suptitle(f"Training and test curves: {', '.join(groups)}\n{runs_lib.describe(groups)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def plot_misclassified(path, run, images, wrong):
    """The first (up to) 10 misclassified test images as a 5x2 grid."""
    fig, axes = plt.subplots(5, 2, figsize=(4.2, 9.6))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, item in zip(axes.ravel(), wrong["images"]):
        ax.imshow(images[item["index"]], cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"#{item['index']}: true {item['true']}, pred {item['pred']}\np(pred) = {item['prob']:.2f}",
                     fontsize=7.5)
    fig.suptitle(f"{label(run)}, seed {run.seed}\nfirst 10 misclassified test images "
                 f"({wrong['errors']} errors, best epoch)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def misclassified_grids(artifacts_dir, groups, log):
    """One grid per run name (its lowest seed); returns the files written."""
    cache = {}
    written = []
    for name, runs in groups.items():
        run = runs[0]
        wrong_path = os.path.join(run.folder, "misclassified.json")
        if not os.path.exists(wrong_path):
            log(f"report: no misclassified.json in {os.path.basename(run.folder)}; grid skipped")
            continue
        f = run.flags
        key = (f["data_path"], f["train_limit"], f["test_limit"])
        try:
            if key not in cache:
                cache[key] = data.load(*key).raw_test_images()
        except KerasNormError as e:
            log(f"report: grid for {name} skipped: {e}")
            continue
        path = os.path.join(artifacts_dir, f"misclassified_{name}.png")
        plot_misclassified(path, run, cache[key], fileio.read_json(wrong_path))
        written.append(path)
    return written
