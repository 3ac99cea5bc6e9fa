"""The trained models off their training distribution (`--suite=shift`): every model of the seeds suite, and of the
fair comparison (no penalty) where they are on this machine, no retraining, on transformed copies of the test set.

Transforms (keras_norm/shifts.py) act on the [0, 1] pixels before the run's own standardization: contrast scaled
towards the background, brightness shifted, Gaussian noise, rotation, translation, inverted digits. Each model is the
run's `model.keras` (the validation-best weights, as exported). Writes `artifacts/shift.json`
(`{"transforms": {name: {"severities": [...], "accuracy": {norm: [[per seed] per severity]}}}}` for the seeds suite's
models, and the same under `"no_penalty"` for the fair comparison's and under `"groups"` for the group-count suite's)
and `artifacts/shift.png` (and `shift_no_penalty.png`, `shift_groups.png`).
"""

import os

import keras
import numpy as np

from keras_norm import fileio, studies
from keras_norm import model as model_lib
from keras_norm.plotting import plt
from keras_norm.report import stats
from keras_norm.report.plots import save_figure
from keras_norm.run_folder import RunFolder
from keras_norm.shifts import CLEAN, TRANSFORMS, transformed
from keras_norm.studies import models as study_models
from keras_norm.studies.seeds import models_and_test_set


def accuracy(model, images, labels, mean, std, batch=1000, compiled=True):
    """Top-1 accuracy on `images` in [0, 1]: the model in inference mode (BN's moving statistics), `batch` images
    at a time: the logits of model.predict, bit for bit, without the dataset setup predict makes on every call.
    `compiled`: through Keras's compiled predict step (`predict_on_batch`, traced once per model and kept: for a
    model evaluated many times); else called eagerly (a model used once: no tracing to pay for)."""
    x = model_lib.model_input(model, images, mean, std)
    call = model.predict_on_batch if compiled else lambda chunk: model(chunk, training=False)
    logits = np.concatenate([np.asarray(call(x[i:i + batch])) for i in range(0, len(x), batch)])
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def evaluate_all(models, images, labels):
    """{transform: {"severities", "accuracy": {norm: [[per seed] per severity]}}}, plus the clean accuracy."""
    result = {name: {"severities": list(sev), "accuracy": {}} for name, (sev, _) in TRANSFORMS.items()}
    result["clean"] = {"severities": [0], "accuracy": {}}
    for norm, runs in models.items():
        loaded = []
        for _, path in runs:
            ds = RunFolder(path).read("config.json")["dataset"]
            model = keras.saving.load_model(os.path.join(path, "model.keras"))
            loaded.append((model, ds["pixel_mean"], ds["pixel_std"]))
        result["clean"]["accuracy"][norm] = [[accuracy(m, images, labels, mu, sd) for m, mu, sd in loaded]]
        for name, (severities, _) in TRANSFORMS.items():
            result[name]["accuracy"][norm] = [
                [accuracy(m, transformed(images, name, s), labels, mu, sd) for m, mu, sd in loaded] for s in severities]
    return result


# Each panel's x axis runs from clean (left) to the strongest shift (right); contrast is shown as its reduction.
STRENGTH = {"contrast": (lambda s: 1.0 - s, "contrast reduction, 1 - factor (0 = clean)")}
LABELS = {"bn": "BN", "gn": "GN", "ln": "LN", "none": "no norm", "gn1": "GN 1 (= LN)", "gn2": "GN 2", "gn4": "GN 4",
          "gn8": "GN 8", "in": "IN", "ln_layer": "LayerNormalization"}
# The other model sets the suite evaluates when their models are here: key in shift.json, figure, title.
EXTRA = {"no_penalty": ("shift_no_penalty.png", "the fair comparison's models, no penalty"),
         "groups": ("shift_groups.png", "the group-count models, no penalty")}


def summarize(result):
    """{transform: {norm: [{"mean", "ci95_logit"} per severity, clean first]}} in percent: means over seeds with
    intervals that stay inside [0, 100] (report/stats.py, `bounded_ci`)."""
    out = {}
    for name, entry in result.items():
        if name == "clean":
            continue
        out[name] = {}
        for norm, per_severity in entry["accuracy"].items():
            rows = result["clean"]["accuracy"][norm] + per_severity
            cells = []
            for r in rows:
                mean, (low, high) = stats.bounded_ci(100 * np.asarray(r))
                cells.append({"mean": round(mean, 3), "ci95_logit": None if np.isnan(low) else
                              [round(low, 3), round(high, 3)], "min": round(100 * min(r), 2),
                              "max": round(100 * max(r), 2)})
            out[name][norm] = cells
    return out


def _panel(ax, name, result, summary, rng):
    entry = result[name]
    strength, xlabel = STRENGTH.get(name, (lambda s: s, CLEAN[name][1]))
    xs = np.array([strength(v) for v in [CLEAN[name][0]] + entry["severities"]], dtype=float)
    discrete = name == "inverted"  # two states, not a scale: points, no line
    for i, (norm, per_severity) in enumerate(entry["accuracy"].items()):
        rows = result["clean"]["accuracy"][norm] + per_severity
        cells = summary[name][norm]
        offset = (i - (len(entry["accuracy"]) - 1) / 2) * 0.03 * (xs.max() - xs.min() or 1)
        means = np.array([c["mean"] for c in cells])
        ci = np.array([c["ci95_logit"] or (c["mean"], c["mean"]) for c in cells])  # one seed: no interval
        low, high = means - ci[:, 0], ci[:, 1] - means
        ax.errorbar(xs + offset, means, yerr=[low, high], fmt="o" if discrete else "o-", capsize=3,
                    color=f"C{i}", label=LABELS.get(norm, norm))
        for x, r in zip(xs + offset, rows):
            ax.scatter(x + rng.uniform(-0.004, 0.004, len(r)) * (xs.max() or 1), 100 * np.asarray(r), s=7,
                       alpha=0.35, color=f"C{i}")
    if discrete:
        ax.set_xticks(xs, ["clean", "inverted"])
    ax.set_title(name.replace("_", " "), fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3)


def plot(path, result, summary=None, models="the seeds suite's models"):
    summary = summary or summarize(result)
    names = [n for n in result if n != "clean"]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.8))
    rng = np.random.default_rng(0)
    for ax, name in zip(axes.ravel(), names):
        _panel(ax, name, result, summary, rng)
    axes.ravel()[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"Test accuracy under input shift ({models}, validation-best, no retraining): dots = seeds, line = "
                 "mean, bars = 95% interval (t on the logit scale, inside [0, 100])", fontsize=11)
    save_figure(fig, path, dpi=130)


def write(artifacts, result):
    """shift.json (with its bounded intervals), shift.png and shift_no_penalty.png from the per-seed accuracies."""
    result = dict(result, summary_pct=summarize(result["transforms"]))
    for key in EXTRA:
        if key in result:
            result[key] = dict(result[key], summary_pct=summarize(result[key]["transforms"]))
    fileio.write_json(os.path.join(artifacts, "shift.json"), result)
    plot(os.path.join(artifacts, "shift.png"), result["transforms"], result["summary_pct"])
    for key, (figure, title) in EXTRA.items():
        if key in result:
            plot(os.path.join(artifacts, figure), result[key]["transforms"], result[key]["summary_pct"], title)
    return result


def replot(base, options, log=print):
    """Rewrites shift.json's intervals and shift.png from its committed per-seed accuracies (no models needed)."""
    return studies.redraw(base, "shift", write, "figure and intervals", log)


def run(base, options, log=print):
    """Evaluates the seeds suite's models (and the fair comparison's and group-count suite's where they are here);
    writes shift.json and its figures into the artifacts folder."""
    artifacts = base.outputs.artifacts_dir
    models, images, labels = models_and_test_set(artifacts)
    log(f"suite shift: {sum(len(r) for r in models.values())} models x {sum(len(s) for s, _ in TRANSFORMS.values())} "
        "shifted test sets")
    result = {"transforms": evaluate_all(models, images, labels),
              "seeds": {norm: [seed for seed, _ in runs] for norm, runs in models.items()},
              "models": "model.keras of each run (validation-best epoch)"}
    extra = {"no_penalty": study_models.fair_models(artifacts), "groups": study_models.groups_models(base)}
    for key, found in extra.items():
        if found:
            log(f"suite shift: and {EXTRA[key][1]} ({sum(len(r) for r in found.values())})")
            result[key] = {"transforms": evaluate_all(found, images, labels),
                           "seeds": {name: [seed for seed, _ in runs] for name, runs in found.items()}}
    return write(artifacts, result)
