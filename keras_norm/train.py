"""One training run: data -> Keras model -> `model.fit` with Keras callbacks -> files in the run folder.

The steps, each a function below: `build` the model (Keras's layers; with `--fast` the speed engine's copy
with faster layers is what trains), `prepare` the run folder (fresh start or resume), `callbacks`, `fit`, and
`finish` (metrics, the best weights back into the plain Keras model, misclassified digits, export).
"""

import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from keras_norm import data, distribute, engine, evaluate, fileio, pipeline
from keras_norm import model as model_lib
from keras_norm.callbacks import EpochLog, TestEvaluation, ValidationBestCheckpoint
from keras_norm.errors import KerasNormError
from keras_norm.layer_stats import InsideStats
from keras_norm.run_folder import RunFolder, run_dir
from keras_norm.schedules import make_schedule


def train(config, dataset=None, log=print, verbose="auto", engine_options=engine.Options()):
    """Trains one run and returns its metrics (plus `folder`, `chief`). Raises KerasNormError on bad input or
    divergence. `engine_options`: the parts of the speed engine a `--fast` run uses (all of them by default)."""
    config.validate()
    multi_worker = config.runtime.distribute == "multi_worker"
    if multi_worker:
        distribute.read_tf_config()  # a missing or malformed cluster is one clear line
    learning = config.learning
    if dataset is None:
        dataset = data.load(learning.data_path, learning.train_limit, learning.test_limit, learning.val_fraction)
    config = config.replace(dataset=dataset.name)  # the offline sample's runs get their own names
    if not multi_worker:
        done = _finished_before(RunFolder(run_dir(config)), config, log)
        if done:
            return dict(done, folder=run_dir(config))
        fileio.check_writable(os.path.dirname(run_dir(config)))
    set_threads(config.runtime.threads)
    strategy = distribute.make_strategy(config.runtime.distribute, config.runtime.logical_cpus)
    chief = distribute.is_chief(strategy)
    # Only the chief writes into artifacts/; another worker keeps its folder outside it.
    folder = RunFolder(run_dir(config) if chief else distribute.worker_dir(strategy, config.folder_name))
    if multi_worker:  # each worker decides from its own folder, so all of them skip (or train) together
        done = _finished_before(folder, config, log)
        if done:
            return dict(done, chief=chief, folder=folder.path)
        if chief:
            fileio.check_writable(os.path.dirname(folder.path))
    return dict(run(config, dataset, strategy, folder, log, verbose, chief, engine_options), chief=chief,
                folder=folder.path)


def _finished_before(folder, config, log):
    """The metrics of an already finished run (marked skipped), unless --overwrite."""
    done = folder.finished_metrics()
    if done and not config.outputs.overwrite:
        log(f"{config.folder_name}: already finished (test accuracy {done['final_test_accuracy']:.4f}); "
            "pass --overwrite to train it again")
        return dict(done, skipped=True)
    return None


def run(config, dataset, strategy, folder, log, verbose, chief=True, engine_options=engine.Options()):
    """The steps of one run in `folder`; returns its metrics."""
    config = steps_per_call(config, log)
    steps_per_epoch = -(-len(dataset.y_train) // config.learning.batch_size)
    model, trainee, sync_bn = build(config, strategy, steps_per_epoch, engine_options)
    params = model_lib.trainable_params(model)
    folder.prepare(config.outputs.overwrite)
    write_start_files(folder, config, dataset, model, params, strategy.num_replicas_in_sync, sync_bn)
    log(f"{config.folder_name}: {config.learning.norm} l1={config.learning.l1:g} l2={config.learning.l2:g}, "
        f"{params} params, {dataset.name} {len(dataset.y_train)}/{len(dataset.y_val)}/{len(dataset.y_test)} "
        "train/val/test images, "
        f"{config.learning.epochs} epochs")
    if trainee is not model and engine.kernel_status():
        log(f"{config.folder_name}: the C++ normalization kernel is unavailable ({engine.kernel_status()}); "
            "training with TensorFlow ops (same results, slower)")
    test_data = pipeline.eval_pipeline(dataset.x_test, dataset.y_test)
    if distribute.is_multi_worker(strategy):
        test_data = distribute.shard_by_data(test_data)
    fit(trainee, dataset, config, strategy, callbacks(folder, config, dataset, test_data, log), verbose,
        fast_rotation=config.runtime.fast and engine_options.fast_rotation)
    return finish(folder, config, dataset, trainee, params, chief, log, engine_options)


def build(config, strategy, steps_per_epoch, engine_options=engine.Options()):
    """(Keras model, the model that trains, synchronized BN?): with `--fast` the second is the engine's
    faster copy of the first, else the same object. Both are built in the strategy's scope."""
    learning, runtime = config.learning, config.runtime
    sync_bn = runtime.sync_bn and strategy.num_replicas_in_sync > 1 and learning.norm == "bn"
    set_seeds(learning.seed, runtime.deterministic)
    with strategy.scope():
        model = model_lib.build_from_config(learning, sync_bn=sync_bn)
        trainee = accelerated(model, runtime, engine_options)
        compile_model(trainee, learning, runtime.steps_per_execution, steps_per_epoch)
    return model, trainee, sync_bn


def steps_per_call(config, log):
    """`config` with the steps per compiled call its run trains: `--steps_per_execution`, but 1 under
    `--distribute`."""
    if config.runtime.distribute != "none" and config.runtime.steps_per_execution > 1:
        # Keras 3.15's multi-step training loop fails to build under tf.distribute strategies.
        log(f"{config.folder_name}: --distribute trains one step per call")
        config = config.replace(steps_per_execution=1)
    return config


def accelerated(model, runtime, engine_options=engine.Options()):
    """With `--fast`, the speed engine's copy of `model`; else `model` itself."""
    return engine.accelerate(model, engine_options) if runtime.fast else model


def compile_model(model, learning, steps_per_execution, steps_per_epoch):
    """SGD with Nesterov momentum on the learning-rate schedule, cross-entropy on logits.

    Keras's `loss` includes the L1/L2 penalty; the `xent` metric is the data loss alone (what the report plots)."""
    schedule = make_schedule(learning.schedule, learning.lr, steps_per_epoch, learning.epochs)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=schedule, momentum=learning.momentum, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy", keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="xent")],
        steps_per_execution=steps_per_execution,
    )


def write_start_files(folder, config, dataset, model, params, replicas, sync_bn):
    folder.write("config.json", {
        "name": config.name, "flags": config.flat(), "dataset": dataset.identity(), "params": params,
        "replicas": replicas, "synchronized_bn": sync_bn, "versions": evaluate.library_versions()})
    lines = []
    model.summary(print_fn=lambda s, **_: lines.append(s))
    fileio.write_text(folder.file("summary.txt"), "\n".join(lines) + "\n")


def callbacks(folder, config, dataset, test_data, log):
    """Keras's callbacks plus the project's; the best weights are chosen on the validation split, and
    after a resume only a better epoch than those already seen replaces them."""
    out = [
        keras.callbacks.TerminateOnNaN(),
        TestEvaluation(test_data),  # before EpochLog, which records what it adds
        EpochLog(folder, config.folder_name, config.learning.epochs, log),
        ValidationBestCheckpoint(folder.file("best.weights.h5"), seen=folder.history()),
        # double_checkpoint keeps the previous epoch's backup, so a kill during a save can fall back on it.
        keras.callbacks.BackupAndRestore(folder.file("backup"), double_checkpoint=True),
    ]
    if config.runtime.distribute == "none":  # a probe of one process's model copy (keras_norm/layer_stats.py)
        out.insert(1, InsideStats(folder, config.learning, dataset.x_val, dataset.y_val))
    if config.outputs.tensorboard:
        out.append(keras.callbacks.TensorBoard(folder.file("tensorboard")))
    return out


def fit(model, dataset, config, strategy, callback_list, verbose, fast_rotation=False):
    learning = config.learning
    train_data = pipeline.train_pipeline(dataset, learning.batch_size, learning.seed, learning.augment,
                                         learning.rotation_degrees, fast=fast_rotation,
                                         deterministic=config.runtime.deterministic)
    val_data = pipeline.eval_pipeline(dataset.x_val, dataset.y_val)
    if distribute.is_multi_worker(strategy):
        train_data, val_data = distribute.shard_by_data(train_data), distribute.shard_by_data(val_data)
    if strategy.num_replicas_in_sync > 1:  # Keras's build from a distributed batch fails on uneven ones
        distribute.build_from_local_batch(model, (dataset.x_val[:2], dataset.y_val[:2]))
    model.fit(train_data, validation_data=val_data, epochs=learning.epochs, callbacks=callback_list, shuffle=False,
              verbose=verbose)


def finish(folder, config, dataset, trainee, params, chief, log, engine_options=engine.Options()):
    """Checks the run completed, writes metrics; the chief also saves, evaluates and exports the best model."""
    history = folder.history()
    losses = [r.get(k, np.nan) for r in history for k in ("loss", "val_loss", "test_loss")]
    if len(history) < config.learning.epochs or not np.all(np.isfinite(losses)) \
            or not os.path.exists(folder.file("best.weights.h5")):
        reason = "loss became NaN/inf (diverged); try a lower --lr"
        folder.write("metrics.json", {"status": "failed", "name": config.name, "seed": config.learning.seed,
                                      "norm": config.learning.norm, "reason": reason, "epochs": len(history)})
        folder.drop_backup()
        raise KerasNormError(f"{config.folder_name}: {reason}")
    metrics = evaluate.summarize(history, params, dataset, config)
    metrics["weights"] = evaluate.weight_stats(trainee)  # the final epoch's weights
    metrics["model_input"] = "raw pixels 0-255, shape (N, 28, 28, 1)"  # model.keras and the SavedModel
    metrics["peak_rss_mb"] = evaluate.peak_rss_mb()  # this process's peak so far: a bound for one run
    if chief:  # the chief reports the errors and exports the model
        final = keras_copy(config, trainee)  # the final epoch's weights: the headline model
        folder.write("misclassified.json", evaluate.misclassified(final, dataset))
        model = model_lib.for_raw_pixels(best_keras_model(config, folder.file("best.weights.h5"), engine_options),
                                         config.learning, dataset.mean, dataset.std)  # takes 0-255 pixels
        model.save(folder.file("model.keras"))
        if config.outputs.export:
            shutil.rmtree(folder.file("saved_model"), ignore_errors=True)  # a half export of a killed attempt
            model.export(folder.file("saved_model"), format="tf_saved_model", verbose=False)
    folder.write("metrics.json", metrics)
    log(f"{config.folder_name}: final test accuracy {metrics['final_test_accuracy']:.4f}; exported the validation-best "
        f"{metrics['exported_because']}, test accuracy there {metrics['test_accuracy_at_val_best']:.4f}; "
        f"{metrics['mean_epoch_seconds']:.1f} s/epoch")
    return metrics


def keras_copy(config, trainee):
    """The plain Keras model with the trainee's current weights, outside any strategy scope."""
    model = model_lib.build_from_config(config.learning)
    model.set_weights(trainee.get_weights())  # same weights, same order (keras_norm/engine)
    return model


def best_keras_model(config, weights_path, engine_options=engine.Options()):
    """The plain Keras model with the validation-best weights, built outside any strategy scope (it is
    evaluated and exported by the chief alone). The weights file has the layout of the model that trained."""
    model = model_lib.build_from_config(config.learning)
    trained_layout = accelerated(model, config.runtime, engine_options)
    trained_layout.load_weights(weights_path)
    if trained_layout is not model:
        model.set_weights(trained_layout.get_weights())  # same weights, same order
    return model


def set_seeds(seed, deterministic=False):
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def set_threads(threads):
    """TensorFlow threads per op pool (intra- and inter-op); 0 keeps TensorFlow's default."""
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
