"""Training-speed benchmark: the project's training path against plain `model.fit` on NumPy arrays.

    python -m keras_norm.bench --data_path=../shared/data/mnist.npz [--steps=100 --repeats=7] [--levers]

For each norm it builds the project's default model twice with the same weights:

* baseline: Keras's own normalization layers, `model.fit(x, y, batch_size=...)` on NumPy arrays,
  Keras defaults otherwise (same optimizer, loss and batch size as the project, one step per call);
* project: the training path of `main.py`: the fused layers of keras_norm/fused.py (each norm and
  the ReLU after it as one C++ kernel, keras_norm/native.py), the tf.data pipeline of keras_norm/data.py
  (shuffle, random rotation, prefetch) and `steps_per_execution`.

It warms both up, then times `steps` training steps of each, interleaved, `repeats` times (the median
counts), and prints one JSON line per norm plus one with the peak resident memory of the process.
Each timing runs inside one `fit` call, from the end of its first executed step to the end of its last
(a callback notes the times): the seconds `fit` spends creating and tearing down its input iterator
are left out. They are not small here: TensorFlow's tf.data autotuning thread sleeps with a doubling
period (10 ms, 20 ms, ... 2.56 s), and ending an iterator can wait for its next wake-up, so timing
whole `fit` calls rounded many of them up to 2.56 s or 5.11 s and made ratios swing by 2x. (A training
run makes one iterator per epoch, so whatever it waits there is spread over 938 steps.)
`--levers` adds one line per norm and lever, each lever alone on top of the baseline. Times on a
shared machine drift, so only ratios measured within one run (`speedup`) are meaningful.
"""

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

# Each lever alone, on top of the baseline (see `_lever_setup`).
LEVERS = ("fused_norm", "native_kernel", "steps_per_execution_8", "tf_data_cached", "tf_data_rotation", "mixed_bfloat16")


def _fit_seconds_per_step(model, x, y=None, steps=None, batch_size=None):
    """Seconds per training step inside one `fit`, from the end of its first executed step to the end of
    its last: creating and tearing down the input iterator (a tf.data shuffle buffer to fill, a background
    thread to stop) is left out, for the baseline and the project alike."""
    from keras_norm.callbacks import StepTimer

    timer = StepTimer()
    if y is None:
        model.fit(x, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
    else:
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=True, callbacks=[timer])
    (first_step, first_time), (last_step, last_time) = timer.marks[0], timer.marks[-1]
    return (last_time - first_time) / max(1, last_step - first_step)


class _Contender:
    """One model and how it is fed; `run(steps)` trains about that many steps and returns seconds per step."""

    def __init__(self, model, pipeline=None, arrays=None, batch_size=None):
        self.model, self.pipeline, self.arrays, self.batch_size = model, pipeline, arrays, batch_size

    def run(self, steps):
        if self.pipeline is not None:
            return _fit_seconds_per_step(self.model, self.pipeline, steps=steps)
        x, y = self.arrays
        n = steps * self.batch_size
        return _fit_seconds_per_step(self.model, x[:n], y[:n], batch_size=self.batch_size)


def _build(config, weights=None, policy="float32"):
    import keras

    from keras_norm import model as model_lib, train

    keras.mixed_precision.set_global_policy(policy)
    try:
        model = model_lib.build_from_config(config)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if weights is not None:
        model.set_weights(weights)
    train.compile_model(model, config, steps_per_epoch=1000)
    return model


def _lever_setup(lever, config, dataset, weights):
    """The baseline plus one lever."""
    import tensorflow as tf

    plain = _baseline_config(config)
    arrays = (dataset.x_train, dataset.y_train)
    if lever == "fused_norm":  # keras_norm/fused.py with TensorFlow ops only
        return _Contender(_build(plain.replace(fused=True, native=False), weights), arrays=arrays,
                          batch_size=config.batch_size)
    if lever == "native_kernel":  # the same, with norm + ReLU as one C++ kernel
        return _Contender(_build(plain.replace(fused=True, native=True), weights), arrays=arrays,
                          batch_size=config.batch_size)
    if lever == "tf_data_cached":
        pipe = (tf.data.Dataset.from_tensor_slices(arrays).cache().shuffle(len(dataset.y_train), seed=0)
                .batch(config.batch_size).repeat().prefetch(tf.data.AUTOTUNE))
        return _Contender(_build(plain, weights), pipeline=pipe)
    if lever == "tf_data_rotation":  # the project's input pipeline, augmentation included: what it costs
        return _Contender(_build(plain, weights), pipeline=_project_pipeline(config, dataset))
    if lever == "steps_per_execution_8":
        return _Contender(_build(plain.replace(steps_per_execution=8), weights), arrays=arrays,
                          batch_size=config.batch_size)
    if lever == "mixed_bfloat16":
        return _Contender(_build(plain, weights, policy="mixed_bfloat16"), arrays=arrays, batch_size=config.batch_size)
    raise ValueError(lever)


def _baseline_config(config):
    """The same model with Keras's own layers, trained with Keras's defaults."""
    return config.replace(fused=False, steps_per_execution=1)


def _project_pipeline(config, dataset):
    from keras_norm import data

    return data.train_pipeline(dataset, config.batch_size, seed=0, augment=config.augment,
                               rotation_degrees=config.rotation_degrees).repeat()


def bench_norm(norm, dataset, steps, repeats, levers=False):
    """Returns a list of result dicts: the project's line first, then one per lever."""
    import keras

    from keras_norm.config import Config

    config = Config(norm=norm)
    batch = config.batch_size
    keras.utils.set_random_seed(0)
    baseline = _build(_baseline_config(config))
    weights = baseline.get_weights()  # both start from the same weights
    contenders = {
        "baseline": _Contender(baseline, arrays=(dataset.x_train, dataset.y_train), batch_size=batch),
        "project": _Contender(_build(config, weights), pipeline=_project_pipeline(config, dataset)),
    }
    if levers:
        contenders.update({lever: _lever_setup(lever, config, dataset, weights) for lever in LEVERS})
    for c in contenders.values():
        c.run(max(2 * config.steps_per_execution, steps // 5))  # warm-up: tracing, thread pools
    seconds = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, c in contenders.items():
            seconds[name].append(c.run(steps))
    ips = {name: batch / float(np.median(s)) for name, s in seconds.items()}
    base = ips["baseline"]
    from keras_norm import native

    # False: the C++ kernel could not be built, and the norms ran on TensorFlow ops (native.why_not() says why).
    common = {"steps": steps, "repeats": repeats, "batch_size": batch, "native_kernel": native.load() is not None}
    out = [{"norm": norm, "baseline_images_per_sec": round(base, 1), "images_per_sec": round(ips["project"], 1),
            "speedup": round(ips["project"] / base, 3), **common}]
    for lever in LEVERS if levers else ():
        out.append({"norm": norm, "lever": lever, "baseline_images_per_sec": round(base, 1),
                    "images_per_sec": round(ips[lever], 1), "speedup": round(ips[lever] / base, 3), **common})
    return out


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)  # Linux: KiB


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_path", default=None, help="Keras-layout MNIST .npz")
    parser.add_argument("--norms", default="bn,gn,ln")
    parser.add_argument("--steps", type=int, default=100, help="timed training steps per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--levers", action="store_true", help="also time each speed lever alone")
    parser.add_argument("--intra_op_threads", type=int, default=0, help="TensorFlow threads per op (0: its default)")
    parser.add_argument("--inter_op_threads", type=int, default=0, help="ops run concurrently (0: its default)")
    parser.add_argument("--short", action="store_true", help="a few steps only: checks the harness, not speed")
    args = parser.parse_args(argv)
    if args.short:
        args.steps, args.repeats = 16, 1
    from keras_norm import data
    from keras_norm.config import NORMS, Config
    from keras_norm.errors import KerasNormError
    from keras_norm.quiet import import_tensorflow

    batch, per_call = Config().batch_size, Config().steps_per_execution
    try:
        norms = args.norms.split(",")
        unknown = [n for n in norms if n not in NORMS]
        if unknown:
            raise KerasNormError(f"unknown norm(s) {', '.join(unknown)}; choose from {', '.join(NORMS)}")
        if args.repeats <= 0:
            raise KerasNormError("--repeats must be > 0")
        if args.steps < 2 * per_call:
            # A timing runs from the end of the first compiled call to the end of the last one.
            raise KerasNormError(f"--steps must be at least {2 * per_call} (two calls of {per_call} steps)")
        dataset = data.load(args.data_path, train_limit=args.steps * batch)
        if len(dataset.y_train) < args.steps * batch:
            raise KerasNormError(f"{args.steps} steps of {batch} need {args.steps * batch} training images, "
                                 f"the data has {len(dataset.y_train)}")
    except KerasNormError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    import_tensorflow()
    import tensorflow as tf

    # Thread pools are per process: compare runs with different settings by their images/s.
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    for norm in norms:
        for line in bench_norm(norm, dataset, args.steps, args.repeats, levers=args.levers):
            print(json.dumps(line), flush=True)
    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "intra_op_threads": args.intra_op_threads,
                      "inter_op_threads": args.inter_op_threads}), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
