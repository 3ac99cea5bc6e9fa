"""The trained models off their training distribution (`--suite=shift`): every model of the seeds suite, no
retraining, on transformed copies of the test set.

Transforms (keras_norm/shifts.py) act on the [0, 1] pixels before the run's own standardization: contrast scaled
towards the background, brightness shifted, Gaussian noise, rotation, translation, inverted digits. Each model is the
run's `model.keras` (the validation-best weights, as exported). Writes `artifacts/shift.json`
(`{"transforms": {name: {"severities": [...], "accuracy": {norm: [[per seed] per severity]}}}}`) and
`artifacts/shift.png`.
"""

import os

import keras
import numpy as np

from keras_norm import fileio
from keras_norm import model as model_lib
from keras_norm.plotting import plt
from keras_norm.report import stats
from keras_norm.report.plots import save_figure
from keras_norm.run_folder import RunFolder
from keras_norm.shifts import CLEAN, TRANSFORMS, transformed
from keras_norm.studies.seeds import models_and_test_set


def accuracy(model, images, labels, mean, std):
    logits = model.predict(model_lib.model_input(model, images, mean, std), batch_size=1000, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def evaluate_all(models, images, labels):
    """{transform: {"severities", "accuracy": {norm: [[per seed] per severity]}}}, plus the clean accuracy."""
    result = {name: {"severities": list(sev), "accuracy": {}} for name, (sev, _) in TRANSFORMS.items()}
    result["clean"] = {"severities": [0], "accuracy": {}}
    for norm, runs in models.items():
        loaded = []
        for _, path in runs:
            ds = RunFolder(path).read("config.json")["dataset"]
            loaded.append((keras.saving.load_model(os.path.join(path, "model.keras")), ds["pixel_mean"], ds["pixel_std"]))
        result["clean"]["accuracy"][norm] = [[accuracy(m, images, labels, mu, sd) for m, mu, sd in loaded]]
        for name, (severities, _) in TRANSFORMS.items():
            result[name]["accuracy"][norm] = [
                [accuracy(m, transformed(images, name, s), labels, mu, sd) for m, mu, sd in loaded] for s in severities]
    return result


def plot(path, result):
    names = [n for n in result if n != "clean"]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    for ax, name in zip(axes.ravel(), names):
        entry = result[name]
        x = [CLEAN[name][0]] + entry["severities"]
        for norm, per_severity in entry["accuracy"].items():
            rows = result["clean"]["accuracy"][norm] + per_severity
            means = [100 * stats.mean_ci(r)[0] for r in rows]
            cis = [stats.mean_ci(100 * np.asarray(r))[2] for r in rows]
            ax.errorbar(x, means, yerr=[[m - c[0] for m, c in zip(means, cis)], [c[1] - m for m, c in zip(means, cis)]],
                        marker="o", capsize=3, label=norm)
        ax.set_title(name.replace("_", " "), fontsize=10)
        ax.set_xlabel(CLEAN[name][1])
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Test accuracy under input shift: mean over seeds, 95% CI (validation-best models, no retraining)",
                 fontsize=11)
    save_figure(fig, path, dpi=130)


def run(base, options, log=print):
    """Evaluates the seeds suite's models; writes shift.json and shift.png into the artifacts folder."""
    artifacts = base.outputs.artifacts_dir
    models, images, labels = models_and_test_set(artifacts)
    log(f"suite shift: {sum(len(r) for r in models.values())} models x {sum(len(s) for s, _ in TRANSFORMS.values())} "
        "shifted test sets")
    result = {"transforms": evaluate_all(models, images, labels),
              "seeds": {norm: [seed for seed, _ in runs] for norm, runs in models.items()},
              "models": "model.keras of each run (validation-best epoch)"}
    fileio.write_json(os.path.join(artifacts, "shift.json"), result)
    plot(os.path.join(artifacts, "shift.png"), result["transforms"])
    return result
