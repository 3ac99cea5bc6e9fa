"""What a finished run reports: metrics from its history, weight statistics, misclassified digits."""

import platform

import keras
import numpy as np
import tensorflow as tf

TARGET_ACCURACY = 0.994
NEAR_ZERO = 1e-3  # |w| below this counts as a near-zero weight (the L1 effect)


def summarize(history, params, dataset, config):
    """metrics.json content from the history rows."""
    acc = [r["val_accuracy"] for r in history]
    loss = [r["val_loss"] for r in history]
    best = int(np.argmax(acc))
    reached = next((r["epoch"] for r in history if r["val_accuracy"] >= TARGET_ACCURACY), None)
    learning = config.learning
    return {
        "status": "finished",
        "name": config.name,
        "seed": learning.seed,
        "norm": learning.norm,
        "l1": learning.l1,
        "l2": learning.l2,
        "params": params,
        "epochs": len(history),
        "final_test_accuracy": acc[-1],
        "final_test_loss": loss[-1],
        "best_test_accuracy": acc[best],
        "best_epoch": best + 1,
        "min_test_loss": float(min(loss)),
        "first_epoch_at_99.4": reached,
        "mean_epoch_seconds": round(float(np.mean([r["seconds"] for r in history])), 3),
        "dataset": dataset.identity(),
    }


def weight_stats(model):
    """Share of near-zero weights in the conv/dense kernels (how much L1 sparsified them)."""
    kernels = np.concatenate([w.numpy().ravel() for w in model.weights if w.path.endswith("kernel")])
    return {
        "kernel_weights": int(kernels.size),
        "near_zero_fraction": float(np.mean(np.abs(kernels) < NEAR_ZERO)),
        "mean_abs_weight": float(np.mean(np.abs(kernels))),
    }


def misclassified(model, dataset, limit=10, batch_size=1000):
    """The first `limit` wrong test predictions, in test-set order, with their probabilities."""
    logits = model.predict(dataset.x_test, batch_size=batch_size, verbose=0)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != dataset.y_test)
    images = [{"index": int(i), "true": int(dataset.y_test[i]), "pred": int(pred[i]),
               "prob": round(float(probs[i, pred[i]]), 4)} for i in wrong[:limit]]
    return {"test_accuracy": float(np.mean(pred == dataset.y_test)), "errors": int(len(wrong)), "images": images}


def library_versions():
    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__}
