"""What a finished run reports: metrics from its history, weight statistics, misclassified digits."""

import platform
import sys

try:
    import resource  # POSIX only: on Windows the peak memory is left out (None)
except ImportError:
    resource = None

import keras
import numpy as np
import tensorflow as tf

TARGET_ACCURACY = 0.994
NEAR_ZERO = 1e-3  # |w| below this counts as a near-zero weight (the L1 effect)


def peak_rss_mb():
    """Peak resident memory of this process so far, MB; None where the platform does not report it."""
    if resource is None:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0), 1)  # macOS: bytes; Linux: KiB


SELECTION_RULE = "the highest validation accuracy; among equals, the lowest validation data loss (val_xent)"


def selection_key(row):
    """How epochs rank on the validation split: accuracy first, then the lower data loss (a tie in accuracy is
    common on a small split, and the earliest of equals can be a clearly worse model)."""
    return row["val_accuracy"], -row["val_xent"]


def best_epoch(history):
    """The index of the validation-best epoch (`selection_key`); the earliest only when both numbers tie."""
    keys = [selection_key(r) for r in history]
    return keys.index(max(keys))


def selection_reason(history, best):
    """One line: which epoch is exported and why."""
    row = history[best]
    tied = [r["epoch"] for r in history if r["val_accuracy"] == row["val_accuracy"] and r is not row]
    why = f"validation accuracy {row['val_accuracy']:.4f}, the highest"
    if tied:
        why += (f"; tied with epoch{'s' if len(tied) > 1 else ''} {', '.join(map(str, tied))}, it has the lowest "
                f"validation data loss ({row['val_xent']:.4f})")
    return f"epoch {row['epoch']} ({why})"


def summarize(history, params, dataset, config):
    """metrics.json content from the history rows. The validation split chooses the epoch; the test set is
    reported at the final epoch (the headline) and at that validation-best epoch."""
    test_acc = [r["test_accuracy"] for r in history]
    best = best_epoch(history)
    reached = next((r["epoch"] for r in history if r["test_accuracy"] >= TARGET_ACCURACY), None)
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
        "final_test_accuracy": test_acc[-1],
        "final_test_xent": history[-1]["test_xent"],
        "final_val_accuracy": history[-1]["val_accuracy"],
        "val_best_epoch": best + 1,
        "exported_epoch": best + 1,
        "exported_because": selection_reason(history, best),
        "selection_rule": SELECTION_RULE,
        "best_val_accuracy": history[best]["val_accuracy"],
        "test_accuracy_at_val_best": test_acc[best],
        "first_epoch_at_99.4": reached,
        "mean_epoch_seconds": round(float(np.mean([r["seconds"] for r in history])), 3),
        "dataset": dataset.identity(),
    }


def weight_stats(model):
    """The conv/dense kernels: share of near-zero weights (what L1 sparsifies), mean |w|, and each layer's
    kernel L2 norm (a norm that follows a conv makes its output blind to that norm)."""
    kernels = {w.path: w.numpy() for w in model.weights if w.path.endswith("kernel")}
    flat = np.concatenate([k.ravel() for k in kernels.values()])
    return {
        "kernel_weights": int(flat.size),
        "near_zero_fraction": float(np.mean(np.abs(flat) < NEAR_ZERO)),
        "mean_abs_weight": float(np.mean(np.abs(flat))),
        "kernel_l2_norm": {path: float(np.linalg.norm(k)) for path, k in kernels.items()},
    }


def misclassified(model, dataset, batch_size=1000):
    """Every wrong test prediction of `model`, most confident first, with the predicted and the true class's
    probabilities, and the confusion matrix (rows: true class, columns: predicted)."""
    logits = model.predict(dataset.x_test, batch_size=batch_size, verbose=0)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
    pred, true = probs.argmax(axis=1), dataset.y_test
    wrong = np.flatnonzero(pred != true)
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")]
    images = [{"index": int(i), "true": int(true[i]), "pred": int(pred[i]), "p_pred": round(float(probs[i, pred[i]]), 4),
               "p_true": round(float(probs[i, true[i]]), 4)} for i in wrong]
    confusion = np.zeros((10, 10), int)
    np.add.at(confusion, (true, pred), 1)
    return {"model": "final epoch", "test_accuracy": float(np.mean(pred == true)), "errors": int(len(wrong)),
            "confusion": confusion.tolist(), "images": images}


def library_versions():
    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__}
