"""Training-speed benchmark: the project's training path against plain `model.fit` on NumPy arrays.

    python -m keras_norm.bench --data_path=../shared/data/mnist.npz [--steps=200 --repeats=3] [--levers]

For each norm it builds the project's default model twice with the same weights:

* baseline: Keras's own normalization layers, `model.fit(x, y, batch_size=...)` on NumPy arrays,
  Keras defaults otherwise (same optimizer, loss and batch size as the project);
* project: the training path of `main.py`: the fused layers of keras_norm/fused.py and the tf.data
  pipeline of keras_norm/data.py (shuffle, random rotation, prefetch).

It warms both up, then times `steps` training steps of each, interleaved, `repeats` times (the median
counts), and prints one JSON line per norm plus one with the peak resident memory of the process.
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
LEVERS = ("fused_norm", "tf_data_cached", "steps_per_execution_8", "mixed_bfloat16")


def _fit_seconds(model, x, y=None, steps=None, batch_size=None):
    start = time.perf_counter()
    if y is None:
        model.fit(x, epochs=1, steps_per_epoch=steps, verbose=0)
    else:
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=True)
    return time.perf_counter() - start


class _Contender:
    """One model and how it is fed; `run(steps)` trains that many steps and returns the seconds."""

    def __init__(self, model, pipeline=None, arrays=None, batch_size=None):
        self.model, self.pipeline, self.arrays, self.batch_size = model, pipeline, arrays, batch_size

    def run(self, steps):
        if self.pipeline is not None:
            return _fit_seconds(self.model, self.pipeline, steps=steps)
        x, y = self.arrays
        n = steps * self.batch_size
        return _fit_seconds(self.model, x[:n], y[:n], batch_size=self.batch_size)


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

    plain = config.replace(fused=False)
    arrays = (dataset.x_train, dataset.y_train)
    if lever == "fused_norm":
        return _Contender(_build(config.replace(fused=True), weights), arrays=arrays, batch_size=config.batch_size)
    if lever == "tf_data_cached":
        pipe = (tf.data.Dataset.from_tensor_slices(arrays).cache().shuffle(len(dataset.y_train), seed=0)
                .batch(config.batch_size).repeat().prefetch(tf.data.AUTOTUNE))
        return _Contender(_build(plain, weights), pipeline=pipe)
    if lever == "steps_per_execution_8":
        return _Contender(_build(plain.replace(steps_per_execution=8), weights), arrays=arrays,
                          batch_size=config.batch_size)
    if lever == "mixed_bfloat16":
        return _Contender(_build(plain, weights, policy="mixed_bfloat16"), arrays=arrays, batch_size=config.batch_size)
    raise ValueError(lever)


def bench_norm(norm, dataset, steps, repeats, levers=False):
    """Returns a list of result dicts: the project's line first, then one per lever."""
    import keras

    from keras_norm import data
    from keras_norm.config import Config

    config = Config(norm=norm)
    batch = config.batch_size
    keras.utils.set_random_seed(0)
    weights = _build(config.replace(fused=False)).get_weights()
    arrays = (dataset.x_train, dataset.y_train)
    contenders = {
        "baseline": _Contender(_build(config.replace(fused=False), weights), arrays=arrays, batch_size=batch),
        "project": _Contender(_build(config, weights), pipeline=data.train_pipeline(
            dataset, batch, seed=0, augment=config.augment, rotation_degrees=config.rotation_degrees).repeat()),
    }
    if levers:
        contenders.update({lever: _lever_setup(lever, config, dataset, weights) for lever in LEVERS})
    for c in contenders.values():
        c.run(max(2, steps // 5))  # warm-up: tracing, thread pools
    seconds = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, c in contenders.items():
            seconds[name].append(c.run(steps))
    ips = {name: steps * batch / float(np.median(s)) for name, s in seconds.items()}
    base = ips["baseline"]
    common = {"steps": steps, "repeats": repeats, "batch_size": batch}
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
    parser.add_argument("--steps", type=int, default=200, help="timed training steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--levers", action="store_true", help="also time each speed lever alone")
    parser.add_argument("--intra_op_threads", type=int, default=0, help="TensorFlow threads per op (0: its default)")
    parser.add_argument("--inter_op_threads", type=int, default=0, help="ops run concurrently (0: its default)")
    parser.add_argument("--short", action="store_true", help="a few steps only: checks the harness, not speed")
    args = parser.parse_args(argv)
    if args.short:
        args.steps, args.repeats = 4, 1
    from keras_norm import data
    from keras_norm.config import NORMS, Config
    from keras_norm.errors import KerasNormError
    from keras_norm.quiet import import_tensorflow

    batch = Config().batch_size
    try:
        norms = args.norms.split(",")
        unknown = [n for n in norms if n not in NORMS]
        if unknown:
            raise KerasNormError(f"unknown norm(s) {', '.join(unknown)}; choose from {', '.join(NORMS)}")
        if args.steps <= 0 or args.repeats <= 0:
            raise KerasNormError("--steps and --repeats must be > 0")
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
