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
(from each run's inside.json) shows whether that happens. Writes `artifacts/grid.json`, and from it
(keras_norm/report/grid.py) `grid.md` (the table) and `grid.png` (the heat maps).
"""

import os

import numpy as np

from keras_norm import fileio, layer_stats, parallel
from keras_norm.report import grid as grid_report
from keras_norm.report import stats, tables
from keras_norm.run_folder import RunFolder
from keras_norm.studies import seeds as seeds_suite

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
    last = [RunFolder(r["folder"]).read(layer_stats.FILE, {"epochs": []})["epochs"][-1:] for r in results]
    if all(last):
        out["relative_grad_last_epoch"] = {layer["layer"]: [round(row[0]["layers"][i]["grad_norm"]
                                                                 / row[0]["layers"][i]["kernel_norm"], 6) for row in last]
                                           for i, layer in enumerate(last[0][0]["layers"])}
    return out


def _family(tests):
    """One family of the grid's differences of accuracies, in percentage points, under Holm's rule."""
    return stats.holm_rows(tests, scale=100, digits=3)


def _bounded(accuracies):
    """[low, high] of the mean accuracy's 95% interval, inside [0, 1] (logit t, `stats.bounded_ci`), or None."""
    if len(accuracies) < 2:
        return None
    return [round(v, 6) for v in stats.bounded_ci(accuracies, 0.0, 1.0)[1]]


def differences(accuracy, norms, penalties):
    """The differences (pp of test accuracy) that separate the norm from the penalty, in four families, each under
    Holm's rule: each cell against its row's no-penalty cell and against its column's no-norm cell (Welch), and
    the main effects (a norm against another averaged over the penalties, a penalty against none averaged over
    the norms; `stats.contrast_test`)."""
    cell = lambda n, p: accuracy[n][p]  # noqa: E731
    others = lambda values, ref: [v for v in values if v != ref]  # noqa: E731
    norm_pairs = [(a, b) for i, a in enumerate(norms) for b in norms[i + 1:]]
    out = {"main_effect_norm": _family({f"{a}-{b}": stats.contrast_test([(cell(a, p), cell(b, p)) for p in penalties])
                                        for a, b in norm_pairs})}
    if "none" in penalties:
        out["main_effect_penalty"] = _family({f"{p}-none": stats.contrast_test([(cell(n, p), cell(n, "none"))
                                                                                 for n in norms])
                                              for p in others(penalties, "none")})
        out["penalty_minus_none"] = _family({f"{n}: {p}": stats.welch_test(cell(n, p), cell(n, "none"))
                                             for n in norms for p in others(penalties, "none")})
    if "none" in norms:
        out["norm_minus_none"] = _family({f"{p}: {n}": stats.welch_test(cell(n, p), cell("none", p))
                                          for p in penalties for n in others(norms, "none")})
    return out


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
            "ci95_logit": {n: {p: _bounded(cells[n][p]["final_test_accuracy"]) for p in penalties} for n in norms},
            "cells": cells}
    if all("test_accuracy_by_epoch" in cells[n][p] for n in norms for p in penalties):  # the middle of training
        grid["mid_epoch"] = max(1, grid["epochs"] // 2)
        grid["mid_test_accuracy"] = {n: {p: [c[grid["mid_epoch"] - 1] for c in cells[n][p]["test_accuracy_by_epoch"]]
                                         for p in penalties} for n in norms}
    accuracy = grid["final_test_accuracy"]
    grid["differences"] = differences(accuracy, list(norms), list(penalties))
    grid["comparison_rule"] = ("four families (main effects of the norm, of the penalty; each penalty against none "
                               "per norm; each norm against none per penalty), each under Holm's step-down rule; "
                               "real when p_holm < 0.05")
    grid["l2_effect"] = l2_effect(cells, norms) if {"none", "L2"} <= set(penalties) else {}
    return grid


def run(base, options, log=print, norms=NORMS, penalties=tuple(PENALTIES), seeds=SEEDS):
    artifacts = base.outputs.artifacts_dir
    fileio.check_writable(os.path.join(artifacts, "grid"))
    todo = configs(base, norms, penalties, seeds)
    log(f"suite grid: {len(todo)} runs ({len(norms)} norms x {len(penalties)} penalties x {len(seeds)} seeds)")
    results, wall = parallel.train_checked("grid", todo, options.jobs)
    grid = dict(summarize(todo, results, norms, penalties, seeds), wall_seconds=wall)
    fileio.write_json(os.path.join(artifacts, "grid.json"), grid)
    fileio.write_text(os.path.join(artifacts, "grid.md"), grid_report.markdown(grid))
    grid_report.plot(grid, os.path.join(artifacts, "grid.png"))
    log(f"suite grid: done in {grid['wall_seconds'] / 60:.1f} min")
    return grid


def replot(base, options, log=print):
    """Redraws grid.png and grid.md from grid.json (no runs needed)."""
    artifacts = base.outputs.artifacts_dir
    grid = fileio.read_json(os.path.join(artifacts, "grid.json"))
    fileio.write_text(os.path.join(artifacts, "grid.md"), grid_report.markdown(grid))
    grid_report.plot(grid, os.path.join(artifacts, "grid.png"))
    log(f"suite grid: table and figure redrawn from {os.path.join(artifacts, 'grid.json')}")
