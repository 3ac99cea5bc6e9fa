"""Training-speed benchmark: the engine's training path against plain `model.fit` on NumPy arrays.

    python main.py --bench --data_path=mnist.npz [--bench_steps=256 --bench_repeats=7] [--bench_levers]

For each norm it builds the default model four times with the same weights:

* baseline: Keras's own layers, `model.fit(x, y, batch_size=...)` on NumPy arrays, Keras defaults otherwise
  (same optimizer, loss and batch size as a run, one step per call);
* engine: the training path of `main.py` (paths.ENGINE): the model after `engine.accelerate` (each norm and
  the ReLU after it as one C++ kernel; the 3x3 and 1x1 convolutions, dropout and max pooling on the engine's
  kernels), the tf.data pipeline of keras_norm/pipeline.py (shuffle, rotation on the engine's kernel,
  prefetch) and `steps_per_execution`;
* norm_kernel: the engine's norm kernel alone, with TensorFlow's convolutions, Keras's Dropout, MaxPooling2D
  and RandomRotation, 8 steps per call (paths.NORM_KERNEL): `step_speedup` = engine / norm_kernel, written
  per norm to `--bench_step_speedup=PATH` if given;
* free_convs: the engine's path with 3x3 convolutions that compute nothing (`_no_arithmetic_conv3x3`):
  `free_convs_step_speedup` = free_convs / norm_kernel bounds what any convolution code could give.

It warms them up, then times `steps` training steps of each, interleaved, `repeats` times (the median
counts), and prints one JSON line per norm plus one with the peak resident memory of the process.
Each timing runs inside one `fit` call, from the end of its first executed step to the end of its last
(a callback notes the times): the seconds `fit` spends creating and tearing down its input iterator
are left out. They are not small here: TensorFlow's tf.data autotuning thread sleeps with a doubling
period (10 ms, 20 ms, ... 2.56 s), and ending an iterator can wait for its next wake-up, so timing
whole `fit` calls rounded many of them up to 2.56 s or 5.11 s and made ratios swing by 2x. (A training
run makes one iterator per epoch, so whatever it waits there is spread over 938 steps.)
`--bench_levers` adds one line per norm and lever, each lever alone on top of the baseline, and one line per
3x3 convolution of the model with its time on TensorFlow's ops and on the C++ kernel (conv.py).
`--bench_profile` adds, per norm, a profile of `steps` steps of both paths: op time per step by op type and by
layer (profile.py). `--bench_runs=N` adds, per norm, whole training runs of both paths timed N times,
interleaved (runs.py). `--bench_parts` adds one line per norm and part of the engine (paths.PARTS): the engine's
path without that part, interleaved with the rest, and the `gain` of having it. Times on a shared machine
drift, so only ratios measured within one run (`speedup`) are meaningful.
"""

import contextlib
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from keras_norm import data, engine, evaluate, fileio, pipeline, train
from keras_norm import model as model_lib
from keras_norm.bench import conv, paths, profile, runs
from keras_norm.config import Learning
from keras_norm.engine import native
from keras_norm.errors import KerasNormError

# Each lever alone, on top of the baseline (see `_lever_setup`).
LEVERS = ("fused_norm", "native_kernel", "steps_per_execution_8", "tf_data_cached", "tf_data_rotation", "mixed_bfloat16")


class StepTimer(keras.callbacks.Callback):
    """Notes (end step, time) after every call of the compiled training function (the benchmark's clock)."""

    def __init__(self):
        super().__init__()
        self.marks = []

    def on_train_batch_end(self, batch, logs=None):
        self.marks.append((batch, time.perf_counter()))


def _fit_seconds_per_step(model, x, y=None, steps=None, batch_size=None):
    """Seconds per training step inside one `fit`, from the end of its first executed step to the end of
    its last: creating and tearing down the input iterator (a tf.data shuffle buffer to fill, a background
    thread to stop) is left out, for the baseline and the engine alike."""
    timer = StepTimer()
    if y is None:
        model.fit(x, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
    else:
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=True, callbacks=[timer])
    (first_step, first_time), (last_step, last_time) = timer.marks[0], timer.marks[-1]
    return (last_time - first_time) / max(1, last_step - first_step)


class _Contender:
    """One model and how it is fed; `run(steps)` trains about that many steps and returns seconds per step.
    `context`: entered around every run (the first one traces the training function)."""

    def __init__(self, model, pipeline=None, arrays=None, batch_size=None, context=contextlib.nullcontext):
        self.model, self.pipeline, self.arrays, self.batch_size = model, pipeline, arrays, batch_size
        self.context = context

    def run(self, steps):
        with self.context():
            if self.pipeline is not None:
                return _fit_seconds_per_step(self.model, self.pipeline, steps=steps)
            x, y = self.arrays
            n = steps * self.batch_size
            return _fit_seconds_per_step(self.model, x[:n], y[:n], batch_size=self.batch_size)


def _no_arithmetic_conv3x3(x, kernel, input_gradient=True):
    """Stands in for `native.conv3x3` without computing anything: an output of the right shape (the input's
    first channel, cropped and broadcast) and zero gradients. A path with it bounds what any code for the 3x3
    convolutions could make of the step."""

    @tf.custom_gradient
    def _conv(x, kernel):
        def grad(dy):
            return (tf.zeros_like(x) if input_gradient else None), tf.zeros_like(kernel)

        shape = tf.shape(x)
        return tf.broadcast_to(x[:, 1:-1, 1:-1, :1], [shape[0], shape[1] - 2, shape[2] - 2, kernel.shape[-1]]), grad

    return _conv(x, kernel)


@contextlib.contextmanager
def _free_convs():
    """FastConv2D layers traced inside compute no convolution (`_no_arithmetic_conv3x3`)."""
    real, native.conv3x3 = native.conv3x3, _no_arithmetic_conv3x3
    try:
        yield
    finally:
        native.conv3x3 = real


def _build(learning, spe, weights, engine_options=None, policy="float32"):
    """The default model (Keras's layers, or the engine's copy with `engine_options`) compiled as a run compiles
    it."""
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = model_lib.build_from_config(learning)
        if engine_options is not None:
            model = engine.accelerate(model, engine_options)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if weights is not None:
        model.set_weights(weights)
    train.compile_model(model, learning, spe, steps_per_epoch=1000)
    return model


def _lever_setup(lever, learning, dataset, weights):
    """The baseline plus one lever."""
    arrays, batch = (dataset.x_train, dataset.y_train), learning.batch_size
    if lever == "fused_norm":  # the engine's layers on TensorFlow ops only
        return _Contender(_build(learning, 1, weights, engine.Options(native_kernel=False)), arrays=arrays,
                          batch_size=batch)
    if lever == "native_kernel":  # the same, with norm + ReLU as one C++ kernel
        return _Contender(_build(learning, 1, weights, engine.Options()), arrays=arrays, batch_size=batch)
    if lever == "tf_data_cached":
        pipe = (tf.data.Dataset.from_tensor_slices(arrays).cache().shuffle(len(dataset.y_train), seed=0)
                .batch(batch).repeat().prefetch(tf.data.AUTOTUNE))
        return _Contender(_build(learning, 1, weights), pipeline=pipe)
    if lever == "tf_data_rotation":  # a run's input pipeline, augmentation included: what it costs
        return _Contender(_build(learning, 1, weights), pipeline=_pipeline(learning, dataset))
    if lever == "steps_per_execution_8":
        return _Contender(_build(learning, 8, weights), arrays=arrays, batch_size=batch)
    if lever == "mixed_bfloat16":
        return _Contender(_build(learning, 1, weights, policy="mixed_bfloat16"), arrays=arrays, batch_size=batch)
    raise ValueError(lever)


def _path(learning, dataset, weights, path=paths.ENGINE, context=contextlib.nullcontext):
    """A training path (paths.py) as a run trains it."""
    return _Contender(_build(learning, paths.steps_per_execution(path), weights, path.engine_options),
                      pipeline=_pipeline(learning, dataset, fast=path.engine_options.fast_rotation), context=context)


def _pipeline(learning, dataset, fast=False):
    return pipeline.train_pipeline(dataset, learning.batch_size, seed=0, augment=learning.augment,
                                   rotation_degrees=learning.rotation_degrees, fast=fast).repeat()


def _time(contenders, steps, repeats, warmup):
    """Median images/s of each contender: a warm-up (tracing, thread pools), then interleaved repeats."""
    for c in contenders.values():
        c.run(warmup)
    seconds = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, c in contenders.items():
            seconds[name].append(c.run(steps))
    return {name: float(np.median(s)) for name, s in seconds.items()}


def bench_norm(norm, dataset, steps, repeats, levers=False, parts=False):
    """Returns a list of result dicts: the engine path's line first, then one per lever and one per part."""
    learning, spe = Learning(norm=norm), paths.steps_per_execution(paths.ENGINE)
    batch = learning.batch_size
    keras.utils.set_random_seed(0)
    baseline = _build(learning, 1, None)  # Keras's own layers, one step per call
    weights = baseline.get_weights()  # every contender starts from the same weights
    contenders = {
        "baseline": _Contender(baseline, arrays=(dataset.x_train, dataset.y_train), batch_size=batch),
        "engine": _path(learning, dataset, weights),
        "norm_kernel": _path(learning, dataset, weights, paths.NORM_KERNEL),  # the comparison of the step speedup
        "free_convs": _path(learning, dataset, weights, context=_free_convs),  # the bound of any conv code
    }
    if levers:
        contenders.update({lever: _lever_setup(lever, learning, dataset, weights) for lever in LEVERS})
    if parts:
        contenders.update({f"without_{part}": _path(learning, dataset, weights, paths.without(part))
                           for part in paths.PARTS})
    seconds = _time(contenders, steps, repeats, warmup=max(2 * spe, steps // 5))
    ips = {name: batch / s for name, s in seconds.items()}
    base = ips["baseline"]
    # False: the C++ kernel could not be built, and the norms ran on TensorFlow ops (native.why_not() says why).
    common = {"steps": steps, "repeats": repeats, "batch_size": batch, "native_kernel": native.load() is not None,
              "cpu_instructions": native.instruction_set()}
    out = [{"norm": norm, "baseline_images_per_sec": round(base, 1), "images_per_sec": round(ips["engine"], 1),
            "speedup": round(ips["engine"] / base, 3), "norm_kernel_images_per_sec": round(ips["norm_kernel"], 1),
            "step_speedup": round(ips["engine"] / ips["norm_kernel"], 3),
            "free_convs_images_per_sec": round(ips["free_convs"], 1),
            "free_convs_step_speedup": round(ips["free_convs"] / ips["norm_kernel"], 3), **common}]
    for lever in LEVERS if levers else ():
        out.append({"norm": norm, "lever": lever, "baseline_images_per_sec": round(base, 1),
                    "images_per_sec": round(ips[lever], 1), "speedup": round(ips[lever] / base, 3), **common})
    for part in paths.PARTS if parts else ():  # what the engine's path gains from each part
        without = ips[f"without_{part}"]
        out.append({"norm": norm, "without": part, "images_per_sec": round(without, 1),
                    "engine_images_per_sec": out[0]["images_per_sec"], "gain": round(ips["engine"] / without, 3),
                    **common})
    return out


def profile_norm(norm, dataset, steps):
    """Profiles (profile.py) `steps` steps of each path of `paths.NAMES`."""
    learning = Learning(norm=norm)
    keras.utils.set_random_seed(0)
    contenders = {name: _path(learning, dataset, None, path) for name, path in paths.NAMES.items()}
    return [{"norm": norm, "path": name, **profile.profile(c.run, steps, [layer.name for layer in c.model.layers])}
            for name, c in contenders.items()]


def run(options, data_path=None, threads=0, out=print):
    """Prints one JSON line per norm (and lever), then one with the peak memory of the process.

    `options`: a validated options.BenchOptions."""
    steps, batch = options.steps, Learning().batch_size
    if options.step_speedup_path:  # fail before minutes of measuring, not after
        fileio.check_writable(os.path.dirname(options.step_speedup_path) or ".")
    dataset = data.load(data_path)
    if len(dataset.y_train) < steps * batch:
        raise KerasNormError(f"{steps} steps of {batch} need {steps * batch} training images, "
                             f"the data has {len(dataset.y_train)}")
    train.set_threads(threads)  # thread pools are per process: compare settings by their images/s
    speedups = {}
    for norm in options.norms:
        lines = bench_norm(norm, dataset, steps, options.repeats, levers=options.levers, parts=options.parts)
        speedups[norm] = {"norm_kernel_images_per_sec": lines[0]["norm_kernel_images_per_sec"],
                          "engine_images_per_sec": lines[0]["images_per_sec"], "speedup": lines[0]["step_speedup"]}
        for line in lines:
            out(json.dumps(line), flush=True)
    for line in conv.layer_times() if options.levers else ():  # per-layer conv times
        out(json.dumps(line), flush=True)
    for norm in options.norms if options.profile else ():
        for line in profile_norm(norm, dataset, steps):
            out(json.dumps(line), flush=True)
    for norm in options.norms if options.runs else ():
        out(json.dumps(runs.time_runs(norm, data_path, options.runs)), flush=True)
    out(json.dumps({"peak_rss_mb": evaluate.peak_rss_mb(), "threads": threads}), flush=True)
    if options.step_speedup_path:
        fileio.write_json(options.step_speedup_path, speedups)
