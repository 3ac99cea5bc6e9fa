"""The C++ affine transform and FastRandomRotation: the same images as TensorFlow's op and Keras's layer, bit for
bit (the baseline instruction set too: tests/test_conv_kernel.py runs `differing` with it), in a tf.data
pipeline, for an empty batch; Keras's code when the kernel does not apply or cannot be built."""

import unittest

import keras
import numpy as np
import tensorflow as tf

from keras_norm.engine import native, rotation
from tests.test_native import HAS_COMPILER, failed_build, op_types

# (N, H, W, C): MNIST batches, then odd widths (a row is 16 pixels at a time), several channels, one image.
SHAPES = [(64, 28, 28, 1), (3, 28, 28, 1), (4, 13, 17, 1), (2, 9, 40, 1), (5, 13, 17, 3), (1, 6, 5, 2)]


def random_transforms(n, seed, projective=True):
    """Rotations plus small projective terms; the last one sends a column of points to infinity."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(-0.6, 0.6, size=n)
    c, s = np.cos(angle), np.sin(angle)
    t = np.stack([c, -s, 4 * s + 6 * (1 - c), s, c, -6 * s + 4 * (1 - c),
                  *(rng.normal(size=(2, n)) * (0.02 if projective else 0))], axis=1).astype("float32")
    if n > 1 and projective:
        t[-1, 6:] = [-0.25, 0.0]  # k = 1 - x / 4 is 0 at x = 4: those points are at infinity
    return tf.constant(t)


def tensorflow_transform(images, transforms, fill):
    return tf.raw_ops.ImageProjectiveTransformV3(images=images, transforms=transforms, output_shape=images.shape[1:3],
                                                  fill_value=fill, interpolation="BILINEAR", fill_mode="CONSTANT")


def case(shape, seed=0):
    images = tf.constant(np.random.default_rng(seed).normal(size=shape).astype("float32"))
    return images, random_transforms(shape[0], seed)


def differing(shapes=SHAPES):
    """Shapes where the kernel's output is not TensorFlow's, bit for bit."""
    bad = []
    for shape in shapes:
        images, transforms = case(shape)
        for t in (transforms, transforms[:1]):  # one transform per image, and one for all
            if not np.array_equal(native.affine_transform(images, t, -0.42).numpy(),
                                  tensorflow_transform(images, t, -0.42).numpy()):
                bad.append((shape, int(t.shape[0])))
    return bad


def keras_and_fast(images, seed=7, fill_mode="constant", **kwargs):
    """The same random rotation by Keras's layer and by FastRandomRotation (same seed, same draws)."""
    options = dict(fill_mode=fill_mode, fill_value=-0.42, seed=seed, **kwargs)
    keras_layer, fast_layer = keras.layers.RandomRotation(0.1, **options), rotation.FastRandomRotation(0.1, **options)
    return keras_layer(images, training=True), fast_layer(images, training=True)


@unittest.skipUnless(HAS_COMPILER, "no C++ compiler: FastRandomRotation runs Keras's code")
class AffineKernelTest(unittest.TestCase):
    def test_the_kernel_computes_tensorflows_op_bit_for_bit(self):
        self.assertEqual(differing(), [])

    def test_an_empty_batch(self):
        out = native.affine_transform(tf.zeros((0, 28, 28, 1)), tf.zeros((0, 8)), 0.0)
        self.assertEqual(out.shape, (0, 28, 28, 1))

    def test_the_layer_rotates_as_keras_does(self):
        images = case((16, 28, 28, 1))[0]
        want, got = keras_and_fast(images)
        self.assertFalse(np.array_equal(want.numpy(), images.numpy()))  # it did rotate
        np.testing.assert_array_equal(got.numpy(), want.numpy())
        layer = rotation.FastRandomRotation(0.1, fill_mode="constant", seed=1)
        self.assertIn("KerasNormAffineTransform",
                      op_types(lambda x: layer(x, training=True), tf.TensorSpec((2, 28, 28, 1))))

    def test_the_layer_in_a_tf_data_map(self):
        images = case((32, 28, 28, 1))[0]
        layers = [cls(0.1, fill_mode="constant", seed=5) for cls in (keras.layers.RandomRotation,
                                                                       rotation.FastRandomRotation)]
        # One map call at a time: Keras's seed generator then advances in the same order for both.
        want, got = (next(iter(tf.data.Dataset.from_tensors(images).map(lambda x, r=r: r(x, training=True))))
                     for r in layers)
        np.testing.assert_array_equal(got.numpy(), want.numpy())

    def test_other_settings_run_keras_code(self):
        images = case((4, 28, 28, 1))[0]
        for options in ({"fill_mode": "reflect"}, {"interpolation": "nearest"}):
            with self.subTest(**options):
                layer = rotation.FastRandomRotation(0.1, seed=1, **options)
                self.assertNotIn("KerasNormAffineTransform",
                                 op_types(lambda x: layer(x, training=True), tf.TensorSpec((4, 28, 28, 1))))
                want, got = keras_and_fast(images, seed=3, **options)
                np.testing.assert_array_equal(got.numpy(), want.numpy())

    def test_a_failed_build_falls_back_to_keras(self):
        images = case((4, 28, 28, 1))[0]
        with failed_build():
            layer = rotation.FastRandomRotation(0.1, fill_mode="constant", seed=1)
            self.assertNotIn("KerasNormAffineTransform",
                             op_types(lambda x: layer(x, training=True), tf.TensorSpec((4, 28, 28, 1))))
            want, got = keras_and_fast(images)
        np.testing.assert_array_equal(got.numpy(), want.numpy())


if __name__ == "__main__":
    unittest.main()
