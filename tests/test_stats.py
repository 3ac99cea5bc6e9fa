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
        from scipy import stats as scipy_stats

        a, b = [1.0, 2.0, 3.0], [4.0, 6.0, 8.0]
        self.assertEqual(stats.contrast([(a, b)]), stats.welch(a, b))
        _, _, p = stats.contrast_test([(a, b)])
        self.assertAlmostEqual(p, scipy_stats.ttest_ind(a, b, equal_var=False).pvalue, places=12)

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
        self.assertAlmostEqual(stats.contrast_test(pairs)[2], 2 * scipy_stats.t.sf(1.0 / math.sqrt(var), df), places=12)
        self.assertTrue(math.isnan(stats.contrast([([1.0], [2.0, 3.0])])[1][0]))  # one value: no interval

    def test_json_forms_of_intervals_have_no_nan(self):
        self.assertEqual(stats.difference_or_none((0.01, (0.005, 0.015)), scale=100), [1.0, 0.5, 1.5])
        self.assertIsNone(stats.difference_or_none(stats.welch([1.0], [2.0, 3.0])))  # one value: no interval
        self.assertIsNone(stats.ci_or_none([0.99]))
        self.assertEqual(stats.ci_or_none([1.0, 2.0, 3.0]), list(stats.mean_ci([1.0, 2.0, 3.0])[2]))

    def test_a_clear_gap_is_real_and_an_overlap_is_not(self):
        self.assertTrue(stats.excludes_zero(stats.welch([0.995, 0.996, 0.994], [0.990, 0.991, 0.989])[1]))
        self.assertFalse(stats.excludes_zero(stats.welch([0.995, 0.990, 0.994], [0.993, 0.991, 0.996])[1]))

    def test_welch_test_matches_scipy(self):
        from scipy import stats as scipy_stats

        a, b = [99.41, 99.45, 99.52, 99.38, 99.47], [99.21, 99.35, 99.34, 99.30, 99.22]
        diff, (low, high), p = stats.welch_test(a, b)
        ref = scipy_stats.ttest_ind(a, b, equal_var=False)
        ci = ref.confidence_interval(0.95)
        self.assertAlmostEqual(p, ref.pvalue, places=12)
        self.assertAlmostEqual(low, ci.low, places=9)
        self.assertAlmostEqual(high, ci.high, places=9)
        self.assertAlmostEqual(diff, np.mean(a) - np.mean(b), places=12)

    def test_paired_differences_match_scipy_and_see_what_welch_misses(self):
        from scipy import stats as scipy_stats

        # Each seed's model measured two ways: a small, consistent gap on top of a large spread between seeds.
        moving = [99.1, 98.2, 99.6, 97.9, 98.8]
        batch = [m - d for m, d in zip(moving, [0.10, 0.12, 0.09, 0.11, 0.10])]
        diff, (low, high), p = stats.paired(moving, batch)
        ref = scipy_stats.ttest_rel(moving, batch)
        ci = ref.confidence_interval(0.95)
        self.assertAlmostEqual(p, ref.pvalue, places=12)
        self.assertAlmostEqual((low, high), (ci.low, ci.high))
        self.assertTrue(stats.excludes_zero((low, high)))
        self.assertFalse(stats.excludes_zero(stats.welch(moving, batch)[1]))  # unpaired, the seeds' spread hides it

    def test_holm_adjusts_step_down_and_keeps_order(self):
        # Holm (1979): sorted p 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, made monotone: 0.02, 0.03, 0.06, 0.06.
        self.assertEqual([round(q, 12) for q in stats.holm([0.01, 0.04, 0.03, 0.005])], [0.03, 0.06, 0.06, 0.02])
        self.assertEqual(stats.real_by_holm([0.01, 0.04, 0.03, 0.005]), [True, False, False, True])
        # Uncorrected, three of four are below 0.05; Holm calls only two real.
        self.assertEqual(sum(p < 0.05 for p in [0.01, 0.04, 0.03, 0.005]), 4)
        adjusted = stats.holm([0.2, float("nan"), 0.01])
        self.assertTrue(math.isnan(adjusted[1]))
        self.assertEqual([round(adjusted[0], 12), round(adjusted[2], 12)], [0.2, 0.02])
        self.assertEqual(stats.holm([0.9, 0.8]), [1.0, 1.0])  # 2 x 0.8 capped at 1, then monotone

    def test_bounded_interval_stays_inside_and_is_t_on_the_logit_scale(self):
        from scipy import stats as scipy_stats

        seeds = [99.2, 89.7, 45.2, 48.1, 96.0]  # bimodal, near the top: Student's t would reach past 100
        self.assertGreater(stats.mean_ci(seeds)[2][1], 100)
        mean, (low, high) = stats.bounded_ci(seeds)
        self.assertAlmostEqual(mean, np.mean(seeds))
        self.assertTrue(0 < low < high < 100)
        from scipy import special

        z = special.logit(np.array(seeds) / 100)
        ref = scipy_stats.t.interval(0.95, len(z) - 1, loc=z.mean(), scale=scipy_stats.sem(z))
        self.assertAlmostEqual(low, 100 * special.expit(ref[0]), places=9)
        self.assertAlmostEqual(high, 100 * special.expit(ref[1]), places=9)
        self.assertEqual(stats.bounded_ci([99.39] * 3), (99.39, (99.39, 99.39)))
        self.assertTrue(math.isnan(stats.bounded_ci([50.0])[1][0]))
        low, high = stats.bounded_ci([0.0, 0.1, 0.0, 0.2])[1]  # an error rate at its floor stays at or above 0
        self.assertTrue(0 <= low < high <= 100)

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
