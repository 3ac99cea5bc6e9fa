"""The norm x regularizer grid's table and figure (`--suite=grid`, keras_norm/studies/grid.py), from grid.json's content.

`markdown(grid)`: grid.md, one row per cell (means over seeds) and every difference with its 95% CI;
`plot(grid, path)`: grid.png, the heat map of final test accuracy and, beside it, the middle of training.
"""

import numpy as np

from keras_norm.plotting import plt
from keras_norm.report.plots import save_figure


def _mean(values, scale=1.0, digits=3):
    return f"{scale * np.mean(values):.{digits}f}"


def _range(per_layer, scale=1.0, digits=2):
    """min–max over layers of the per-layer means over seeds."""
    means = [scale * np.mean(v) for v in per_layer.values()]
    return f"{min(means):.{digits}f}–{max(means):.{digits}f}"


def _pp_text(entry):
    if entry["difference_pp"] is None or entry["p"] is None:
        return "— | — | — | too few seeds"
    (low, high), verdict = entry["ci95_pp"], "**real**" if entry["real"] else "not distinguishable"
    return (f"{entry['difference_pp']:+.3f} ({low:+.3f} to {high:+.3f}) | {entry['p']:.4f} | {entry['p_holm']:.4f} | "
            f"{verdict}")


def markdown(grid):
    """grid.md: one row per cell (means over seeds), then the differences with their 95% CIs (pp)."""
    mid = grid.get("mid_epoch")
    lines = ["| norm | penalty | final test acc. (%) | 95% CI | test acc. at epoch " + f"{mid} (%) | final test data "
             "loss | near-zero weights (%) | mean abs(w) | 3x3 kernel norms | \\|g\\|/\\|w\\| (last epoch) |",
             "|---" * 10 + "|"]
    for n in grid["norms"]:
        for p in grid["penalties"]:
            cell, ci = grid["cells"][n][p], grid["ci95_logit"][n][p]
            convs = {k: v for k, v in cell["kernel_l2_norm"].items() if k.startswith("conv")}
            relative = cell.get("relative_grad_last_epoch")
            lines.append(f"| {n} | {p} | {_mean(cell['final_test_accuracy'], 100)} | "
                         f"{'—' if ci is None else f'{100 * ci[0]:.3f}–{100 * ci[1]:.3f}'} | "
                         f"{_mean(grid['mid_test_accuracy'][n][p], 100, 2) if mid else '—'} | "
                         f"{_mean(cell['final_test_xent'], 1, 4)} | {_mean(cell['near_zero_fraction'], 100, 2)} | "
                         f"{_mean(cell['mean_abs_weight'])} | {_range(convs)} | "
                         f"{_range(relative, digits=3) if relative else '—'} |")
    lines += ["", "95% CI of a cell: Student's t on the logit of the accuracies (inside [0, 100]).", "",
              "Differences of final test accuracy, pp, with their 95% CI (Welch; the main effects: Welch-Satterthwaite "
              "over the blocks) and p. Each of the four groups below is one family under Holm's rule: a difference "
              "is real when its Holm-adjusted p is below 0.05.", "",
              "| comparison | difference (95% CI) | p | p (Holm, its family) | verdict |", "|---|---|---|---|---|"]
    lines += [f"| {label} | {_pp_text(entry)} |" for label, entry in _difference_rows(grid["differences"])]
    return "\n".join(lines) + "\n"


def _difference_rows(differences):
    """(label, entry) for grid.md, family by family, main effects first."""
    no = lambda name, what: f"no {what}" if name == "none" else name  # noqa: E731
    for pair, entry in differences["main_effect_norm"].items():
        a, b = pair.split("-")
        yield f"{no(a, 'norm')} − {no(b, 'norm')}, mean over the penalties", entry
    for pair, entry in differences.get("main_effect_penalty", {}).items():
        yield f"{pair.split('-')[0]} − no penalty, mean over the norms", entry
    for key, entry in differences.get("penalty_minus_none", {}).items():
        norm, penalty = key.split(": ")
        yield f"{no(norm, 'norm')}: {penalty} − no penalty", entry
    for key, entry in differences.get("norm_minus_none", {}).items():
        penalty, norm = key.split(": ")
        yield f"{no(penalty, 'penalty')}: {norm} − no norm", entry


def _colour_range(acc, intervals, norms, penalties):
    """The colours span the cells' 95% intervals (or, without them, at least 1 pp around the means), so that
    differences inside the seed noise do not look large."""
    if intervals and all(intervals[n][p] for n in norms for p in penalties):
        return (100 * min(intervals[n][p][0] for n in norms for p in penalties),
                100 * max(intervals[n][p][1] for n in norms for p in penalties))
    middle, half = (acc.max() + acc.min()) / 2, max(0.5, (acc.max() - acc.min()) / 2)
    return middle - half, middle + half


def _heat_map(ax, grid, accuracy, title, intervals=None):
    norms, penalties = grid["norms"], grid["penalties"]
    acc = np.array([[100 * np.mean(accuracy[n][p]) for p in penalties] for n in norms])
    low, high = _colour_range(acc, intervals, norms, penalties)
    image = ax.imshow(acc, cmap="viridis", vmin=low, vmax=high)
    for i, n in enumerate(norms):
        for j, p in enumerate(penalties):
            interval = intervals and intervals[n][p]
            ci = f"\n{100 * interval[0]:.2f}–{100 * interval[1]:.2f}" if interval else ""
            ax.text(j, i, f"{acc[i, j]:.2f}{ci}", ha="center", va="center", fontsize=8,
                    color="white" if acc[i, j] < (low + high) / 2 else "black")
    ax.set_xticks(range(len(penalties)), penalties)
    ax.set_yticks(range(len(norms)), norms)
    ax.set_xlabel("penalty")
    ax.set_ylabel("norm")
    ax.set_title(title, fontsize=9)
    return image


def plot(grid, path):
    """The heat map of final test accuracy (95% CI below each mean), and beside it the middle of training."""
    panels = [(grid["final_test_accuracy"], f"Final test accuracy (%), mean of seeds "
               f"{', '.join(map(str, grid['seeds']))} (95% CI, logit t, below;\ncolours span the cells' intervals)",
               grid["ci95_logit"])]
    if "mid_test_accuracy" in grid:
        panels.append((grid["mid_test_accuracy"], f"Test accuracy (%) at epoch {grid['mid_epoch']} of "
                       f"{grid['epochs']}, mean of seeds", None))
    n_norms, n_penalties = len(grid["norms"]), len(grid["penalties"])
    fig, axes = plt.subplots(1, len(panels), figsize=(len(panels) * (1.3 * n_penalties + 1.5), 0.9 * n_norms + 1.4),
                             squeeze=False, layout="constrained")
    for ax, (accuracy, title, intervals) in zip(axes[0], panels):
        fig.colorbar(_heat_map(ax, grid, accuracy, title, intervals), ax=ax, shrink=0.8, label="test accuracy (%)")
    save_figure(fig, path, layout=False)  # laid out already ("constrained": colorbars included)
