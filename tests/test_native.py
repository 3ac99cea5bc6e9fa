"""The C++ normalization kernel: it builds, it is what training runs, and it computes what TensorFlow computes."""

import concurrent.futures
import contextlib
import io
import os
import shutil
import stat
import tempfile
import unittest
from unittest import mock

import numpy as np
import tensorflow as tf

from keras_norm.engine import fused, native

HAS_COMPILER = bool(os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++"))


def reference(x, gamma, beta, groups, batch, relu, epsilon=1e-3):
    """The textbook formulas in plain TensorFlow ops (differentiated by TensorFlow): y, mean, variance."""
    if batch:
        mean, variance = tf.nn.moments(x, [0, 1, 2])
        y = (x - mean) * tf.math.rsqrt(variance + epsilon)
    else:
        n, h, w, c = x.shape
        xg = tf.reshape(x, [n, h, w, groups, c // groups])
        mean, variance = tf.nn.moments(xg, [1, 2, 4], keepdims=True)
        y = tf.reshape((xg - mean) * tf.math.rsqrt(variance + epsilon), x.shape)
        mean, variance = tf.reshape(mean, [n, groups]), tf.reshape(variance, [n, groups])
    y = y * gamma + beta
    return (tf.nn.relu(y) if relu else y), mean, variance


def kernel(x, gamma, beta, groups, batch, relu):
    return native.normalize(x, gamma, beta, 1e-3, groups=groups, batch=batch, relu=relu)


def values_and_gradients(fn, x, gamma, beta, dy, **kwargs):
    with tf.GradientTape() as tape:
        tape.watch([x, gamma, beta])
        y, mean, variance = fn(x, gamma, beta, **kwargs)
        loss = tf.reduce_sum(y * dy)
    return [y, mean, variance] + tape.gradient(loss, [x, gamma, beta])


@contextlib.contextmanager
def failed_build():
    """A fresh load() whose compiler fails (CXX=false), with an empty cache; yields the cache folder. The
    loaded state is restored afterwards."""
    saved = dict(native._state)
    try:
        with tempfile.TemporaryDirectory() as cache, mock.patch.dict(
                os.environ, {"XDG_CACHE_HOME": cache, "CXX": shutil.which("false") or "false"}):
            native._state.clear()
            yield cache
    finally:
        native._state.clear()
        native._state.update(saved)


def op_types(fn, *args):
    graph = tf.function(fn).get_concrete_function(*args).graph
    return {op.type for op in graph.get_operations()}


@unittest.skipUnless(HAS_COMPILER, "no C++ compiler: the layers fall back to TensorFlow ops (tests/test_fused.py)")
class NativeKernelTest(unittest.TestCase):
    def test_it_builds(self):
        self.assertIsNotNone(native.load(), native.why_not())

    def test_forward_and_gradients_match_tensorflow(self):
        rng = np.random.default_rng(1)
        # 8 and 16 channels take the vectorized loops, 6 the scalar ones; groups 1 is LN, groups = C is IN.
        cases = [((5, 7, 6, 8), 1, False), ((4, 9, 9, 16), 4, False), ((3, 5, 4, 16), 16, False),
                 ((3, 4, 4, 6), 2, False), ((6, 5, 5, 16), 1, True), ((6, 5, 5, 6), 1, True)]
        for shape, groups, batch in cases:
            for relu in (False, True):
                with self.subTest(shape=shape, groups=groups, batch=batch, relu=relu):
                    x = tf.constant(rng.normal(1.0, 2.0, shape).astype("float32"))
                    gamma = tf.constant(rng.uniform(0.5, 1.5, shape[-1]).astype("float32"))
                    beta = tf.constant(rng.normal(size=shape[-1]).astype("float32"))
                    dy = tf.constant(rng.normal(size=shape).astype("float32"))
                    args = dict(groups=groups, batch=batch, relu=relu)
                    expected = values_and_gradients(reference, x, gamma, beta, dy, **args)
                    actual = values_and_gradients(kernel, x, gamma, beta, dy, **args)
                    for name, e, a in zip(("y", "mean", "variance", "dx", "dgamma", "dbeta"), expected, actual):
                        self.assertEqual(e.shape, a.shape, name)
                        scale = float(np.max(np.abs(e.numpy())))
                        self.assertLess(float(np.max(np.abs(e.numpy() - a.numpy()))) / scale, 1e-5, name)
                    # Per-example sums are added in a fixed order: the same inputs give the same bits.
                    again = values_and_gradients(kernel, x, gamma, beta, dy, **args)
                    for a, b in zip(actual, again):
                        np.testing.assert_array_equal(a.numpy(), b.numpy())

    def test_an_empty_batch_gives_empty_outputs_and_zero_parameter_gradients(self):
        x = tf.zeros((0, 4, 4, 8))
        for batch in (False, True):
            with self.subTest(batch=batch):
                y, mean, variance, dx, dgamma, dbeta = values_and_gradients(
                    kernel, x, tf.ones(8), tf.zeros(8), tf.zeros((0, 4, 4, 8)), groups=2, batch=batch, relu=True)
                self.assertEqual((y.shape, dx.shape), ((0, 4, 4, 8), (0, 4, 4, 8)))
                self.assertEqual(mean.shape, (8,) if batch else (0, 2))
                np.testing.assert_array_equal(dgamma.numpy(), np.zeros(8))
                np.testing.assert_array_equal(dbeta.numpy(), np.zeros(8))

    def test_training_runs_the_kernel_and_inference_does_not(self):
        x = tf.TensorSpec((8, 6, 6, 16), tf.float32)
        for make in (lambda **kw: fused.FusedGroupNormalization(groups=4, activation="relu", **kw),
                     lambda **kw: fused.FusedBatchNormalization(activation="relu", **kw)):
            layer, off = make(), make(native=False)
            with self.subTest(layer=type(layer).__name__):
                layer.build(x.shape)
                off.build(x.shape)
                training = op_types(lambda t: layer(t, training=True), x)
                self.assertIn("KerasNormNormalize", training)
                self.assertNotIn("Relu", training)  # the ReLU is inside the kernel
                # An exported SavedModel traces inference: it must not need the project's library.
                self.assertNotIn("KerasNormNormalize", op_types(lambda t: layer(t, training=False), x))
                self.assertNotIn("KerasNormNormalize", op_types(lambda t: off(t, training=True), x))

    def test_a_failed_build_falls_back_to_tensorflow_ops_and_says_why(self):
        with failed_build() as cache:
            self.assertIsNone(native.load())
            self.assertIn("failed", native.why_not())
            layer = fused.FusedGroupNormalization(groups=4)
            x = tf.TensorSpec((None, 6, 6, 16), tf.float32)
            layer.build(x.shape)
            self.assertNotIn("KerasNormNormalize", op_types(lambda t: layer(t, training=True), x))
            left = [f for f in os.listdir(cache + "/keras_norm") if not f.endswith(".lock")]
            self.assertEqual(left, [])  # no half-built library left behind
        saved = dict(native._state)
        try:
            with mock.patch.dict(os.environ, {"KERAS_NORM_NATIVE": "0"}):
                native._state.clear()
                self.assertIsNone(native.load())
                self.assertEqual(native.why_not(), "KERAS_NORM_NATIVE=0")
        finally:
            native._state.clear()
            native._state.update(saved)


if __name__ == "__main__":
    unittest.main()


class BuildOnceTest(unittest.TestCase):
    def test_builds_started_together_compile_once(self):
        """Two builds at once (a suite's processes, parallel tests) share one compile: the second waits for
        the first's library. A stand-in compiler logs each call and writes its -o file."""
        with tempfile.TemporaryDirectory() as tmp:
            log, cxx = os.path.join(tmp, "calls"), os.path.join(tmp, "cxx")
            with open(cxx, "w") as f:
                f.write('#!/bin/sh\necho call >> "$FAKE_CXX_LOG"\nsleep 0.5\n'
                        'while [ $# -gt 0 ]; do [ "$1" = -o ] && touch "$2"; shift; done\n')
            os.chmod(cxx, os.stat(cxx).st_mode | stat.S_IEXEC)
            env = {"XDG_CACHE_HOME": os.path.join(tmp, "cache"), "CXX": cxx, "FAKE_CXX_LOG": log}
            said = io.StringIO()
            with mock.patch.dict(os.environ, env), contextlib.redirect_stderr(said), \
                    concurrent.futures.ThreadPoolExecutor(2) as pool:
                paths = list(pool.map(lambda _: native._build(), range(2)))
            self.assertEqual(said.getvalue().count("building the speed engine's C++ kernels"), 1)  # one line, once
            self.assertEqual(paths[0], paths[1])
            self.assertTrue(os.path.exists(paths[0]))
            with open(log) as f:
                calls = f.read().split()
            self.assertEqual(len(calls), len(native.UNITS) + 1)  # each unit compiled once, one link
