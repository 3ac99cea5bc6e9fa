"""The worked example: BN, LN and GN computed by hand on a random batch of four 2x2 images.

For a batch x of shape (N=4, H=2, W=2, C=4) each method computes, for every set S of values that
share a statistic, mean = sum(S)/|S|, var = sum((s - mean)^2)/|S| (biased) and
y = (x - mean) / sqrt(var + eps) (gamma = 1, beta = 0):

* BN: one set per channel c: x[:, :, :, c]                    -> C = 4 means/variances
* LN: one set per example n: x[n]                             -> N = 4
* GN (G = 2): one set per example n and group g: x[n, :, :, 2g:2g+2] -> N*G = 8

The NumPy results are checked against Keras's own layers, `keras.layers.BatchNormalization`,
`keras.layers.LayerNormalization(axis=(1, 2, 3))` and `keras.layers.GroupNormalization` (LN also as
`GroupNormalization(groups=1)`, the spelling the model uses); a mismatch above 1e-5 is an error.
"""

import os

import keras
import numpy as np

from keras_norm import fileio
from keras_norm.errors import KerasNormError
from keras_norm.model import EPSILON
from keras_norm.plotting import plt

SHAPE = (4, 2, 2, 4)  # N, H, W, C
GN_GROUPS = 2
TOLERANCE = 1e-5


def random_batch(seed):
    """Values rounded to one decimal, so a reader can follow the arithmetic by hand."""
    return np.round(np.random.default_rng(seed).normal(0.0, 2.0, SHAPE), 1) + 0.0  # + 0.0: no -0.0


def statistic_sets(method):
    """[(label, index)] where x[index] are the values of one statistic."""
    n, _, _, c = SHAPE
    if method == "BN":
        return [(f"channel c{k + 1}", (slice(None), slice(None), slice(None), k)) for k in range(c)]
    if method == "LN":
        return [(f"example n{i + 1}", (i,)) for i in range(n)]
    if method == "GN":
        per = c // GN_GROUPS
        return [(f"n{i + 1}, group g{g + 1} (c{g * per + 1}-c{g * per + per})",
                 (i, slice(None), slice(None), slice(g * per, (g + 1) * per)))
                for i in range(n) for g in range(GN_GROUPS)]
    raise ValueError(method)


def normalize(x, method, eps=EPSILON):
    """Returns (y, stats): stats holds (label, values, mean, var) for each statistic."""
    y = np.empty_like(x, dtype=np.float64)
    stats = []
    for name, idx in statistic_sets(method):
        values = x[idx].astype(np.float64)
        mean = values.mean()
        var = ((values - mean) ** 2).mean()
        y[idx] = (values - mean) / np.sqrt(var + eps)
        stats.append((name, values.ravel(), mean, var))
    return y, stats


def keras_outputs(x, eps=EPSILON):
    """The same batch through Keras's own layers (BN in training mode: batch statistics)."""
    layers = {
        "BN (BatchNormalization)": keras.layers.BatchNormalization(epsilon=eps),
        "LN (LayerNormalization)": keras.layers.LayerNormalization(axis=(1, 2, 3), epsilon=eps),
        "LN (GroupNormalization, groups=1)": keras.layers.GroupNormalization(groups=1, epsilon=eps),
        "GN (GroupNormalization)": keras.layers.GroupNormalization(groups=GN_GROUPS, epsilon=eps),
    }
    return {name: np.asarray(layer(x.astype("float32"), training=True)) for name, layer in layers.items()}


def check_against_keras(x, results):
    """Max |NumPy - Keras| per layer; raises KerasNormError above TOLERANCE."""
    diffs = {}
    for name, y_keras in keras_outputs(x).items():
        y_numpy = results[name.split(" ")[0]][0]  # "LN (...)" -> the NumPy LN
        diffs[name] = float(np.max(np.abs(y_numpy - y_keras)))
        if diffs[name] > TOLERANCE:
            raise KerasNormError(f"{name}: NumPy and Keras differ by {diffs[name]:.2e} (> {TOLERANCE})")
    return diffs


def _cell(x, i, k, digits):
    v = x[i, :, :, k]
    f = f"{{:.{digits}f}}"
    return " / ".join(" ".join(f.format(a) for a in row) for row in v)


def _batch_table(x, digits):
    n, _, _, c = x.shape
    lines = ["| example | " + " | ".join(f"c{k + 1}" for k in range(c)) + " |", "|---" * (c + 1) + "|"]
    for i in range(n):
        lines.append(f"| n{i + 1} | " + " | ".join(_cell(x, i, k, digits) for k in range(c)) + " |")
    return lines


def markdown(seed, x, results, diffs):
    lines = [
        f"# BN, LN and GN on a random batch (seed {seed})",
        "",
        f"Regenerate: `python main.py --explain --seed={seed}`. Batch shape (N, H, W, C) = {SHAPE}; "
        f"eps = {EPSILON:g}, gamma = 1, beta = 0, biased variance. Each cell is one 2x2 image channel, "
        "written `row 1 / row 2`.",
        "",
        "## Input batch",
        "",
        *_batch_table(x, 1),
    ]
    counts = {"BN": "C = 4 (one per channel, shared by the whole batch)",
              "LN": "N = 4 (one per example)",
              "GN": f"N x G = 8 (one per example and group of {SHAPE[3] // GN_GROUPS} channels)"}
    for method in ("BN", "LN", "GN"):
        y, stats = results[method]
        name, values, mean, var = stats[0]
        lines += [
            "",
            f"## {method}: {counts[method]} means and variances",
            "",
            f"Worked for {name}: mean = ({' + '.join(f'{v:g}' if v >= 0 else f'({v:g})' for v in values)}) / {len(values)} = {mean:.4f}; "
            f"var = mean of squared deviations = {var:.4f}; "
            f"first value: ({values[0]:g} - ({mean:.4f})) / sqrt({var:.4f} + {EPSILON:g}) = "
            f"{(values[0] - mean) / np.sqrt(var + EPSILON):.4f}.",
            "",
            "| statistic over | values | mean | variance |",
            "|---|---|---|---|",
        ]
        for name, values, mean, var in stats:
            lines.append(f"| {name} | {len(values)} | {mean:.4f} | {var:.4f} |")
        lines += ["", f"{method} output (x - mean) / sqrt(var + eps):", "", *_batch_table(y, 2)]
    lines += ["", "## Checked against Keras", "",
              "| Keras layer | max abs difference to the NumPy values above |", "|---|---|"]
    lines += [f"| {name} | {d:.1e} |" for name, d in diffs.items()]
    return "\n".join(lines) + "\n"


def _draw_cells(ax, x, owner):
    """Every value as a square, coloured by the statistic it belongs to."""
    n, h, w, c = SHAPE
    cmap = plt.get_cmap("tab10")
    for i, k, a, b in np.ndindex(n, c, h, w):
        x0, y0 = k * (w + 0.6) + b, -(i * (h + 0.6) + a)
        ax.add_patch(plt.Rectangle((x0, y0 - 1), 1, 1, fc=cmap(owner[i, a, b, k] % 10), alpha=0.45, ec="white",
                                   lw=1.5))
        ax.text(x0 + 0.5, y0 - 0.5, f"{x[i, a, b, k]:.1f}", ha="center", va="center", fontsize=9)


def figure(path, x, seed):
    """The batch as an N x C grid of 2x2 cells, coloured by the statistic each value belongs to."""
    n, h, w, c = SHAPE
    fig, axes = plt.subplots(3, 1, figsize=(6.5, 15))  # stacked: readable at README width
    for ax, method in zip(axes, ("BN", "LN", "GN")):
        sets = statistic_sets(method)
        owner = np.zeros(SHAPE, int)
        for s, (_, idx) in enumerate(sets):
            owner[idx] = s
        _draw_cells(ax, x, owner)
        for k in range(c):
            ax.text(k * (w + 0.6) + 1, 0.4, f"c{k + 1}", ha="center", fontsize=9)
        for i in range(n):
            ax.text(-0.5, -(i * (h + 0.6) + 1), f"n{i + 1}", ha="right", va="center", fontsize=9)
        ax.set_xlim(-1.3, c * (w + 0.6))
        ax.set_ylim(-n * (h + 0.6), 1)
        ax.set_aspect("equal")
        ax.axis("off")
        what = {"BN": "per channel over (N, H, W)", "LN": "per example over (H, W, C)",
                "GN": f"per example and group over (H, W, C/{GN_GROUPS})"}[method]
        ax.set_title(f"{method}: {len(sets)} means/variances\n{what}", fontsize=10)
    fig.suptitle(f"Which values share a mean and variance (same colour)\n"
                 f"a batch of N=4 images, 2x2 pixels, C=4 channels (seed {seed})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def explain(seed):
    """Returns (batch, {method: (y, stats)}, {keras layer: max diff})."""
    x = random_batch(seed)
    results = {m: normalize(x, m) for m in ("BN", "LN", "GN")}
    return x, results, check_against_keras(x, results)


def main(seed, artifacts_dir):
    """Computes, checks, writes the Markdown and the figure; returns the Markdown."""
    fileio.check_writable(artifacts_dir)
    x, results, diffs = explain(seed)
    text = markdown(seed, x, results, diffs)
    figure(os.path.join(artifacts_dir, "normalization_example.png"), x, seed)
    fileio.write_text(os.path.join(artifacts_dir, "normalization_example.md"), text)
    return text
