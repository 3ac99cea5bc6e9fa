"""BatchNorm's train/inference gap (`--suite=bn_batch_stats`), on the seeds suite's models, no retraining.

* BN models: test accuracy with the moving statistics (inference mode, as deployed) and with each test
  batch's own statistics (training-mode normalization, dropout off), at test batch sizes 1, 2, 8, 32, 256
  and 10,000. With batch statistics an image's prediction depends on the other images in its batch.
* GN and LN models: the largest logit difference between predicting one image at a time and all 10,000
  at once, and whether any predicted class differs (they normalize each image on its own, so neither may).

Writes `artifacts/bn_batch_stats.json` and `artifacts/bn_batch_stats.png`.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from keras_norm import fileio
from keras_norm import model as model_lib
from keras_norm.plotting import plt
from keras_norm.report import stats
from keras_norm.report.plots import save_figure
from keras_norm.run_folder import RunFolder
from keras_norm.studies.seeds import models_and_test_set

BATCH_SIZES = (1, 2, 8, 32, 256, 10000)


def load_model_and_images(path, images):
    """The run's model.keras and the test images as it takes them (model.model_input)."""
    ds = RunFolder(path).read("config.json")["dataset"]
    model = keras.saving.load_model(os.path.join(path, "model.keras"))
    return model, model_lib.model_input(model, images, ds["pixel_mean"], ds["pixel_std"])


def batch_statistics_logits(model, x, batch_size):
    """Logits with every BatchNormalization using the batch's own mean and variance (dropout off)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    step = tf.function(lambda batch: model(batch, training=True))  # one trace per batch shape
    return np.concatenate([step(tf.constant(x[i:i + batch_size])).numpy() for i in range(0, len(x), batch_size)])


def bn_gap(runs, images, labels):
    moving, own = [], {b: [] for b in BATCH_SIZES}
    for _, path in runs:
        model, x = load_model_and_images(path, images)
        moving.append(float(np.mean(model.predict(x, batch_size=1000, verbose=0).argmax(1) == labels)))
        for b in BATCH_SIZES:
            own[b].append(float(np.mean(batch_statistics_logits(model, x, b).argmax(1) == labels)))
    return {"moving_statistics": moving, "batch_statistics": {str(b): v for b, v in own.items()}}


def batch_invariance(runs, images):
    out = []
    for _, path in runs:
        model, x = load_model_and_images(path, images)
        one = tf.function(lambda batch: model(batch, training=False))
        single = np.concatenate([one(tf.constant(x[i:i + 1])).numpy() for i in range(len(x))])
        whole = model.predict(x, batch_size=len(x), verbose=0)
        out.append({"max_abs_logit_diff": float(np.max(np.abs(single - whole))),
                    "same_predictions": bool(np.array_equal(single.argmax(1), whole.argmax(1)))})
    return out


def paired_gaps(result):
    """Per test batch size: batch statistics - moving statistics (pp of test accuracy), the same model measured two
    ways, so paired over seeds; Holm's rule over the batch sizes."""
    moving = 100 * np.asarray(result["bn"]["moving_statistics"])
    rows = {b: stats.paired(100 * np.asarray(result["bn"]["batch_statistics"][str(b)]), moving)
            for b in result["batch_sizes"]}
    adjusted = stats.holm([p for _, _, p in rows.values()])
    return {str(b): {"difference_pp": round(d, 4), "ci95_pp": [round(lo, 4), round(hi, 4)], "p": round(p, 6),
                     "p_holm": round(q, 6), "real": bool(q < 1 - stats.LEVEL)}
            for (b, (d, (lo, hi), p)), q in zip(rows.items(), adjusted)}


def plot(path, result):
    """Test error (log scale, so 0.55% and 0.64% stay apart) with each test batch's own statistics, per seed and
    mean with a bounded interval, against the moving statistics (as deployed)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    sizes = result["batch_sizes"]
    errors = [100 - 100 * np.asarray(result["bn"]["batch_statistics"][str(b)]) for b in sizes]
    cells = [stats.bounded_ci(e) for e in errors]
    means = np.array([m for m, _ in cells])
    ax.errorbar(sizes, means, yerr=[means - [c[1][0] for c in cells], [c[1][1] for c in cells] - means],
                marker="o", capsize=3, label="BN, the test batch's own statistics (mean, 95% interval)")
    for b, e in zip(sizes, errors):
        ax.scatter([b] * len(e), e, s=10, alpha=0.4, color="C0")
    moving = 100 - 100 * np.asarray(result["bn"]["moving_statistics"])
    ax.axhline(moving.mean(), color="black", ls="--", lw=1,
               label=f"BN, moving statistics (as deployed): {moving.mean():.2f}% error")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.set_xlabel("test batch size (images normalized together)")
    ax.set_ylabel("test error (%), log scale")
    ax.set_title(f"BatchNorm at test time: {len(moving)} models (seeds), dots = seeds", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=130)


def write(artifacts, result):
    result = dict(result, batch_minus_moving_paired=paired_gaps(result)) if result["bn"].get("seeds") else result
    fileio.write_json(os.path.join(artifacts, "bn_batch_stats.json"), result)
    if result["bn"].get("seeds"):
        plot(os.path.join(artifacts, "bn_batch_stats.png"), result)
    return result


def replot(base, options, log=print):
    """Adds the paired comparison to bn_batch_stats.json and redraws its figure, from its per-seed numbers."""
    artifacts = base.outputs.artifacts_dir
    log(f"suite bn_batch_stats: figure and paired comparison redrawn from {artifacts}/bn_batch_stats.json")
    return write(artifacts, fileio.read_json(os.path.join(artifacts, "bn_batch_stats.json")))


def run(base, options, log=print):
    artifacts = base.outputs.artifacts_dir
    models, images, labels = models_and_test_set(artifacts)
    log(f"suite bn_batch_stats: {len(models.get('bn', []))} BN models x {len(BATCH_SIZES)} batch sizes")
    result = {"batch_sizes": list(BATCH_SIZES), "test_size": len(images),
              "bn": dict(bn_gap(models.get("bn", []), images, labels), seeds=[s for s, _ in models.get("bn", [])]),
              "batch_invariance": {norm: batch_invariance(models[norm], images) for norm in ("gn", "ln") if norm in models}}
    return write(artifacts, result)
