"""BatchNorm under input shift, frozen and adapted (`--suite=bn_adapt`): no retraining, no labels.

For every BN model with a `model.keras` (the seeds suite's BN + L1 + L2 and the fair comparison's BN without a penalty,
keras_norm/studies/models.py)
and every shift of the shift suite (keras_norm/shifts.py): test accuracy with the statistics as deployed
("frozen") and with them re-estimated on the shifted, unlabeled test images (keras_norm/adapt.py, Schneider et al.
2020): from all 10,000 of them, and from only N = 8, 32 or 256 of them (a fixed random draw), the other images
evaluated. GN and LN normalize each image by its own statistics and need no adaptation (their numbers are the
shift suite's). Writes `artifacts/bn_adapt.json` and `artifacts/bn_adapt.png`.
"""

import os

import keras
import numpy as np

from keras_norm import adapt, data, fileio, studies
from keras_norm import model as model_lib
from keras_norm.errors import KerasNormError
from keras_norm.plotting import plt
from keras_norm.report import stats
from keras_norm.report.plots import save_figure
from keras_norm.run_folder import RunFolder
from keras_norm.shifts import CLEAN, TRANSFORMS, transformed
from keras_norm.studies import models as study_models
from keras_norm.studies.shift import (
    STRENGTH,  # each panel's x axis from clean to the strongest shift
    accuracy,  # the shift suite's: what each model takes, argmax
)

SIZES = (8, 32, 256)  # images the statistics are estimated from ("all" too)
DRAW_SEED = 0


def bn_models(artifacts_dir):
    """{source: [(seed, run folder)]} of the BN runs that kept a model.keras ("seeds", "fair")."""
    return {s: per_norm["bn"] for s, per_norm in study_models.sources(artifacts_dir).items() if "bn" in per_norm}


def one_shift(model, images, labels, mean, std, sizes=SIZES):
    """{"frozen": acc, "all": acc, "8": acc, ...} for one model on one shifted test set."""
    out = {"frozen": accuracy(model, images, labels, mean, std)}
    everything = model_lib.model_input(model, images, mean, std)
    # each adapted copy is evaluated once: called eagerly, not traced
    out["all"] = accuracy(adapt.adapt_bn_statistics(model, everything), images, labels, mean, std, compiled=False)
    order = np.random.default_rng(DRAW_SEED).permutation(len(labels))
    for n in sizes:
        seen, rest = order[:n], order[n:]
        adapted = adapt.adapt_bn_statistics(model, everything[seen])
        out[str(n)] = accuracy(adapted, images[rest], labels[rest], mean, std, compiled=False)
    return out


def evaluate(runs, images, labels, sizes=SIZES, names=tuple(TRANSFORMS)):
    """{shift: {"severities", mode: [[per seed] per severity]}} for one source's models (clean first)."""
    shifts = {"clean": [0]} | {name: list(TRANSFORMS[name][0]) for name in names}
    out = {name: {"severities": sev} for name, sev in shifts.items()}
    for _, path in runs:
        ds = RunFolder(path).read("config.json")["dataset"]
        model = keras.saving.load_model(os.path.join(path, "model.keras"))
        for name, severities in shifts.items():
            for i, s in enumerate(severities):
                x = images if name == "clean" else transformed(images, name, s)
                for mode, acc in one_shift(model, x, labels, ds["pixel_mean"], ds["pixel_std"], sizes).items():
                    rows = out[name].setdefault(mode, [[] for _ in severities])
                    rows[i].append(round(acc, 5))
    return out


SOURCE_TITLES = {"seeds": "seeds suite (BN + L1 + L2)", "fair": "fair comparison (BN, no penalty)"}


def _panel(ax, entry, name, rng):
    """One shift: BN frozen and adapted (all images, 32, 8) against its strength, clean at the left; dots = seeds."""
    strength, xlabel = STRENGTH.get(name, (lambda v: v, CLEAN[name][1]))
    xs = np.array([strength(v) for v in [CLEAN[name][0]] + entry[name]["severities"]], dtype=float)
    discrete = name == "inverted"  # two states, not a scale: points, no line
    modes = {"frozen": "frozen (as deployed)", "all": "adapted on all shifted images", "32": "adapted on 32 images",
             "8": "adapted on 8 images"}
    for i, (mode, label) in enumerate((m, t) for m, t in modes.items() if m in entry[name]):
        rows = entry["clean"][mode] + entry[name][mode]
        cells = [stats.bounded_ci(100 * np.asarray(r)) for r in rows]
        means = np.array([m for m, _ in cells])
        ci = np.array([c if not np.isnan(c[0]) else (m, m) for m, c in cells])
        x = xs + (i - 1.5) * 0.02 * (xs.max() - xs.min() or 1)
        line = "o" if discrete else ("o--" if mode == "frozen" else "o-")
        ax.errorbar(x, means, yerr=[means - ci[:, 0], ci[:, 1] - means], fmt=line, capsize=3, color=f"C{i}",
                    label=label)
        for xi, r in zip(x, rows):
            ax.scatter(xi + rng.uniform(-0.004, 0.004, len(r)) * (xs.max() or 1), 100 * np.asarray(r), s=6,
                       alpha=0.35, color=f"C{i}")
    if discrete:
        ax.set_xticks(xs, ["clean", "inverted"])
    ax.set_xlabel(xlabel)
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3)


def plot(result, path):
    """One row per source, one panel per shift: BN's test accuracy frozen and adapted; mean, bounded 95% interval
    (t on the logit scale) and every seed."""
    sources = list(result["sources"])
    names = [n for n in TRANSFORMS if n in result["sources"][sources[0]]]
    fig, axes = plt.subplots(len(sources), len(names), figsize=(3.3 * len(names), 3.6 * len(sources)), squeeze=False)
    rng = np.random.default_rng(0)
    for row, source in zip(axes, sources):
        for ax, name in zip(row, names):
            _panel(ax, result["sources"][source], name, rng)
            ax.set_title(f"{name.replace('_', ' ')}", fontsize=10)
        row[0].set_ylabel(f"{SOURCE_TITLES.get(source, source)},\n{len(result['seeds'][source])} seeds: "
                          "test accuracy (%)", fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle("BN under input shift: statistics frozen vs re-estimated on the shifted test images (no labels); "
                 "dots = seeds, marker = mean, bars = 95% interval (logit t)", fontsize=11)
    save_figure(fig, path, dpi=120)


def adapted_minus_frozen(result, mode="all"):
    """{source: {"shift severity": {difference_pp, ci95_pp, p, p_holm, real}}}: adapted (on `mode` images) - frozen,
    paired per model (the same model measured two ways); Holm's rule over a source's shifted test sets."""
    out = {}
    for source, entry in result["sources"].items():
        cells = {f"{name} {sev:g}": (d[mode][i], d["frozen"][i]) for name, d in entry.items() if name != "clean"
                 for i, sev in enumerate(d["severities"])}
        tests = {key: stats.paired(100 * np.asarray(a), 100 * np.asarray(f)) for key, (a, f) in cells.items()}
        adjusted = stats.holm([p for _, _, p in tests.values()])
        out[source] = {key: {"difference_pp": round(diff, 3), "ci95_pp": [round(low, 3), round(high, 3)],
                             "p": round(p, 6), "p_holm": round(q, 6), "real": bool(q < 1 - stats.LEVEL)}
                       for (key, (diff, (low, high), p)), q in zip(tests.items(), adjusted)}
    return out


def write(artifacts, result):
    """bn_adapt.json (with the paired differences) and bn_adapt.png."""
    result = dict(result, adapted_minus_frozen_paired=adapted_minus_frozen(result),
                  paired_rule="adapted on all shifted images - frozen, paired t per model; Holm over each source's "
                              "shifted test sets; real when p_holm < 0.05")
    fileio.write_json(os.path.join(artifacts, "bn_adapt.json"), result)
    plot(result, os.path.join(artifacts, "bn_adapt.png"))
    return result


def replot(base, options, log=print):
    """Rewrites bn_adapt.json's paired differences and bn_adapt.png from its per-seed numbers (no models needed)."""
    return studies.redraw(base, "bn_adapt", write, "figure and paired differences", log)


def run(base, options, log=print, sizes=SIZES, names=tuple(TRANSFORMS)):
    artifacts = base.outputs.artifacts_dir
    fileio.check_writable(artifacts)
    sources = bn_models(artifacts)
    if not sources:
        raise KerasNormError(f"no BN run with a model.keras under {artifacts}/seeds/runs or "
                              f"{artifacts}/fair/runs; run --suite=seeds or --suite=fair first")
    first = next(iter(sources.values()))[0][1]
    flags = RunFolder(first).read("config.json")["flags"]
    images, labels = data.raw_test_set(flags["data_path"], flags["test_limit"])
    log(f"suite bn_adapt: {', '.join(f'{len(r)} {s} models' for s, r in sources.items())} x "
        f"{sum(len(s) for s, _ in TRANSFORMS.values())} shifts")
    result = {"sizes": list(sizes), "draw_seed": DRAW_SEED,
              "seeds": {s: [seed for seed, _ in runs] for s, runs in sources.items()},
              "sources": {s: evaluate(runs, images, labels, sizes, names) for s, runs in sources.items()}}
    return write(artifacts, result)
