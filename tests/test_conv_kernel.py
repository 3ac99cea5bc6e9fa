"""The C++ 3x3 and 1x1 convolution kernels: they compute what tf.nn.conv2d and its gradients compute, the same
bits every time, handle an empty batch, train only (inference keeps TensorFlow's ops) and fall back cleanly."""

import os
import subprocess
import sys
import tempfile
import unittest

import keras
import numpy as np
import tensorflow as tf

from keras_norm import engine
from keras_norm import model as model_lib
from keras_norm.bench import conv as bench_conv
from keras_norm.engine import conv, native
from tests.test_native import (
    HAS_COMPILER,
    failed_build,
    kernel,
    op_types,
    values_and_gradients,
)

# (H, W, Ci, Co): every 3x3 convolution of the default model, then odd ones (odd widths, the scalar loops
# for output widths other than 8 and 16, one output row or column, a first layer of odd and of long rows).
MODEL_SHAPES = [(28, 28, 1, 8), (26, 26, 8, 16), (12, 12, 8, 16), (10, 10, 16, 16), (8, 8, 16, 16)]
ODD_SHAPES = [(7, 9, 3, 5), (5, 6, 16, 8), (4, 3, 8, 16), (3, 11, 16, 8), (9, 3, 2, 16), (6, 7, 24, 32),
              (5, 9, 1, 8), (4, 37, 1, 8)]


# (H, W, Ci, Co) of 1x1 convolutions: the model's transition, then the scalar loops' widths and a 1x1 image.
SHAPES_1X1 = [(24, 24, 16, 8), (5, 7, 3, 5), (4, 4, 8, 16), (3, 5, 16, 16), (1, 1, 2, 3)]


def tensorflow_conv(x, w, dy):
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = tf.nn.conv2d(x, w, 1, "VALID")
    return [y, *tape.gradient(y, [x, w], dy)]


def kernel_conv(x, w, dy, input_gradient=True):
    convolve = native.conv3x3 if w.shape[0] == 3 else native.conv1x1
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = convolve(x, w, input_gradient=input_gradient)
    return [y, *tape.gradient(y, [x, w], dy)]


def random_case(shape, n=4, seed=0, size=3):
    h, w, ci, co = shape
    rng = np.random.default_rng(seed)
    x, k, dy = (tf.constant(rng.normal(size=s).astype("float32")) for s in
                ((n, h, w, ci), (size, size, ci, co), (n, h - size + 1, w - size + 1, co)))
    return x, k, dy


def relative_error(got, want):
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))


def same_bits_case():
    """Outputs and gradients of conv2's 3x3 convolution, the 1x1 transition and a BN + ReLU kernel on a batch of
    64 (numpy arrays): what test_one_thread_and_the_helper_threads_give_the_same_bits compares."""
    out = []
    for shape, size in (((26, 26, 8, 16), 3), ((24, 24, 16, 8), 1)):
        out += kernel_conv(*random_case(shape, n=64, seed=5, size=size))
    rng = np.random.default_rng(6)
    x, dy = (tf.constant(rng.normal(size=(64, 24, 24, 16)).astype("float32")) for _ in range(2))
    gamma, beta = tf.constant(rng.uniform(0.5, 1.5, 16).astype("float32")), tf.zeros([16])
    out += values_and_gradients(kernel, x, gamma, beta, dy, groups=1, batch=True, relu=True)
    return [t.numpy() for t in out]

@unittest.skipUnless(HAS_COMPILER, "no C++ compiler: FastConv2D falls back to Keras's Conv2D")
class ConvKernelTest(unittest.TestCase):
    def test_output_and_both_gradients_match_tensorflow(self):
        for shape in MODEL_SHAPES + ODD_SHAPES:
            with self.subTest(shape=shape):
                x, k, dy = random_case(shape)
                for name, got, want in zip(("y", "dx", "dw"), kernel_conv(x, k, dy), tensorflow_conv(x, k, dy)):
                    self.assertEqual(got.shape, want.shape, name)
                    self.assertLessEqual(relative_error(got.numpy(), want.numpy()), 1e-5, name)

    def test_1x1_output_and_both_gradients_match_tensorflow(self):
        for shape in SHAPES_1X1:
            with self.subTest(shape=shape):
                x, k, dy = random_case(shape, size=1)
                for name, got, want in zip(("y", "dx", "dw"), kernel_conv(x, k, dy), tensorflow_conv(x, k, dy)):
                    self.assertEqual(got.shape, want.shape, name)
                    self.assertLessEqual(relative_error(got.numpy(), want.numpy()), 1e-5, name)

    def test_the_baseline_instruction_set_matches_tensorflow_too(self):
        """This machine has AVX-512; the code other CPUs run is forced in a fresh process (one for the 3x3, the
        model's 1x1 and the rotation kernels: tests/test_rotation.py's cases must give TensorFlow's images bit for
        bit)."""
        script = ("import numpy as np; from tests import test_conv_kernel as t, test_rotation\n"
                  "for s, size in [(s, 3) for s in t.MODEL_SHAPES + t.ODD_SHAPES[:2]] + [(t.SHAPES_1X1[0], 1)]:\n"
                  "    x, k, dy = t.random_case(s, size=size)\n"
                  "    errors = [t.relative_error(a.numpy(), b.numpy())\n"
                  "              for a, b in zip(t.kernel_conv(x, k, dy), t.tensorflow_conv(x, k, dy))]\n"
                  "    assert max(errors) <= 1e-5, (s, errors)\n"
                  "assert test_rotation.differing() == [], test_rotation.differing()\n"
                  "print('ok')\n")
        env = {**os.environ, "KERAS_NORM_CONV_ISA": "baseline"}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        self.assertEqual(done.stdout.strip(), "ok")

    def test_same_inputs_give_the_same_bits(self):
        for shape, size in (((26, 26, 8, 16), 3), ((24, 24, 16, 8), 1)):
            x, k, dy = random_case(shape, n=64, seed=3, size=size)
            first = [t.numpy() for t in kernel_conv(x, k, dy)]
            for _ in range(3):
                for a, b in zip(first, kernel_conv(x, k, dy)):
                    np.testing.assert_array_equal(a, b.numpy())

    def test_one_thread_and_the_helper_threads_give_the_same_bits(self):
        """Each example is computed by one thread and sums go in example order, so the chunks the helper threads
        take (kernels/common.h) change nothing: a fresh process with one intra-op thread (no helpers) computes
        the same bits as this one, for both conv kernels and the batch-statistics norm kernel."""
        with tempfile.TemporaryDirectory() as tmp:
            script = ("import sys, numpy as np, tensorflow as tf\n"
                      "tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[1]))\n"
                      "from tests import test_conv_kernel as t\n"
                      "np.savez(sys.argv[2], *t.same_bits_case())\n")
            for threads in (1, 2):
                done = subprocess.run([sys.executable, "-c", script, str(threads), os.path.join(tmp, f"{threads}.npz")],
                                      capture_output=True, text=True, timeout=300)
                self.assertEqual(done.returncode, 0, done.stderr[-2000:])
            one, two = (np.load(os.path.join(tmp, f"{threads}.npz")) for threads in (1, 2))
            self.assertEqual(len(one.files), 12)
            for name in one.files:
                np.testing.assert_array_equal(one[name], two[name], name)

    def test_an_empty_batch_gives_empty_outputs_and_a_zero_kernel_gradient(self):
        for size, out in ((3, 4), (1, 6)):
            x, k, dy = random_case((6, 6, 8, 16), n=0, size=size)
            y, dx, dw = kernel_conv(x, k, dy)
            self.assertEqual((y.shape, dx.shape), ((0, out, out, 16), (0, 6, 6, 8)))
            np.testing.assert_array_equal(dw.numpy(), np.zeros((size, size, 8, 16), "float32"))

    def test_the_input_gradient_can_be_skipped(self):
        x, k, dy = random_case((28, 28, 1, 8))
        y, dx, dw = kernel_conv(x, k, dy, input_gradient=False)
        self.assertIsNone(dx)
        self.assertLessEqual(relative_error(dw.numpy(), tensorflow_conv(x, k, dy)[2].numpy()), 1e-5)

    def test_training_runs_the_kernel_and_inference_does_not(self):
        spec = tf.TensorSpec((8, 12, 12, 8), tf.float32)
        layer, off = conv.FastConv2D(filters=16, kernel_size=3), conv.FastConv2D(filters=16, kernel_size=3, native=False)
        five = conv.FastConv2D(filters=16, kernel_size=5)  # not a 3x3 convolution: TensorFlow's op
        for each in (layer, off, five):
            each.build(spec.shape)
        self.assertIn("KerasNormConv3x3", op_types(lambda t: layer(t, training=True), spec))
        # An exported SavedModel traces inference: it must not need the project's library.
        self.assertNotIn("KerasNormConv3x3", op_types(lambda t: layer(t, training=False), spec))
        self.assertNotIn("KerasNormConv3x3", op_types(lambda t: off(t, training=True), spec))
        self.assertNotIn("KerasNormConv3x3", op_types(lambda t: five(t, training=True), spec))

    def test_the_layer_matches_keras_conv2d_with_bias_and_activation(self):
        x = tf.constant(np.random.default_rng(2).normal(size=(4, 10, 10, 16)).astype("float32"))
        for size, padding in ((3, "valid"), (1, "valid"), (1, "same")):
            with self.subTest(size=size, padding=padding):
                keras_layer = keras.layers.Conv2D(8, size, padding=padding, activation="relu", name="c")
                keras_layer.build(x.shape)
                keras_layer.bias.assign(np.linspace(-1, 1, 8).astype("float32"))
                fast = conv.FastConv2D(**keras_layer.get_config())
                fast.build(x.shape)
                fast.set_weights(keras_layer.get_weights())
                self.assertIn(f"KerasNormConv{size}x{size}",
                              op_types(lambda t: fast(t, training=True), tf.TensorSpec(x.shape)))
                for layer in (keras_layer, fast):
                    with tf.GradientTape() as tape:
                        tape.watch(x)
                        y = layer(x, training=True)
                        loss = tf.reduce_sum(y * y)
                    layer.result = [y, *tape.gradient(loss, [x, *layer.trainable_weights])]
                for got, want in zip(fast.result, keras_layer.result):
                    self.assertLessEqual(relative_error(got.numpy(), want.numpy()), 1e-5)

    def test_the_per_layer_benchmark_times_every_3x3_convolution(self):
        lines = bench_conv.layer_times(batch=2, rounds=1)
        self.assertEqual([line["layer"] for line in lines], [n for n, _, _ in bench_conv.conv_shapes(2)])
        self.assertEqual([line["input_gradient"] for line in lines], [False] + [True] * (len(lines) - 1))
        for line in lines:
            self.assertGreater(line["tensorflow_ms"], 0)
            self.assertGreater(line["kernel_ms"], 0)

    def test_a_failed_build_falls_back_to_tensorflow_ops(self):
        with failed_build():
            fast = engine.accelerate(model_lib.build_model("gn"))
            spec = tf.TensorSpec((2, 28, 28, 1), tf.float32)
            ops = op_types(lambda t: fast(t, training=True), spec)
            self.assertFalse({op for op in ops if op.startswith("KerasNormConv")})  # neither 3x3 nor 1x1
            self.assertIn("Conv2D", ops)


if __name__ == "__main__":
    unittest.main()
