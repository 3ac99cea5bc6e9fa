"""How many groups (`--suite=groups`): group normalization with 1 (= LN), 2, 4 and 8 groups, instance
normalization (one channel per group) and Keras's per-activation `LayerNormalization`, without a penalty, the
main recipe, 20 epochs, 5 seeds each.

GN's statistics are shared by the C/G channels of a group (every normalized layer here has 8 or 16 channels):
1 group is layer normalization's statistics, C groups instance normalization's. Wu & He (2018) found 32 groups
best on ImageNet (ResNet-50, 256 or more channels per layer), LN and IN worse. Instance norm trains on Keras's
own layers (`--nofast`): the speed engine's whole-model gradients for it were seen to differ by up to 3% for
one initialization (docs/performance.md). The gn4 and gn1 runs are the fair suite's (and the grid's) own.
Comparisons: every variant against GN with 4 groups (the study's GN), Welch's test, Holm's rule over the five.
Writes `artifacts/groups.json` and `artifacts/groups.png`.
"""

import os

from keras_norm import fileio, parallel
from keras_norm.report import variants
from keras_norm.studies import fair

SEEDS = (0, 1, 2, 3, 4)
VARIANTS = {
    "gn1": dict(norm="ln"),  # GroupNormalization(groups=1): the study's LN
    "gn2": dict(norm="gn", groups=2),
    "gn4": dict(norm="gn"),
    "gn8": dict(norm="gn", groups=8),
    "in": dict(norm="in", fast=False),
    "ln_layer": dict(norm="ln", ln_impl="layer"),
}
REFERENCE = "gn4"
LABELS = {"gn1": "GN 1 group\n(= LN)", "gn2": "GN 2", "gn4": "GN 4", "gn8": "GN 8",
          "in": "IN (one\nchannel\nper group)", "ln_layer": "LayerNorm\n(affine per\nactivation)"}


def suite_dir(artifacts_dir):
    return os.path.join(artifacts_dir, "groups")


def cell(base, variant, seed):
    settings = dict(VARIANTS[variant])
    if variant in ("gn1", "gn4"):  # the fair suite's runs (its folder, or the grid's where that trained them)
        return fair.cell(base, settings["norm"], seed)
    return base.replace(seed=seed, l1=0.0, l2=0.0, deterministic=True, artifacts_dir=suite_dir(
        base.outputs.artifacts_dir), **settings)


def summarize(by_variant, seeds):
    accuracy = {v: variants.test_accuracy_pct(rs) for v, rs in by_variant.items()}
    pairs = [(v, REFERENCE) for v in accuracy if v != REFERENCE]
    return {"seeds": list(seeds), "epochs": next(iter(by_variant.values()))[0]["epochs"], "penalty": "none",
            "groups": {"gn1": 1, "gn2": 2, "gn4": 4, "gn8": 8, "in": "C (8 or 16)", "ln_layer": 1},
            "test_accuracy": accuracy, "summary": variants.summary(accuracy),
            "comparisons": variants.comparisons(accuracy, pairs),
            "rule": f"each variant against {REFERENCE}: Welch's t; Holm's step-down adjustment over the "
                    f"{len(pairs)}; real when p_holm < 0.05"}


def run(base, options, log=print, seeds=SEEDS, names=tuple(VARIANTS)):
    artifacts = base.outputs.artifacts_dir
    fileio.check_writable(suite_dir(artifacts))
    todo = [(v, cell(base, v, s)) for s in seeds for v in names]
    log(f"suite groups: {len(names)} variants x {len(seeds)} seeds")
    results, wall = parallel.train_checked("groups", [c for _, c in todo], options.jobs)
    by_variant = {v: [r for (name, _), r in zip(todo, results) if name == v] for v in names}
    out = dict(summarize(by_variant, seeds), wall_seconds=wall)
    fileio.write_json(os.path.join(artifacts, "groups.json"), out)
    plot(out, os.path.join(artifacts, "groups.png"))
    log(f"suite groups: done in {wall / 60:.1f} min")
    return out


def plot(out, path):
    variants.plot(out["test_accuracy"], out["summary"], LABELS,
                  f"Group count, no penalty, {len(out['seeds'])} seeds each, {out['epochs']} epochs", path)


def replot(base, options, log=print):
    """Redraws groups.png from groups.json (no runs needed)."""
    artifacts = base.outputs.artifacts_dir
    plot(fileio.read_json(os.path.join(artifacts, "groups.json")), os.path.join(artifacts, "groups.png"))
    log(f"suite groups: figure redrawn from {os.path.join(artifacts, 'groups.json')}")
