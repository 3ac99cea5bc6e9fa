import os
import tempfile
import unittest

from keras_norm import train
from keras_norm.config import RunConfig, SuiteOptions
from keras_norm.run_folder import RunFolder
from keras_norm.studies import batch_sweep as sweep
from keras_norm.studies import grid, lr_sweep, seeds
from tests import helpers


class SweepTest(unittest.TestCase):
    def test_cells_follow_the_rule_from_the_main_recipe(self):
        base = RunConfig.create()
        batch, lr = base.learning.batch_size, base.learning.lr  # the main recipe's
        for rule, scale in (("linear", lambda b: b / batch), ("sqrt", lambda b: (b / batch) ** 0.5)):
            cells = sweep.grid(base, 5, sweep.BATCH_SIZES, sweep.NORMS, (0, 1), rule)
            self.assertEqual(len(cells), len(sweep.BATCH_SIZES) * len(sweep.NORMS) * 2)
            for c in cells:
                self.assertAlmostEqual(c.learning.lr, lr * scale(c.learning.batch_size))
                self.assertEqual((c.learning.epochs, c.learning.l1, c.learning.l2), (5, 0.0, 0.0))
            self.assertEqual([c.learning.seed for c in cells[:21]], [0] * 21)  # seed by seed: whole curves first

    def test_intervals_of_cells_and_differences(self):
        from scipy import stats as scipy_stats

        fake = {"batch_sizes": [8, 2],
                "test_error_per_seed": {"bn": [[0.1, 1.5], [0.9]], "gn": [[0.6, 0.7], [0.5, 0.5]]},
                "bn_batch_statistics_test_error_per_seed": {"bn": [[1.2, 2.3], []]}}
        out = sweep.intervals(fake)
        low, high = out["test_error_ci95_logit"]["bn"][0]
        self.assertTrue(0 <= low < 0.8 < high <= 100)  # Student's t on the errors would reach below 0
        self.assertLess(scipy_stats.t.interval(0.95, 1, loc=0.8, scale=0.7)[0], 0)
        self.assertIsNone(out["test_error_ci95_logit"]["bn"][1])  # one seed: no interval
        families = {f["name"]: f for f in out["differences"]}
        welch = families["bn - gn"]
        self.assertEqual(welch["test"], "Welch")
        self.assertIsNone(welch["by_batch"]["2"]["p"])  # one seed: no test, and no verdict
        self.assertFalse(welch["by_batch"]["2"]["real"])
        row = welch["by_batch"]["8"]
        self.assertAlmostEqual(row["difference_pp"], 0.15)
        self.assertEqual(row["p"], round(scipy_stats.ttest_ind([0.1, 1.5], [0.6, 0.7], equal_var=False).pvalue, 6))
        self.assertEqual(row["p_holm"], row["p"])  # the only test of its family
        # BN's batch statistics and its moving ones: the same two models, so the difference is paired
        paired = families["bn batch statistics - moving statistics"]
        self.assertEqual(paired["test"], "paired t")
        ci = scipy_stats.ttest_rel([1.2, 2.3], [0.1, 1.5]).confidence_interval(0.95)
        self.assertEqual(paired["by_batch"]["8"]["ci95_pp"], [round(ci.low, 4), round(ci.high, 4)])
        self.assertIsNone(paired["by_batch"]["2"]["difference_pp"])


class LearningRateSweepTest(unittest.TestCase):
    def test_grid_spans_the_asked_range(self):
        self.assertGreaterEqual(len(lr_sweep.LRS), 6)
        self.assertAlmostEqual(min(lr_sweep.LRS), 0.01)
        self.assertAlmostEqual(max(lr_sweep.LRS), 1.0)

    def test_tiny_sweep_keeps_a_diverged_run(self):
        with tempfile.TemporaryDirectory() as tmp:
            npz = helpers.write_small_npz(tmp, n_train=192, n_test=32)
            artifacts = os.path.join(tmp, "artifacts")
            base = RunConfig.create(data_path=npz, artifacts_dir=artifacts, batch_size=32)
            grid = dict(norms=("none",), lrs=(0.01, 1e5), seeds=(0,), epochs=1)
            result = lr_sweep.run(base, SuiteOptions(jobs=2), log=lambda *a, **k: None, **grid)
            self.assertEqual(result["lrs"], [0.01, 1e5])
            saved = helpers.read_json(os.path.join(artifacts, "lr_sweep.json"))
            self.assertEqual(saved["lrs"], [0.01, 1e5])
            self.assertEqual(saved["diverged"]["none"], [[False], [True]])  # lr 1e5 without a norm: NaN or chance
            self.assertLess(saved["test_accuracy"]["none"][1][0] or 0.0, lr_sweep.COLLAPSED)
            run = helpers.read_json(os.path.join(artifacts, "lr_sweep", "runs", "none_lr-0.01_seed-0", "metrics.json"))
            self.assertEqual(saved["test_accuracy"]["none"][0], [run["final_test_accuracy"]])
            self.assertTrue(os.path.exists(os.path.join(artifacts, "lr_sweep.png")))

    def test_a_run_that_diverged_before_is_kept_and_not_trained_again(self):
        with tempfile.TemporaryDirectory() as tmp:
            base = RunConfig.create(data_path=os.path.join(tmp, "missing.npz"), artifacts_dir=tmp)
            [config] = lr_sweep.configs(base, norms=("none",), lrs=(1.0,), seeds=(0,), epochs=1)
            folder = RunFolder(train.run_dir(config))
            os.makedirs(folder.path)
            failed = {"status": "failed", "norm": "none", "seed": 0, "reason": "loss became NaN/inf (diverged)"}
            folder.write("metrics.json", failed)
            [result] = lr_sweep.train_cells([config], jobs=1)  # the data file does not exist: nothing may load it
            self.assertEqual(result, failed)
            summary = lr_sweep.summarize([config], [result], ("none",), (1.0,), (0,))
            self.assertEqual(summary["diverged"]["none"], [[True]])
            self.assertEqual(summary["val_accuracy"]["none"], [[None]])


class GridTest(unittest.TestCase):
    def test_the_main_variants_are_cells_of_the_grid(self):
        cells = grid.configs(RunConfig.create(artifacts_dir="a"))
        self.assertEqual(len(cells), 4 * 4 * 3)
        in_seeds = {(c.learning.norm, c.learning.l1, c.learning.l2) for c in cells
                    if c.outputs.artifacts_dir == os.path.join("a", "seeds")}
        self.assertEqual(in_seeds, {(v["norm"], v["l1"], v["l2"]) for v in seeds.VARIANTS})
        self.assertEqual([c.learning.seed for c in cells], [s for s in (0, 1, 2) for _ in range(16)])  # seed by seed

    def test_each_cell_gathers_its_own_runs_in_seed_order(self):
        base = RunConfig.create(artifacts_dir="a")
        todo = grid.configs(base, ("bn", "gn"), ("none", "L1"), (0, 1))
        # A run's accuracy encodes its cell and seed: 0.9 + seed / 1000, + 0.01 for GN, + 0.05 for L1.
        def accuracy(c):
            return 0.9 + c.learning.seed / 1000 + 0.01 * (c.learning.norm == "gn") + 0.05 * (c.learning.l1 > 0)

        results = [{"final_test_accuracy": accuracy(c), "final_test_xent": 0.1, "folder": "no-such-folder",
                    "dataset": {"test_size": 10000},
                    "weights": {"near_zero_fraction": 0.0, "mean_abs_weight": 0.1, "kernel_l2_norm": {"conv1": 1.0}}}
                   for c in todo]
        out = grid.summarize(todo, results, ("bn", "gn"), ("none", "L1"), (0, 1))
        self.assertEqual(out["final_test_accuracy"]["gn"]["L1"], [0.96, 0.961])
        self.assertEqual(out["final_test_accuracy"]["bn"]["none"], [0.9, 0.901])
        low, high = out["ci95_logit"]["bn"]["L1"]
        self.assertTrue(0 <= low < 0.9505 < high <= 1)
        # Differences in percentage points: L1 adds 5 in each row, GN 1 in each column; Holm within each family.
        differences = out["differences"]
        self.assertAlmostEqual(differences["penalty_minus_none"]["gn: L1"]["difference_pp"], 5.0)
        self.assertAlmostEqual(differences["main_effect_norm"]["bn-gn"]["difference_pp"], -1.0)
        self.assertAlmostEqual(differences["main_effect_penalty"]["L1-none"]["difference_pp"], 5.0)
        self.assertNotIn("norm_minus_none", differences)  # no "none" norm in this grid
        from scipy import stats as scipy_stats

        family = differences["penalty_minus_none"]  # two tests: Holm doubles the smaller p
        row = family["bn: L1"]
        self.assertEqual(row["p"], round(scipy_stats.ttest_ind([0.95, 0.951], [0.9, 0.901], equal_var=False).pvalue, 6))
        self.assertAlmostEqual(min(r["p_holm"] for r in family.values()), 2 * min(r["p"] for r in family.values()),
                               places=5)
        for rows in differences.values():
            for r in rows.values():
                self.assertEqual(r["real"], r["p_holm"] < 0.05)

    def test_l2_effect_compares_kernel_scale_and_relative_gradient(self):
        # L2 halves the kernel and |g|/|w| grows 4x: what a scale-blind layer predicts (r^-2 = 4).
        cells = {"bn": {"none": {"kernel_l2_norm": {"conv1/kernel": [2.0, 2.0]},
                                 "relative_grad_last_epoch": {"conv1": [0.1, 0.1]}},
                        "L2": {"kernel_l2_norm": {"conv1/kernel": [1.0, 1.0]},
                               "relative_grad_last_epoch": {"conv1": [0.3, 0.5]}}},
                 "gn": {"none": {}, "L2": {}}}  # no inside.json: left out
        out = grid.l2_effect(cells, ("bn", "gn"))
        self.assertEqual(out, {"bn": {"conv1": {"kernel_norm_ratio": 0.5, "relative_grad_ratio": 4.0,
                                                "scale_invariant_prediction": 4.0}}})

    def test_one_seed_gives_no_interval_and_no_verdict(self):
        from keras_norm.report import grid as grid_report

        base = RunConfig.create(artifacts_dir="a")
        todo = grid.configs(base, ("bn", "none"), ("none", "L1"), (0,))
        results = [{"final_test_accuracy": 0.99 - 0.001 * i, "final_test_xent": 0.1, "folder": "no-such-folder",
                    "dataset": {"test_size": 10000},
                    "weights": {"near_zero_fraction": 0.0, "mean_abs_weight": 0.1, "kernel_l2_norm": {"conv1": 1.0}}}
                   for i, _ in enumerate(todo)]
        out = grid.summarize(todo, results, ("bn", "none"), ("none", "L1"), (0,))
        self.assertIsNone(out["ci95_logit"]["bn"]["L1"])
        row = out["differences"]["norm_minus_none"]["L1: bn"]
        self.assertIsNotNone(row["difference_pp"])
        self.assertEqual((row["ci95_pp"], row["p"], row["p_holm"], row["real"]), ([None, None], None, None, False))
        table = grid_report.markdown(out)
        self.assertIn("| bn | L1 | 98.900 | — |", table)
        self.assertIn("| L1: bn − no norm | — | — | — | too few seeds |", table)


class FinishedRunsTest(unittest.TestCase):
    def test_a_finished_run_is_read_without_a_process_and_only_the_others_train(self):
        from unittest import mock

        from keras_norm import parallel

        with tempfile.TemporaryDirectory() as tmp:
            base = RunConfig.create(data_path=os.path.join(tmp, "mnist.npz"), artifacts_dir=tmp)
            done, left = base.replace(seed=0), base.replace(seed=1)
            folder = RunFolder(train.run_dir(done))
            folder.prepare(overwrite=True)
            folder.write("metrics.json", {"status": "finished", "name": "ln", "seed": 0, "final_test_accuracy": 0.99})
            trained = []

            def fake_train(configs, jobs, fresh_processes, progress):
                trained.extend(configs)
                return [{"status": "finished", "name": "ln", "seed": c.learning.seed} for c in configs]

            lines = []
            with mock.patch.object(parallel, "_train", fake_train):
                results = parallel.train_all([done, left], jobs=2, progress=parallel.Progress(2, out=lines.append))
            self.assertEqual(trained, [left])
            self.assertEqual((results[0]["skipped"], results[0]["folder"]), (True, folder.path))
            self.assertEqual(results[1]["seed"], 1)
            self.assertIn("found finished", lines[0])
            self.assertIsNone(parallel.found_finished(done.replace(overwrite=True)))  # --overwrite trains it again
            # Without a data file the offline fallback may rename the run: only its own process can tell.
            self.assertIsNone(parallel.found_finished(done.replace(data_path=None)))


class ProgressTest(unittest.TestCase):
    def test_plain_lines_count_the_runs_and_estimate_from_trained_ones_only(self):
        from unittest import mock

        from keras_norm import parallel

        lines = []
        with mock.patch.object(parallel.time, "time", side_effect=[100.0, 160.0, 220.0]):
            progress = parallel.Progress(4, "suite x", out=lines.append)  # starts at 100 s
            progress.update({"name": "bn", "seed": 0, "status": "finished", "skipped": True})
            self.assertIsNone(progress.eta_seconds())  # a run found finished says nothing about the time a run takes
            progress.update({"name": "bn", "seed": 1, "status": "finished"})  # at 160 s: 60 s a run, two left
            progress.update({"name": "bn", "seed": 2, "status": "failed"})  # at 220 s
        self.assertEqual(lines[0], "suite x: 1/4 runs done (bn seed 0: finished, found finished)")
        self.assertEqual(lines[1], "suite x: 2/4 runs done (bn seed 1: finished), about 2 min left")
        self.assertTrue(lines[2].startswith("suite x: 3/4 runs done (bn seed 2: failed)"))


if __name__ == "__main__":
    unittest.main()
