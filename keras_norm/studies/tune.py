"""How the recipe was chosen (`--suite=tune`): a 2x2 grid of peak learning rate x dropout, judged on the
validation split only.

Each recipe trains the three normalized variants of the main suite (seed 0, op determinism, 20 epochs); the
rule, fixed before any run: the recipe with the highest mean final-epoch **validation** accuracy over
bn/gn/ln wins; the current recipe stays unless another beats it. The test set is evaluated by every run (it
is in their histories) but this module never reads it. Writes `artifacts/tune.json`; the runs live in
`artifacts/tune/runs/` under fixed names, so the suite resumes whatever the defaults are.
"""

import os

import numpy as np

from keras_norm import fileio, parallel
from keras_norm.studies.seeds import VARIANTS

LRS = (0.05, 0.1)  # peak of the one-cycle schedule; 0.05 is the recipe before tuning
DROPOUTS = (0.05, 0.0)  # after the pooling and the global average pooling; 0.05 before tuning
BEFORE = dict(lr=0.05, dropout=0.05)
SEED = 0
NORMED = tuple(v for v in VARIANTS if v["norm"] != "none")


def recipes(lrs=LRS, dropouts=DROPOUTS):
    return [dict(lr=lr, dropout=d) for lr in lrs for d in dropouts]


def run_name(recipe, variant):
    return f"tune_lr-{recipe['lr']:g}_dropout-{recipe['dropout']:g}_{variant['norm']}"


def configs(base, lrs=LRS, dropouts=DROPOUTS):
    folder = os.path.join(base.outputs.artifacts_dir, "tune")
    return [base.replace(seed=SEED, deterministic=True, artifacts_dir=folder, run_name=run_name(r, v), **r, **v)
            for r in recipes(lrs, dropouts) for v in NORMED]


def summarize(results, lrs=LRS, dropouts=DROPOUTS):
    """tune.json's content from the runs' metrics (validation numbers only)."""
    rows = []
    for i, recipe in enumerate(recipes(lrs, dropouts)):
        mine = results[i * len(NORMED):(i + 1) * len(NORMED)]
        val = {v["norm"]: m["final_val_accuracy"] for v, m in zip(NORMED, mine)}
        rows.append(dict(recipe, final_val_accuracy=val, mean_final_val_accuracy=round(float(np.mean(
            list(val.values()))), 5)))
    best = max(rows, key=lambda r: r["mean_final_val_accuracy"])
    before = next(r for r in rows if all(r[k] == v for k, v in BEFORE.items()))
    chosen = best if best["mean_final_val_accuracy"] > before["mean_final_val_accuracy"] else before
    return {"seed": SEED, "epochs": results[0]["epochs"], "val_size": results[0]["dataset"]["val_size"],
            "rule": "highest mean final-epoch validation accuracy over bn/gn/ln; the recipe before tuning "
                    "unless another beats it", "recipes": rows,
            "chosen": {k: chosen[k] for k in BEFORE}}


def run(base, options, log=print, lrs=LRS, dropouts=DROPOUTS):
    todo = configs(base, lrs, dropouts)
    fileio.check_writable(os.path.join(base.outputs.artifacts_dir, "tune"))
    log(f"suite tune: {len(todo)} runs ({len(recipes(lrs, dropouts))} recipes x bn/gn/ln, seed {SEED})")
    results, wall = parallel.train_checked("tune", todo, options.jobs)
    summary = dict(summarize(results, lrs, dropouts), wall_seconds=wall)
    fileio.write_json(os.path.join(base.outputs.artifacts_dir, "tune.json"), summary)
    log(f"suite tune: chosen {summary['chosen']}")
    return summary
