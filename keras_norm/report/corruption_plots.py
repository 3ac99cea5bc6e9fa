"""MNIST-C's figures: test error per corruption and variant, and a gallery of digits under every corruption."""

import numpy as np

from keras_norm import corruptions
from keras_norm.plotting import plt
from keras_norm.report import stats
from keras_norm.report.plots import save_figure

NAMES = {"bn": "BN (frozen)", "gn": "GN", "ln": "LN", "none": "no norm"}
SOURCES = {"seeds": "seeds suite (BN+L1+L2, GN+L1, LN+L2, no norm)", "fair": "no penalty (the fair comparison)"}


def label(variant):
    """The legend's name of a variant ("bn", "bn adapted (all)", "bn adapted (256)", "gn", ...)."""
    if " adapted (" in variant:
        return f"BN adapted on {variant.split('(')[1].rstrip(')')} images"
    return NAMES.get(variant, variant)


def _panel(ax, result, source, rng):
    columns = ["clean"] + list(result["corruptions"])
    rows = [result["clean"]] + [result["corruptions"][c] for c in columns[1:]]
    keys = [k for k in result["clean"] if k.startswith(source + "/")]
    for i, key in enumerate(keys):
        offset = (i - (len(keys) - 1) / 2) * 0.13
        errors = [100 * (1 - np.asarray(row[key])) for row in rows]
        cells = [stats.bounded_ci(e) for e in errors]
        means = np.array([m for m, _ in cells])
        ci = np.array([c if not np.isnan(c[0]) else (m, m) for m, c in cells])
        xs = np.arange(len(columns)) + offset
        ax.errorbar(xs, means, yerr=[means - ci[:, 0], ci[:, 1] - means], fmt="o", ms=4, capsize=2, color=f"C{i}",
                    label=label(key.split("/", 1)[1]))
        for x, e in zip(xs, errors):
            ax.scatter(x + rng.uniform(-0.03, 0.03, len(e)), e, s=5, alpha=0.35, color=f"C{i}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(columns)), [c.replace("_", " ") for c in columns], rotation=35, ha="right")
    ax.set_ylabel("test error (%), log scale")
    seeds = sorted({len(v) for k, v in result["seeds"].items() if k.startswith(source + "/")})
    ax.set_title(f"{SOURCES.get(source, source)}: {'/'.join(map(str, seeds))} seeds per norm", fontsize=10)
    ax.grid(alpha=0.3, which="both", axis="y")
    ax.legend(fontsize=7, ncol=3, loc="lower right")


def plot(result, path):
    """One panel per source: error (%) on the clean and each corrupted test set; dots = seeds, marker = mean,
    bars = 95% interval (t on the logit scale)."""
    sources = [s for s in SOURCES if any(k.startswith(s + "/") for k in result["clean"])]
    fig, axes = plt.subplots(len(sources), 1, figsize=(13, 4.6 * len(sources)), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, source in zip(axes[:, 0], sources):
        _panel(ax, result, source, rng)
    fig.suptitle("MNIST-C: test error per corruption (validation-best models, no retraining); dots = seeds, "
                 "marker = mean, bars = 95% interval", fontsize=11)
    save_figure(fig, path, dpi=120)


def plot_gallery(images, path):
    """Each digit of `images` ([0, 1], (n, 28, 28)) clean and under every corruption, one row per digit."""
    names = ["clean"] + list(corruptions.CORRUPTIONS)
    fig, axes = plt.subplots(len(images), len(names), figsize=(1.05 * len(names), 1.25 * len(images) + 0.4),
                             squeeze=False)
    for ax_column, name in zip(axes.T, names):
        shown = images if name == "clean" else corruptions.corrupted(images, name)
        for j, ax in enumerate(ax_column):
            ax.imshow(shown[j], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_title(name.replace("_", "\n"), fontsize=8)
    fig.suptitle("MNIST-C's 15 corruptions (the suite's fixed draw), on test digits", fontsize=10)
    save_figure(fig, path, dpi=110)
