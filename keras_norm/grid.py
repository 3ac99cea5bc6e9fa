"""Norm x regularizer (`--suite=grid`): is a difference the norm's or the penalty's?

{bn, gn, ln, none} x {no penalty, L1, L2, L1+L2} at the main suite's strengths (L1 1e-5; L2 1e-3 as in
LN + L2; L1+L2 = 1e-5 + 1e-4 as in BN + L1 + L2), seeds 0-2, the main recipe, 20 epochs, op determinism,
two cells at a time, resumable. The main suite's four variants lie on this grid (BN + L1+L2, GN + L1,
LN + L2, none + none): those cells are the seeds suite's own runs (`artifacts/seeds/runs/`), trained there if
missing, so the grid trains 36 runs of its own.

Per cell: final test accuracy (mean, 95% CI), final test data loss, and the kernels' near-zero share, mean
|w| and L2 norm per layer. A norm after a convolution makes its output blind to the kernel's scale, so L2 on
that kernel cannot limit what it computes; it shrinks the kernel, and with it the kernel's gradient grows as
1/|w|: the effective step |lr * g| / |w| grows as 1/|w|^2. The per-layer ratio |g| / |w| at the last epoch
(from each run's inside.json) shows whether that happens. Writes `artifacts/grid.json`, `grid.md` (the
table) and `grid.png` (the heat map).
"""

import os

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_norm import fileio, inside, parallel  # noqa: E402
from keras_norm import seeds as seeds_suite  # noqa: E402
from keras_norm.report import stats, tables  # noqa: E402
from keras_norm.report.plots import save_figure  # noqa: E402
from keras_norm.run_folder import RunFolder  # noqa: E402

NORMS = ("bn", "gn", "ln", "none")
PENALTIES = {"none": dict(l1=0.0, l2=0.0), "L1": dict(l1=1e-5, l2=0.0), "L2": dict(l1=0.0, l2=1e-3),
             "L1+L2": dict(l1=1e-5, l2=1e-4)}
SEEDS = (0, 1, 2)


def configs(base, norms=NORMS, penalties=tuple(PENALTIES), seeds=SEEDS):
    """Every cell's runs, seed by seed (a stopped grid has whole seeds); a cell that is a variant of the seeds
    suite trains (or is found) in that suite's folder."""
    artifacts = base.outputs.artifacts_dir
    main = [(v["norm"], v["l1"], v["l2"]) for v in seeds_suite.VARIANTS]
    out = []
    for s in seeds:
        for norm in norms:
            for name in penalties:
                p = PENALTIES[name]
                folder = seeds_suite.suite_dir(artifacts) if (norm, p["l1"], p["l2"]) in main else \
                    os.path.join(artifacts, "grid")
                out.append(base.replace(norm=norm, seed=s, deterministic=True, artifacts_dir=folder, **p))
    return out


def penalty_name(learning):
    return next(n for n, p in PENALTIES.items() if (p["l1"], p["l2"]) == (learning.l1, learning.l2))


def cell_numbers(results):
    """A cell's per-seed numbers from its runs' metrics, history.json and inside.json."""
    out = {"final_test_accuracy": [tables.exact(r["final_test_accuracy"], r["dataset"]["test_size"]) for r in results],
           "final_test_xent": [r["final_test_xent"] for r in results],
           "near_zero_fraction": [r["weights"]["near_zero_fraction"] for r in results],
           "mean_abs_weight": [r["weights"]["mean_abs_weight"] for r in results]}
    kernels = [r["weights"]["kernel_l2_norm"] for r in results]
    out["kernel_l2_norm"] = {k: [w[k] for w in kernels] for k in kernels[0]}
    curves = [[tables.exact(e["test_accuracy"], r["dataset"]["test_size"]) for e in RunFolder(r["folder"]).history()]
              for r in results]
    if all(curves):
        out["test_accuracy_by_epoch"] = curves
    last = [RunFolder(r["folder"]).read(inside.FILE, {"epochs": []})["epochs"][-1:] for r in results]
    if all(last):
        out["relative_grad_last_epoch"] = {layer["layer"]: [round(row[0]["layers"][i]["grad_norm"]
                                                                 / row[0]["layers"][i]["kernel_norm"], 6) for row in last]
                                           for i, layer in enumerate(last[0][0]["layers"])}
    return out


def _pp(difference):
    """A difference of accuracies as [difference, low, high] in percentage points, or None."""
    return stats.difference_or_none(difference, scale=100)


def differences(accuracy, norms, penalties):
    """95% CIs (pp of test accuracy) that separate the norm from the penalty: each cell against its row's
    no-penalty cell and against its column's no-norm cell, and the main effects (a norm against another
    averaged over the penalties, a penalty against none averaged over the norms; `stats.contrast`)."""
    cell = lambda n, p: accuracy[n][p]  # noqa: E731
    others = lambda values, ref: [v for v in values if v != ref]  # noqa: E731
    norm_pairs = [(a, b) for i, a in enumerate(norms) for b in norms[i + 1:]]
    return {
        "penalty_minus_none": {n: {p: _pp(stats.welch(cell(n, p), cell(n, "none"))) for p in others(penalties, "none")}
                               for n in norms} if "none" in penalties else {},
        "norm_minus_none": {p: {n: _pp(stats.welch(cell(n, p), cell("none", p))) for n in others(norms, "none")}
                            for p in penalties} if "none" in norms else {},
        "main_effect_norm": {f"{a}-{b}": _pp(stats.contrast([(cell(a, p), cell(b, p)) for p in penalties]))
                             for a, b in norm_pairs},
        "main_effect_penalty": {f"{p}-none": _pp(stats.contrast([(cell(n, p), cell(n, "none")) for n in norms]))
                                for p in others(penalties, "none")} if "none" in penalties else {},
    }


def l2_effect(cells, norms, penalty="L2"):
    """Per norm and 3x3 convolution, L2's cell against the no-penalty cell (means over seeds): the ratio of
    the kernel norms r, of the data-loss gradient's |g|/|w| q, and r^-2, which q equals if the layer's output
    is blind to the kernel's scale (|g| ~ 1/|w|) and the rest of the function is unchanged."""
    ratio = lambda a, b: float(np.mean(a) / np.mean(b))  # noqa: E731
    out = {}
    for n in norms:
        plain, penalized = cells[n].get("none", {}), cells[n].get(penalty, {})
        if "relative_grad_last_epoch" not in plain or "relative_grad_last_epoch" not in penalized:
            continue
        out[n] = {}
        for layer in plain["relative_grad_last_epoch"]:
            kernel = f"{layer}/kernel"
            r = ratio(penalized["kernel_l2_norm"][kernel], plain["kernel_l2_norm"][kernel])
            q = ratio(penalized["relative_grad_last_epoch"][layer], plain["relative_grad_last_epoch"][layer])
            out[n][layer] = {"kernel_norm_ratio": round(r, 4), "relative_grad_ratio": round(q, 4),
                             "scale_invariant_prediction": round(r ** -2, 4)}
    return out


def summarize(todo, results, norms, penalties, seeds):
    runs = {}  # (norm, penalty) -> results in seed order
    for config, result in zip(todo, results):
        runs.setdefault((config.learning.norm, penalty_name(config.learning)), []).append(result)
    cells = {n: {p: cell_numbers(runs[(n, p)]) for p in penalties} for n in norms}
    grid = {"norms": list(norms), "penalties": list(penalties), "strengths": {p: PENALTIES[p] for p in penalties},
            "seeds": list(seeds), "epochs": todo[0].learning.epochs,
            "final_test_accuracy": {n: {p: cells[n][p]["final_test_accuracy"] for p in penalties} for n in norms},
            "ci95": {n: {p: stats.ci_or_none(cells[n][p]["final_test_accuracy"]) for p in penalties} for n in norms},
            "cells": cells}
    if all("test_accuracy_by_epoch" in cells[n][p] for n in norms for p in penalties):  # the middle of training
        grid["mid_epoch"] = max(1, grid["epochs"] // 2)
        grid["mid_test_accuracy"] = {n: {p: [c[grid["mid_epoch"] - 1] for c in cells[n][p]["test_accuracy_by_epoch"]]
                                         for p in penalties} for n in norms}
    accuracy = grid["final_test_accuracy"]
    grid["differences_ci95_pp"] = differences(accuracy, list(norms), list(penalties))
    grid["l2_effect"] = l2_effect(cells, norms) if {"none", "L2"} <= set(penalties) else {}
    return grid


def _mean(values, scale=1.0, digits=3):
    return f"{scale * np.mean(values):.{digits}f}"


def _range(per_layer, scale=1.0, digits=2):
    """min–max over layers of the per-layer means over seeds."""
    means = [scale * np.mean(v) for v in per_layer.values()]
    return f"{min(means):.{digits}f}–{max(means):.{digits}f}"


def _pp_text(entry):
    return "—" if entry is None else f"{entry[0]:+.3f} ({entry[1]:+.3f} to {entry[2]:+.3f})"


def markdown(grid):
    """grid.md: one row per cell (means over seeds), then the differences with their 95% CIs (pp)."""
    mid = grid.get("mid_epoch")
    lines = ["| norm | penalty | final test acc. (%) | 95% CI | test acc. at epoch " + f"{mid} (%) | final test data "
             "loss | near-zero weights (%) | mean abs(w) | 3x3 kernel norms | \\|g\\|/\\|w\\| (last epoch) |",
             "|---" * 10 + "|"]
    for n in grid["norms"]:
        for p in grid["penalties"]:
            cell, ci = grid["cells"][n][p], grid["ci95"][n][p]
            convs = {k: v for k, v in cell["kernel_l2_norm"].items() if k.startswith("conv")}
            relative = cell.get("relative_grad_last_epoch")
            lines.append(f"| {n} | {p} | {_mean(cell['final_test_accuracy'], 100)} | "
                         f"{'—' if ci is None else f'{100 * ci[0]:.3f}–{100 * ci[1]:.3f}'} | "
                         f"{_mean(grid['mid_test_accuracy'][n][p], 100, 2) if mid else '—'} | "
                         f"{_mean(cell['final_test_xent'], 1, 4)} | {_mean(cell['near_zero_fraction'], 100, 2)} | "
                         f"{_mean(cell['mean_abs_weight'])} | {_range(convs)} | "
                         f"{_range(relative, digits=3) if relative else '—'} |")
    lines += ["", "Differences of final test accuracy, pp (95% CI; a difference is real when its CI excludes 0):", "",
              "| comparison | difference (95% CI) |", "|---|---|"]
    lines += [f"| {label} | {_pp_text(entry)} |" for label, entry in _difference_rows(grid["differences_ci95_pp"])]
    return "\n".join(lines) + "\n"


def _difference_rows(differences):
    """(label, [difference, low, high]) for grid.md, main effects first."""
    no = lambda name, what: f"no {what}" if name == "none" else name  # noqa: E731
    for pair, entry in differences["main_effect_norm"].items():
        a, b = pair.split("-")
        yield f"{no(a, 'norm')} − {no(b, 'norm')}, mean over the penalties", entry
    for pair, entry in differences["main_effect_penalty"].items():
        yield f"{pair.split('-')[0]} − no penalty, mean over the norms", entry
    for norm, row in differences["penalty_minus_none"].items():
        yield from ((f"{no(norm, 'norm')}: {p} − no penalty", entry) for p, entry in row.items())
    for penalty, row in differences["norm_minus_none"].items():
        yield from ((f"{no(penalty, 'penalty')}: {n} − no norm", entry) for n, entry in row.items())


def _heat_map(ax, grid, accuracy, title, intervals=None):
    norms, penalties = grid["norms"], grid["penalties"]
    acc = np.array([[100 * np.mean(accuracy[n][p]) for p in penalties] for n in norms])
    image = ax.imshow(acc, cmap="viridis")
    for i, n in enumerate(norms):
        for j, p in enumerate(penalties):
            interval = intervals and intervals[n][p]
            ci = f"\n{100 * interval[0]:.2f}–{100 * interval[1]:.2f}" if interval else ""
            ax.text(j, i, f"{acc[i, j]:.2f}{ci}", ha="center", va="center", fontsize=8,
                    color="white" if acc[i, j] < acc.mean() else "black")
    ax.set_xticks(range(len(penalties)), penalties)
    ax.set_yticks(range(len(norms)), norms)
    ax.set_xlabel("penalty")
    ax.set_ylabel("norm")
    ax.set_title(title, fontsize=9)
    return image


def plot(grid, path):
    """The heat map of final test accuracy (95% CI below each mean), and beside it the middle of training."""
    panels = [(grid["final_test_accuracy"], f"Final test accuracy (%), mean of seeds "
               f"{', '.join(map(str, grid['seeds']))} (95% CI below)", grid["ci95"])]
    if "mid_test_accuracy" in grid:
        panels.append((grid["mid_test_accuracy"], f"Test accuracy (%) at epoch {grid['mid_epoch']} of "
                       f"{grid['epochs']}, mean of seeds", None))
    n_norms, n_penalties = len(grid["norms"]), len(grid["penalties"])
    fig, axes = plt.subplots(1, len(panels), figsize=(len(panels) * (1.3 * n_penalties + 1.5), 0.9 * n_norms + 1.4),
                             squeeze=False, layout="constrained")
    for ax, (accuracy, title, intervals) in zip(axes[0], panels):
        fig.colorbar(_heat_map(ax, grid, accuracy, title, intervals), ax=ax, shrink=0.8)
    save_figure(fig, path, layout=False)  # laid out already ("constrained": colorbars included)


def run(base, options, log=print, norms=NORMS, penalties=tuple(PENALTIES), seeds=SEEDS):
    artifacts = base.outputs.artifacts_dir
    fileio.check_writable(os.path.join(artifacts, "grid"))
    todo = configs(base, norms, penalties, seeds)
    log(f"suite grid: {len(todo)} runs ({len(norms)} norms x {len(penalties)} penalties x {len(seeds)} seeds)")
    results, wall = parallel.train_checked("grid", todo, options.jobs)
    grid = dict(summarize(todo, results, norms, penalties, seeds), wall_seconds=wall)
    fileio.write_json(os.path.join(artifacts, "grid.json"), grid)
    fileio.write_text(os.path.join(artifacts, "grid.md"), markdown(grid))
    plot(grid, os.path.join(artifacts, "grid.png"))
    log(f"suite grid: done in {grid['wall_seconds'] / 60:.1f} min")
    return grid
