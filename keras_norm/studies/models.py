"""The trained models the evaluation suites read, by where they came from ("source"):

- `seeds`: the seeds suite's runs (BN + L1 + L2, GN + L1, LN + L2, no norm; the penalties as assigned);
- `fair`: the fair comparison's runs, all without a penalty (BN, GN with 4 groups, LN, and no norm at its chosen
  peak learning rate), wherever the suite that trained them keeps them (fair/, grid/ and seeds/ under artifacts/).

Only finished runs that kept their `model.keras` (the validation-best weights; not committed) count. Each source is
{norm: [(seed, run folder)]}, sorted by seed.
"""

import glob
import os

from keras_norm import fileio
from keras_norm.config import DEFAULT_GROUPS, Learning
from keras_norm.run_folder import RunFolder, run_dir

FAIR_NORMS = ("bn", "gn", "ln", "none")
FAIR_PLACES = ("fair", "grid", "seeds")  # the fair suite's runs, and those of the suites it found them in


def _finished(path):
    """(metrics, flags) of a finished run with a model.keras, else None."""
    folder = RunFolder(path)
    metrics = folder.finished_metrics()
    if not metrics or not os.path.exists(folder.file("model.keras")):
        return None
    return metrics, folder.read("config.json", {}).get("flags", {})


def _runs(pattern):
    for path in sorted(glob.glob(pattern)):
        found = _finished(path)
        if found:
            yield path, *found


def seeds_models(artifacts_dir):
    out = {}
    for path, metrics, _ in _runs(os.path.join(artifacts_dir, "seeds", "runs", "*")):
        out.setdefault(metrics["norm"], []).append((metrics["seed"], path))
    return {norm: sorted(runs) for norm, runs in out.items()}


def is_fair_cell(flags, peak_lr):
    """No penalty, the plain layer of each norm (GN with its default groups, LN as one group, no renorm or weight
    standardization), the recipe's batch, and the peak learning rate the fair comparison trains that norm at."""
    norm = flags.get("norm")
    return (norm in FAIR_NORMS and flags.get("l1") == 0.0 and flags.get("l2") == 0.0
            and not flags.get("renorm") and not flags.get("weight_standardization")
            and (norm != "gn" or flags.get("groups") == DEFAULT_GROUPS) and flags.get("ln_impl", "group") == "group"
            and flags.get("batch_size") == Learning().batch_size and flags.get("lr") == peak_lr.get(norm))


def fair_models(artifacts_dir):
    fair = fileio.read_json(os.path.join(artifacts_dir, "fair.json")) if os.path.exists(
        os.path.join(artifacts_dir, "fair.json")) else {}
    peak_lr = fair.get("peak_lr") or {n: Learning().lr for n in FAIR_NORMS}
    cells = {}
    for place in FAIR_PLACES:
        for path, metrics, flags in _runs(os.path.join(artifacts_dir, place, "runs", "*")):
            if is_fair_cell(flags, peak_lr):
                cells.setdefault((metrics["norm"], metrics["seed"]), path)  # one run per cell
    out = {}
    for (norm, seed), path in sorted(cells.items()):
        out.setdefault(norm, []).append((seed, path))
    return out


def sources(artifacts_dir):
    """{"seeds": {...}, "fair": {...}} without the empty ones."""
    found = {"seeds": seeds_models(artifacts_dir), "fair": fair_models(artifacts_dir)}
    return {name: models for name, models in found.items() if models}


def groups_models(base):
    """{variant: [(seed, run folder)]} of the group-count suite's cells that kept a model.keras (gn1 and gn4 are
    the fair comparison's LN and GN runs)."""
    from keras_norm.studies import groups

    out = {}
    for variant in groups.VARIANTS:
        for seed in groups.SEEDS:
            path = run_dir(groups.cell(base, variant, seed))
            if _finished(path):
                out.setdefault(variant, []).append((seed, path))
    return out
