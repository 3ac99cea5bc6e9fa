"""The report's statistics against values computed by hand."""

import math
import unittest

import numpy as np

from keras_norm.report import stats


class StatsTest(unittest.TestCase):
    def test_mean_ci_is_student_t(self):
        mean, sd, (low, high) = stats.mean_ci([1.0, 2.0, 3.0])
        self.assertEqual((mean, sd), (2.0, 1.0))
        half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2)
        self.assertAlmostEqual(low, 2.0 - half, places=9)
        self.assertAlmostEqual(high, 2.0 + half, places=9)

    def test_welch_interval(self):
        a, b = [1.0, 2.0, 3.0], [4.0, 6.0, 8.0]
        diff, (low, high) = stats.welch(a, b)
        self.assertEqual(diff, -4.0)
        se = math.sqrt(1.0 / 3 + 4.0 / 3)
        df = (5.0 / 3) ** 2 / ((1.0 / 3) ** 2 / 2 + (4.0 / 3) ** 2 / 2)  # 2.94...
        from scipy import stats as scipy_stats

        half = scipy_stats.t.ppf(0.975, df) * se
        self.assertAlmostEqual(low, -4.0 - half, places=9)
        self.assertAlmostEqual(high, -4.0 + half, places=9)
        self.assertTrue(stats.excludes_zero((low, high)) == (high < 0))

    def test_a_contrast_of_one_block_is_welch(self):
        a, b = [1.0, 2.0, 3.0], [4.0, 6.0, 8.0]
        self.assertEqual(stats.contrast([(a, b)]), stats.welch(a, b))

    def test_a_contrast_averages_blocks_and_ignores_their_offsets(self):
        # Two blocks with very different levels but the same gap of 1: the gap is measured, the levels are not noise.
        pairs = [([10.0, 10.1, 9.9], [9.0, 9.1, 8.9]), ([0.0, 0.1, -0.1], [-1.0, -0.9, -1.1])]
        diff, (low, high) = stats.contrast(pairs)
        self.assertAlmostEqual(diff, 1.0, places=9)
        var = 4 * (0.01 / 3) / 4  # four samples of variance 0.01, three values each, two blocks
        df = var ** 2 / (4 * (0.01 / 3 / 4) ** 2 / 2)
        from scipy import stats as scipy_stats

        half = scipy_stats.t.ppf(0.975, df) * math.sqrt(var)
        self.assertAlmostEqual(low, 1.0 - half, places=9)
        self.assertAlmostEqual(high, 1.0 + half, places=9)
        self.assertTrue(stats.excludes_zero((low, high)))
        self.assertTrue(math.isnan(stats.contrast([([1.0], [2.0, 3.0])])[1][0]))  # one value: no interval

    def test_json_forms_of_intervals_have_no_nan(self):
        self.assertEqual(stats.difference_or_none((0.01, (0.005, 0.015)), scale=100), [1.0, 0.5, 1.5])
        self.assertIsNone(stats.difference_or_none(stats.welch([1.0], [2.0, 3.0])))  # one value: no interval
        self.assertIsNone(stats.ci_or_none([0.99]))
        self.assertEqual(stats.ci_or_none([1.0, 2.0, 3.0]), list(stats.mean_ci([1.0, 2.0, 3.0])[2]))

    def test_a_clear_gap_is_real_and_an_overlap_is_not(self):
        self.assertTrue(stats.excludes_zero(stats.welch([0.995, 0.996, 0.994], [0.990, 0.991, 0.989])[1]))
        self.assertFalse(stats.excludes_zero(stats.welch([0.995, 0.990, 0.994], [0.993, 0.991, 0.996])[1]))

    def test_binomial_standard_error(self):
        self.assertAlmostEqual(stats.binomial_se(0.995, 10000), math.sqrt(0.995 * 0.005 / 10000))



class ExactAccuracyTest(unittest.TestCase):
    def test_float32_accuracies_average_to_the_mean_of_counts(self):
        from keras_norm.report import tables

        counts = [9949, 9940, 9948, 9947, 9941]  # mean 9945: exactly 99.45%
        keras_like = [float(np.float32(c / 10000)) for c in counts]
        self.assertLess(100 * np.mean(keras_like), 99.45)  # float32 noise alone would miss the bar
        snapped = [tables.exact(a, 10000) for a in keras_like]
        self.assertEqual(snapped, [c / 10000 for c in counts])
        self.assertEqual(round(100 * float(np.mean(snapped)), 6), 99.45)


if __name__ == "__main__":
    unittest.main()
