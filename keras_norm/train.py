"""One training run: data -> model -> `model.fit` with callbacks -> files in the run folder.

Files of `artifacts/runs/<run>/`: config.json, history.json, history.csv, metrics.json,
summary.txt, misclassified.json (small, committed) and model.keras, saved_model/, backup/,
tensorboard/ (binaries, git-ignored).
"""

import os
import platform
import resource
import shutil

import numpy as np

from keras_norm import fileio
from keras_norm.errors import KerasNormError

TARGET_ACCURACY = 0.994
NEAR_ZERO = 1e-3  # |w| below this counts as a near-zero weight (the L1 effect)


def run_dir(config):
    return os.path.join(config.artifacts_dir, "runs", config.folder_name)


def finished_metrics(path):
    """The metrics of a finished run in `path`, or None."""
    try:
        metrics = fileio.read_json(os.path.join(path, "metrics.json"))
    except (OSError, ValueError):
        return None
    return metrics if metrics.get("status") == "finished" else None


def usable_backup(backup_dir):
    """True unless every weights file in the BackupAndRestore folder is unreadable (torn by a kill)."""
    import h5py

    meta = os.path.join(backup_dir, "training_metadata.json")
    if os.path.exists(meta):
        try:
            fileio.read_json(meta)
        except ValueError:
            return False  # torn metadata: Keras would fail on it, so start over
    files = [f for f in os.listdir(backup_dir) if ".weights.h5" in f]  # latest.weights.h5 and its .bkp
    for name in files:
        try:
            h5py.File(os.path.join(backup_dir, name), "r").close()
            return True
        except OSError:
            pass
    return not files


def history_csv(rows):
    keys = [k for k in rows[0] if k != "epoch"] if rows else []
    lines = [",".join(["epoch"] + keys)]
    for r in rows:
        lines.append(",".join([str(r["epoch"])] + [repr(r.get(k, "")) for k in keys]))
    return "\n".join(lines) + "\n"


def summarize(history, params, dataset, config):
    """metrics.json content from the history rows."""
    acc = [r["val_accuracy"] for r in history]
    loss = [r["val_loss"] for r in history]
    best = int(np.argmax(acc))
    reached = next((r["epoch"] for r in history if r["val_accuracy"] >= TARGET_ACCURACY), None)
    return {
        "status": "finished",
        "name": config.name,
        "seed": config.seed,
        "norm": config.norm,
        "l1": config.l1,
        "l2": config.l2,
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
    import keras

    logits = model.predict(dataset.x_test, batch_size=batch_size, verbose=0)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != dataset.y_test)
    return {
        "test_accuracy": float(np.mean(pred == dataset.y_test)),
        "errors": int(len(wrong)),
        "images": [
            {
                "index": int(i),
                "true": int(dataset.y_test[i]),
                "pred": int(pred[i]),
                "prob": round(float(probs[i, pred[i]]), 4),
            }
            for i in wrong[:limit]
        ],
    }


def library_versions():
    import keras
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
    }


def set_seeds(config):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()


def compile_model(model, config, steps_per_epoch):
    import keras

    from keras_norm.schedules import make_schedule

    schedule = make_schedule(config.schedule, config.lr, steps_per_epoch, config.epochs)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=schedule, momentum=config.momentum, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=config.steps_per_execution,
    )


def train(config, dataset=None, log=print, verbose="auto"):
    """Trains one run and returns its metrics dict. Raises KerasNormError on bad input or divergence."""
    config.validate()  # before TensorFlow is imported: bad input fails fast and quietly
    from keras_norm import data, distribute

    multi_worker = config.distribute == "multi_worker"
    if multi_worker:
        distribute.read_tf_config()  # a missing or malformed cluster is one clear line
    if dataset is None:
        dataset = data.load(config.data_path, config.train_limit, config.test_limit)
    if dataset.name != "mnist" and not config.run_name:
        # The offline sample is not MNIST's 60k/10k: keep its runs apart from full-MNIST runs.
        config = config.replace(run_name=f"{config.name}_sample")
    if not multi_worker:
        skipped = _finished_before(run_dir(config), config, log)
        if skipped:
            return skipped
        fileio.check_writable(os.path.join(config.artifacts_dir, "runs"))
    from keras_norm.quiet import import_tensorflow

    import_tensorflow()
    if config.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(config.threads)
        tf.config.threading.set_inter_op_parallelism_threads(config.threads)
    strategy = distribute.make_strategy(config.distribute, config.logical_cpus)
    chief = distribute.is_chief(strategy)
    # Only the chief writes into artifacts/; another worker keeps its folder outside it.
    path = run_dir(config) if chief else distribute.worker_dir(strategy, config.folder_name)
    if multi_worker:
        # Each worker decides from its own folder, so all of them skip (or train) together.
        skipped = _finished_before(path, config, log)
        if skipped:
            return dict(skipped, chief=chief)
        if chief:
            fileio.check_writable(os.path.join(config.artifacts_dir, "runs"))
    return dict(_fit(config, dataset, strategy, path, log, verbose, chief), chief=chief)


def _finished_before(path, config, log):
    """The metrics of an already finished run in `path` (marked skipped), unless --overwrite."""
    done = finished_metrics(path)
    if done and not config.overwrite:
        log(f"{config.folder_name}: already finished (test accuracy {done['final_test_accuracy']:.4f}); "
            "pass --overwrite to train it again")
        return dict(done, skipped=True)
    return None


def _fit(config, dataset, strategy, path, log, verbose, chief=True):
    """Builds the model in the strategy's scope, fits it and writes the run folder `path`."""
    import keras

    from keras_norm import data, distribute
    from keras_norm import model as model_lib
    from keras_norm.callbacks import EpochLog

    replicas = strategy.num_replicas_in_sync
    if config.distribute != "none" and config.steps_per_execution > 1:
        # Keras 3.15's multi-step training loop fails to build under tf.distribute strategies.
        log(f"{config.folder_name}: --distribute={config.distribute} trains one step per call "
            f"(not {config.steps_per_execution})")
        config = config.replace(steps_per_execution=1)
    sync_bn = config.sync_bn and replicas > 1 and config.norm == "bn"
    set_seeds(config)
    with strategy.scope():
        model = model_lib.build_from_config(config, sync_bn=sync_bn)
        steps_per_epoch = -(-len(dataset.y_train) // config.batch_size)
        compile_model(model, config, steps_per_epoch)
    params = model_lib.trainable_params(model)

    if config.overwrite and os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path, exist_ok=True)
    fileio.write_json(
        os.path.join(path, "config.json"),
        {"name": config.name, "flags": config.to_dict(), "dataset": dataset.identity(),
         "params": params, "replicas": replicas, "synchronized_bn": sync_bn, "versions": library_versions()},
    )
    lines = []
    model.summary(print_fn=lambda s, **_: lines.append(s))
    fileio.write_text(os.path.join(path, "summary.txt"), "\n".join(lines) + "\n")

    history_path = os.path.join(path, "history.json")
    best_path = os.path.join(path, "model.keras")
    backup_dir = os.path.join(path, "backup")
    if os.path.isdir(backup_dir) and not usable_backup(backup_dir):
        shutil.rmtree(backup_dir)  # a kill during the first backup save: start over
    if not os.path.isdir(backup_dir):
        # A fresh start (not a resume): nothing of an earlier, failed attempt may leak into this one.
        for stale in (history_path, best_path, os.path.join(path, "history.csv"), os.path.join(path, "metrics.json")):
            if os.path.exists(stale):
                os.remove(stale)
    previous = []
    if os.path.exists(history_path):
        try:
            previous = fileio.read_json(history_path)["epochs"]
        except (OSError, ValueError, KeyError):
            previous = []
    checkpoint = keras.callbacks.ModelCheckpoint(
        best_path, monitor="val_accuracy", mode="max", save_best_only=True,
        # After a resume, only a better epoch than the ones already seen replaces model.keras.
        initial_value_threshold=max([r["val_accuracy"] for r in previous], default=None),
    )
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        EpochLog(history_path, config.folder_name, config.epochs, log),
        keras.callbacks.CSVLogger(os.path.join(path, "history.csv"), append=True),
        checkpoint,
        # double_checkpoint keeps the previous epoch's backup, so a kill during a save can fall back on it.
        keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True),
    ]
    if config.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(path, "tensorboard")))

    log(f"{config.folder_name}: {config.norm} l1={config.l1:g} l2={config.l2:g}, {params} params, "
        f"{dataset.name} {len(dataset.y_train)}/{len(dataset.y_test)} images, {config.epochs} epochs")
    if config.fused and config.native and config.norm != "none":
        from keras_norm import native

        if native.load() is None:
            log(f"{config.folder_name}: the C++ normalization kernel is unavailable ({native.why_not()}); "
                "training with TensorFlow ops (same results, slower)")
    train_data = data.train_pipeline(dataset, config.batch_size, config.seed, config.augment, config.rotation_degrees)
    test_data = data.test_pipeline(dataset, 1000)
    if distribute.is_multi_worker(strategy):
        train_data, test_data = distribute.shard_by_data(train_data), distribute.shard_by_data(test_data)
        distribute.build_from_local_batch(model, (dataset.x_test[:2], dataset.y_test[:2]))
    model.fit(
        train_data,
        validation_data=test_data,
        epochs=config.epochs,
        shuffle=False,  # the tf.data pipeline shuffles
        callbacks=callbacks,
        verbose=verbose,
    )

    history = fileio.read_json(history_path)["epochs"] if os.path.exists(history_path) else []
    losses = [r.get("loss", float("nan")) for r in history] + [r.get("val_loss", 0.0) for r in history]
    if len(history) < config.epochs or not np.all(np.isfinite(losses)) or not os.path.exists(best_path):
        reason = "loss became NaN/inf (diverged); try a lower --lr"
        fileio.write_json(os.path.join(path, "metrics.json"),
                          {"status": "failed", "name": config.name, "seed": config.seed,
                           "norm": config.norm, "reason": reason, "epochs": len(history)})
        shutil.rmtree(os.path.join(path, "backup"), ignore_errors=True)
        raise KerasNormError(f"{config.folder_name}: {reason}")

    fileio.write_text(os.path.join(path, "history.csv"), history_csv(history))
    metrics = summarize(history, params, dataset, config)
    metrics["weights"] = weight_stats(model)
    # Peak resident memory of this process so far (Linux reports KiB): a bound for one training run.
    metrics["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    if not chief:  # the chief reports the errors and exports the model
        fileio.write_json(os.path.join(path, "metrics.json"), metrics)
        log(f"{config.folder_name}: worker finished, final test accuracy {metrics['final_test_accuracy']:.4f}")
        return metrics
    best = keras.saving.load_model(best_path, safe_mode=True)
    wrong = misclassified(best, dataset)
    fileio.write_json(os.path.join(path, "misclassified.json"), wrong)
    metrics["best_model_test_accuracy"] = wrong["test_accuracy"]
    if config.export:
        export_dir = os.path.join(path, "saved_model")
        shutil.rmtree(export_dir, ignore_errors=True)
        best.export(export_dir, format="tf_saved_model", verbose=False)
    fileio.write_json(os.path.join(path, "metrics.json"), metrics)
    log(f"{config.folder_name}: final test accuracy {metrics['final_test_accuracy']:.4f}, "
        f"best {metrics['best_test_accuracy']:.4f} (epoch {metrics['best_epoch']}), "
        f"{metrics['mean_epoch_seconds']:.1f} s/epoch")
    return metrics
