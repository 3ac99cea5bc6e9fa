"""The fair comparison (`--suite=fair`) on tiny data: the no-norm model's rate is chosen on validation, runs of
other suites are found rather than trained again, and fair.json has the fields the README reads."""

import os
import tempfile
import unittest

from keras_norm.config import RunConfig, SuiteOptions
from keras_norm.studies import batch_sweep, fair, grid, groups, small_batch
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


class GroupsSuiteTest(unittest.TestCase):
    def test_variants_are_the_models_they_name_and_share_the_fair_suites_runs(self):
        base = RunConfig.create(artifacts_dir="a")
        self.assertEqual(groups.cell(base, "gn4", 3), fair.cell(base, "gn", 3))
        self.assertEqual(groups.cell(base, "gn1", 0), fair.cell(base, "ln", 0))
        self.assertEqual(groups.cell(base, "gn8", 0).learning.groups, 8)
        instance = groups.cell(base, "in", 1)
        self.assertEqual((instance.learning.norm, instance.runtime.fast), ("in", False))  # Keras's own layers
        self.assertEqual(groups.cell(base, "ln_layer", 0).learning.ln_impl, "layer")


class SmallBatchSuiteTest(unittest.TestCase):
    def test_the_sweeps_runs_are_its_cells_and_the_remedies_are_what_they_say(self):
        base = RunConfig.create(artifacts_dir="a")
        self.assertEqual(small_batch.cell(base, "gn", 2, 1), batch_sweep.cell(base, "gn", 2, 1, 5, "sqrt"))
        renorm, ws = small_batch.cell(base, "bn_renorm", 4, 0), small_batch.cell(base, "gn_ws", 4, 0)
        self.assertTrue(renorm.learning.renorm and ws.learning.weight_standardization)
        self.assertNotEqual(renorm.outputs.run_name, small_batch.cell(base, "bn", 4, 0).outputs.run_name)
        order = [(b, s) for _, b, s, _ in small_batch.configs(base, ("bn",), (64, 2, 8), (0, 1))]
        self.assertEqual(order, [(2, 0), (8, 0), (64, 0), (2, 1), (8, 1), (64, 1)])  # seed by seed, small first


class WholeStudyTest(unittest.TestCase):
    def test_dry_run_lists_every_suite_in_order_with_what_is_done_and_left(self):
        from keras_norm import studies
        from keras_norm.run_folder import RunFolder
        from keras_norm.studies import plan
        from keras_norm.train import run_dir

        self.assertEqual(set(plan.ORDER), set(studies.SUITES) - {"all"})  # every suite, once
        self.assertLess(plan.ORDER.index("grid"), plan.ORDER.index("fair"))  # fair finds the grid's runs
        self.assertLess(plan.ORDER.index("fair"), plan.ORDER.index("groups"))
        with tempfile.TemporaryDirectory() as tmp:
            base = RunConfig.create(artifacts_dir=tmp)
            lines = []
            rows, total = plan.dry_run(base, SuiteOptions(jobs=2), log=lines.append)
            self.assertIsNone(total)  # nothing finished: nothing to estimate from
            self.assertEqual([r["suite"] for r in rows], list(plan.ORDER))
            self.assertEqual(next(r for r in rows if r["suite"] == "seeds")["runs"], 20)
            # One finished seeds run of 20 epochs at 6 s: the other 19 take 19 x 120 s, two at a time.
            config = seeds_suite.configs(base)[0]
            folder = RunFolder(run_dir(config))
            folder.prepare(overwrite=True)
            folder.write("metrics.json", {"status": "finished", "epochs": 20, "mean_epoch_seconds": 6.0,
                                          "final_test_accuracy": 0.99, "norm": "bn", "seed": 0})
            rows, total = plan.dry_run(base, SuiteOptions(jobs=2), log=lines.append)
            row = next(r for r in rows if r["suite"] == "seeds")
            self.assertEqual((row["done"], row["left"], row["estimate_seconds"]), (1, 19, 19 * 120.0 / 2))
            self.assertIsNotNone(total)  # every suite now has an estimate (per epoch, from that run)
        self.assertTrue(any(line.strip().startswith("shift") and "no training" in line for line in lines))

    def test_the_tiny_scale_is_for_the_whole_study_and_keeps_out_of_the_committed_results(self):
        code, out, err = helpers.run_main("--suite=seeds", "--scale=tiny")
        self.assertEqual((code, err.strip()), (2, "error: --scale sets the size of the whole study; give --suite=all "
                                                   "too"))
        with tempfile.TemporaryDirectory() as tmp:
            code, out, err = helpers.run_main("--suite=all", "--scale=tiny", cwd=tmp)
            self.assertEqual(code, 1)
            self.assertTrue(err.startswith("error: --scale=tiny writes numbers that mean nothing"), err)
            self.assertEqual(os.listdir(tmp), [])  # nothing written

    def test_dry_run_is_for_the_whole_study_only(self):
        code, out, err = helpers.run_main("--suite=seeds", "--dry_run")
        self.assertEqual((code, err.strip()), (2, "error: --dry_run lists the whole study's runs; give --suite=all "
                                                   "too"))


if __name__ == "__main__":
    unittest.main()
