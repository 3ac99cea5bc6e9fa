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


def plot(path, result):
    fig, ax = plt.subplots(figsize=(7, 4.2))
    sizes = result["batch_sizes"]
    cis = [stats.mean_ci(100 * np.asarray(result["bn"]["batch_statistics"][str(b)])) for b in sizes]
    ax.errorbar(sizes, [c[0] for c in cis], yerr=[[c[0] - c[2][0] for c in cis], [c[2][1] - c[0] for c in cis]],
                marker="o", capsize=3, label="BN, the test batch's own statistics")
    moving = stats.mean_ci(100 * np.asarray(result["bn"]["moving_statistics"]))
    ax.axhline(moving[0], color="black", ls="--", lw=1, label=f"BN, moving statistics (as deployed): {moving[0]:.2f}%")
    ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(b) for b in sizes])
    ax.set_xlabel("test batch size")
    ax.set_ylabel("test accuracy (%), mean of seeds, 95% CI")
    ax.set_title("BatchNorm at test time: moving vs batch statistics", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=130)


def run(base, options, log=print):
    artifacts = base.outputs.artifacts_dir
    models, images, labels = models_and_test_set(artifacts)
    log(f"suite bn_batch_stats: {len(models.get('bn', []))} BN models x {len(BATCH_SIZES)} batch sizes")
    result = {"batch_sizes": list(BATCH_SIZES), "test_size": len(images),
              "bn": dict(bn_gap(models.get("bn", []), images, labels), seeds=[s for s, _ in models.get("bn", [])]),
              "batch_invariance": {norm: batch_invariance(models[norm], images) for norm in ("gn", "ln") if norm in models}}
    fileio.write_json(os.path.join(artifacts, "bn_batch_stats.json"), result)
    if models.get("bn"):
        plot(os.path.join(artifacts, "bn_batch_stats.png"), result)
    return result
