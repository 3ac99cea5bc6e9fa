"""The fair comparison (`--suite=fair`) on tiny data: the no-norm model's rate is chosen on validation, runs of
other suites are found rather than trained again, and fair.json has the fields the README reads."""

import os
import tempfile
import unittest
from unittest import mock

from keras_norm import parallel
from keras_norm.config import RunConfig, SuiteOptions
from keras_norm.studies import fair, grid
from keras_norm.studies import seeds as seeds_suite
from tests import helpers


class FairChoiceTest(unittest.TestCase):
    def test_the_recipe_rate_stays_unless_another_beats_it_and_a_failed_run_scores_zero(self):
        finished = lambda acc: {"status": "finished", "final_val_accuracy": acc}  # noqa: E731
        lrs = (0.025, 0.05, 0.1)
        self.assertEqual(fair.choose_lr([finished(0.99), finished(0.99), finished(0.98)], lrs)[0], 0.05)  # a tie
        self.assertEqual(fair.choose_lr([finished(0.991), finished(0.99), finished(0.98)], lrs)[0], 0.025)
        chosen, val = fair.choose_lr([finished(0.5), finished(0.6), {"status": "failed"}], lrs)
        self.assertEqual((chosen, val[0.1]), (0.05, 0.0))

    def test_runs_are_found_where_other_suites_trained_them(self):
        base = RunConfig.create(artifacts_dir="a")
        none0, none7 = fair.cell(base, "none", 0), fair.cell(base, "none", 7)
        self.assertEqual(none0, [c for c in seeds_suite.configs(base) if c.learning.norm == "none"][0]
                         .replace(artifacts_dir=seeds_suite.suite_dir("a")))
        self.assertEqual(none7.outputs.artifacts_dir, fair.suite_dir("a"))
        self.assertEqual(fair.cell(base, "gn", 2), grid.configs(base, ("gn",), ("none",), (2,))[0])
        tuned = fair.cell(base, "none", 0, lr=0.1)
        self.assertEqual((tuned.learning.lr, tuned.outputs.artifacts_dir), (0.1, fair.suite_dir("a")))
        for config in (none0, none7, tuned):
            self.assertEqual((config.learning.l1, config.learning.l2, config.runtime.deterministic), (0.0, 0.0, True))


class FairSuiteTest(unittest.TestCase):
    def test_tiny_suite_writes_per_seed_accuracy_bounded_intervals_and_holm_verdicts(self):
        with tempfile.TemporaryDirectory() as tmp:
            npz = helpers.write_small_npz(tmp, n_train=192, n_test=32)
            artifacts = os.path.join(tmp, "artifacts")
            base = RunConfig.create(data_path=npz, artifacts_dir=artifacts, epochs=1, batch_size=32)
            trained = []
            real_train_all = parallel.train_all

            def counting(configs, *args, **kwargs):
                trained.extend(c.folder_name for c in configs)
                return real_train_all(configs, *args, **kwargs)

            with mock.patch.object(parallel, "train_all", counting):
                out = fair.run(base, SuiteOptions(jobs=2), log=lambda *a, **k: None, seeds=(0, 1),
                               none_lrs=(0.05, 0.1))
            saved = helpers.read_json(os.path.join(artifacts, "fair.json"))
            self.assertTrue(os.path.exists(os.path.join(artifacts, "fair.png")))
        self.assertEqual(saved["seeds"], [0, 1])
        self.assertIn(saved["none_peak_lr"], (0.05, 0.1))
        self.assertEqual(set(saved["test_accuracy"]), {"bn", "gn", "ln", "none"})
        for norm, values in saved["test_accuracy"].items():
            self.assertEqual(len(values), 2)
            ci = saved["summary"][norm]["ci95_logit"]
            self.assertTrue(0 <= ci[0] <= ci[1] <= 100, ci)
        self.assertEqual(len(saved["comparisons"]), 6)
        for c in saved["comparisons"]:
            self.assertGreaterEqual(c["p_holm"], c["p"])
            self.assertEqual(c["real"], c["p_holm"] < 0.05)
        # The seed-0 no-norm run at the chosen rate was trained while choosing it, and not again.
        self.assertEqual(len(trained), len(set(trained)) + 1)
        self.assertEqual(out["test_accuracy"], saved["test_accuracy"])


if __name__ == "__main__":
    unittest.main()
