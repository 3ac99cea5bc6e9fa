"""The C++ 2x2 max pooling kernel and FastMaxPooling2D: the values and gradients of TensorFlow's max pooling, bit
for bit and ties included, in training only; inference and other poolings run Keras's code."""

import unittest

import keras
import numpy as np
import tensorflow as tf

from keras_norm.engine import native
from keras_norm.engine.pooling import FastMaxPooling2D
from tests.test_native import HAS_COMPILER, op_types

# (N, H, W, C): the model's pooling, odd rows and columns (left out of every window), channel counts that are no
# vector width, one window, an empty batch.
SHAPES = [(8, 24, 24, 8), (3, 7, 9, 5), (2, 5, 4, 16), (1, 2, 2, 3), (0, 4, 4, 8)]


def pooled(pool, x, dy):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = pool(x)
    return y, tape.gradient(y, x, dy)


def cases(shape, seed=0):
    """Random inputs, then ties: values rounded to a few levels (windows with equal maxima, zeros of both signs)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).astype("float32")
    ties = np.round(x).astype("float32") * np.where(rng.random(shape) < 0.5, -1, 1).astype("float32")
    dy = rng.normal(size=(shape[0], shape[1] // 2, shape[2] // 2, shape[3])).astype("float32")
    return [(tf.constant(v), tf.constant(dy)) for v in (x, ties)]


@unittest.skipUnless(HAS_COMPILER, "no C++ compiler: FastMaxPooling2D falls back to Keras's MaxPooling2D")
class PoolingKernelTest(unittest.TestCase):
    def test_values_and_gradients_are_tensorflows_bit_for_bit(self):
        want_pool = lambda x: tf.nn.max_pool2d(x, 2, 2, "VALID")  # noqa: E731
        for shape in SHAPES:
            for x, dy in cases(shape):
                with self.subTest(shape=shape):
                    for got, want in zip(pooled(native.max_pool2x2, x, dy), pooled(want_pool, x, dy)):
                        self.assertEqual(got.shape, want.shape)
                        np.testing.assert_array_equal(got.numpy(), want.numpy())

    def test_the_layer_trains_on_the_kernel_and_matches_keras(self):
        x, dy = cases((4, 12, 12, 8), seed=1)[1]
        layer, keras_layer = FastMaxPooling2D(2), keras.layers.MaxPooling2D(2)
        for training in (True, False):
            got = pooled(lambda t: layer(t, training=training), x, dy)
            for a, b in zip(got, pooled(keras_layer, x, dy)):
                np.testing.assert_array_equal(a.numpy(), b.numpy())
        spec = tf.TensorSpec((None, 12, 12, 8))
        self.assertIn("KerasNormMaxPool2x2", op_types(lambda t: layer(t, training=True), spec))
        self.assertNotIn("KerasNormMaxPool2x2", op_types(lambda t: layer(t, training=False), spec))
        three = FastMaxPooling2D(3)  # not a 2x2 window: Keras's code
        self.assertNotIn("KerasNormMaxPool2x2", op_types(lambda t: three(t, training=True), spec))


if __name__ == "__main__":
    unittest.main()
