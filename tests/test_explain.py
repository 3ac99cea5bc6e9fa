import os
import tempfile
import unittest

import numpy as np

from keras_norm import explain
from tests import helpers


class ExplainTest(unittest.TestCase):
    def test_numpy_matches_keras_for_several_seeds(self):
        for seed in (0, 1, 7, 123):
            with self.subTest(seed=seed):
                _, _, diffs = explain.explain(seed)
                self.assertEqual(set(diffs), {"BN (BatchNormalization)", "LN (LayerNormalization)",
                                              "LN (GroupNormalization, groups=1)", "GN (GroupNormalization)"})
                self.assertLessEqual(max(diffs.values()), explain.TOLERANCE)

    def test_a_wrong_numpy_result_is_caught(self):
        x, results, _ = explain.explain(2)
        y, stats = results["GN"]
        results["GN"] = (y + 1e-3, stats)
        with self.assertRaisesRegex(explain.KerasNormError, "GN"):
            explain.check_against_keras(x, results)

    def test_each_statistic_set_is_normalized(self):
        x = explain.random_batch(3)
        for method, count in (("BN", 4), ("LN", 4), ("GN", 8)):
            y, stats = explain.normalize(x, method)
            self.assertEqual(len(stats), count)
            for _, idx in explain.statistic_sets(method):
                self.assertAlmostEqual(float(y[idx].mean()), 0.0, places=6)
                # Slightly below 1 because of eps in the denominator.
                self.assertLess(abs(float(y[idx].var()) - 1.0), 2e-3)

    def test_statistics_use_the_right_values(self):
        x = explain.random_batch(5)
        _, bn = explain.normalize(x, "BN")
        self.assertAlmostEqual(bn[2][2], float(x[..., 2].mean()))
        _, gn = explain.normalize(x, "GN")
        self.assertAlmostEqual(gn[3][2], float(x[1, :, :, 2:4].mean()))  # n2, group g2
        self.assertAlmostEqual(gn[3][3], float(x[1, :, :, 2:4].var()))

    def test_output_is_stable_for_a_seed(self):
        with tempfile.TemporaryDirectory() as tmp:
            first = explain.main(4, tmp)
            second = explain.main(4, tmp)
            self.assertEqual(first, second)
            self.assertEqual(helpers.read_text(os.path.join(tmp, "normalization_example.md")), first)
            self.assertTrue(os.path.exists(os.path.join(tmp, "normalization_example.png")))
        self.assertNotEqual(first, explain.markdown(5, *explain.explain(5)))
        np.testing.assert_array_equal(explain.random_batch(4), explain.random_batch(4))


if __name__ == "__main__":
    unittest.main()
