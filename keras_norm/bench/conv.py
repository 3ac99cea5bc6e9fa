"""Per-layer times of the default model's 3x3 convolutions: TensorFlow's conv ops against the C++ kernel.

Part of `--bench_levers`, or alone: `python -m keras_norm.bench.conv`. For each 3x3 Conv2D of the
default model (batch 64), one training step's convolution work: the forward pass, the kernel gradient and
(except for the first layer, fed by the data) the input gradient. Each is timed inside one graph that runs
it on `REPEATS` different inputs (identical inputs would be merged by TensorFlow's common-subexpression
elimination), so Python's per-call overhead is not counted. TensorFlow and the kernel alternate, `rounds`
times; the fastest round counts.
"""

import time

import keras
import numpy as np
import tensorflow as tf

from keras_norm import model as model_lib
from keras_norm.config import Learning
from keras_norm.engine import native

REPEATS = 10


def conv_shapes(batch):
    """[(name, input shape (N, H, W, Ci), kernel shape)] of the default model's 3x3 convolutions."""
    model = model_lib.build_from_config(Learning())
    return [(layer.name, (batch, *layer.input.shape[1:]), tuple(layer.kernel.shape)) for layer in model.layers
            if isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (3, 3)]


def _work(conv_and_grads, xs, dys, kernel, input_gradient):
    """A graph computing y, dw (and dx) for every (x, dy) pair."""
    return tf.function(lambda: [conv_and_grads(x, dy, kernel, input_gradient) for x, dy in zip(xs, dys)])


def _tensorflow(x, dy, kernel, input_gradient):
    y = tf.nn.conv2d(x, kernel, 1, "VALID")
    dw = tf.compat.v1.nn.conv2d_backprop_filter(x, kernel.shape, dy, [1, 1, 1, 1], "VALID")
    dx = tf.compat.v1.nn.conv2d_backprop_input(tf.shape(x), kernel, dy, [1, 1, 1, 1], "VALID") if input_gradient else y
    return y, dw, dx


def _kernel(x, dy, kernel, input_gradient):
    ops = native.load()
    y = ops.keras_norm_conv3x3(x, kernel)
    dw = ops.keras_norm_conv3x3_filter_grad(x, dy)
    dx = ops.keras_norm_conv3x3_input_grad(dy, kernel) if input_gradient else y
    return y, dw, dx


def _seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def layer_times(batch=64, rounds=5):
    """One dict per layer: milliseconds per step with TensorFlow's ops and with the kernel, and their ratio."""
    if native.load() is None:
        return []
    rng = np.random.default_rng(0)
    out = []
    for index, (name, shape, kernel_shape) in enumerate(conv_shapes(batch)):
        out_shape = (shape[0], shape[1] - 2, shape[2] - 2, kernel_shape[3])
        xs = [tf.constant(rng.normal(size=shape).astype("float32")) for _ in range(REPEATS)]
        dys = [tf.constant(rng.normal(size=out_shape).astype("float32")) for _ in range(REPEATS)]
        kernel = tf.constant(rng.normal(size=kernel_shape).astype("float32"))
        fns = {impl: _work(fn, xs, dys, kernel, input_gradient=index > 0)
               for impl, fn in (("tensorflow", _tensorflow), ("kernel", _kernel))}
        best = {impl: float("inf") for impl in fns}
        for fn in fns.values():
            fn()  # trace and warm up
        for _ in range(rounds):
            for impl, fn in fns.items():
                best[impl] = min(best[impl], _seconds(fn) / REPEATS)
        out.append({"layer": name, "input": list(shape), "kernel": list(kernel_shape), "input_gradient": index > 0,
                    "tensorflow_ms": round(1e3 * best["tensorflow"], 3), "kernel_ms": round(1e3 * best["kernel"], 3),
                    "speedup": round(best["tensorflow"] / best["kernel"], 3)})
    return out


if __name__ == "__main__":  # python -m keras_norm.bench.conv > artifacts/perf/conv_layers.jsonl
    import json

    for line in layer_times():
        print(json.dumps(line), flush=True)
