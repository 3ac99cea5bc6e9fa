"""The whole study from its one command at --scale=tiny: every suite in order, then the report, as a user runs it.

One run of `main.py --suite=all --scale=tiny` on a small MNIST file feeds every test here: its files must have the
schema of the committed results, and each suite's own rules (intervals inside their bounds, Holm's verdicts, shared
runs found, paired tests) must hold in them.
"""

import glob
import os
import tempfile
import unittest

import numpy as np

from keras_norm.config import RunConfig, SuiteOptions
from keras_norm.studies import batch_sweep, bn_adapt, bn_batch_stats, mnist_c, plan, shift, small_batch
from tests import helpers

COMMITTED = os.path.join(helpers.ROOT, "artifacts")
# What --suite=all writes at the top of the artifacts folder (the seeds suite writes seeds/suite.json).
RESULT_FILES = ("tune.json", "seeds/suite.json", "noise.json", "grid.json", "fair.json", "groups.json",
                "lr_sweep.json", "batch_sweep.json", "small_batch.json", "shift.json", "bn_batch_stats.json",
                "bn_adapt.json", "mnist_c.json", "inside.json", "results.json")
NOT_FROM_THE_STUDY = ("normalization_example.png", "misclassified_")  # --explain's, and named by run


def kind(value):
    if isinstance(value, bool):
        return "bool"
    if value is None or isinstance(value, (int, float)):
        return "number"  # a statistic that could not be computed is null
    return type(value).__name__


def schema_differences(committed, tiny, path=""):
    """Where `tiny` does not have the committed file's shape: a key the committed file lacks, or another kind of value
    (a tiny study has fewer seeds and cells, so its keys are a subset below the top level)."""
    if kind(committed) != kind(tiny):
        return [f"{path or '/'}: {kind(committed)} committed, {kind(tiny)} here"]
    if isinstance(tiny, dict):
        return [d for k, v in tiny.items() for d in (
            schema_differences(committed[k], v, f"{path}/{k}") if k in committed else [f"{path}/{k}: not committed"])]
    if isinstance(tiny, list) and committed and tiny:
        return schema_differences(committed[0], tiny[0], f"{path}[0]")
    return []


class WholeStudyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.npz = helpers.write_small_npz(cls.tmp.name, n_train=192, n_test=300)
        cls.artifacts = os.path.join(cls.tmp.name, "artifacts")
        cls.flags = ("--suite=all", "--scale=tiny", f"--data_path={cls.npz}", f"--artifacts_dir={cls.artifacts}",
                     "--jobs=2")
        cls.code, cls.out, cls.err = helpers.run_main(*cls.flags, timeout=900)
        cls.base = RunConfig.create(data_path=cls.npz, artifacts_dir=cls.artifacts, epochs=1, export=False)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def read(self, name):
        return helpers.read_json(os.path.join(self.artifacts, name))

    def test_the_command_ends_well(self):
        self.assertEqual(self.code, 0, self.err[-3000:])
        self.assertNotIn("Traceback", self.err)
        self.assertNotIn("skipped", self.out)  # every evaluation suite found its models

    def test_every_result_file_has_the_committed_schema(self):
        for name in RESULT_FILES:
            with self.subTest(name):
                committed, tiny = helpers.read_json(os.path.join(COMMITTED, name)), self.read(name)
                self.assertEqual(set(tiny), set(committed))
                self.assertEqual(schema_differences(committed, tiny), [])

    def test_every_committed_figure_is_drawn(self):
        import matplotlib.image

        figures = [os.path.basename(p) for p in glob.glob(os.path.join(COMMITTED, "*.png"))
                   if not os.path.basename(p).startswith(NOT_FROM_THE_STUDY)]
        self.assertGreaterEqual(len(figures), 15)
        for name in figures:
            with self.subTest(name):
                self.assertGreater(matplotlib.image.imread(os.path.join(self.artifacts, name)).size, 0)
        self.assertEqual(len(glob.glob(os.path.join(self.artifacts, "misclassified_*.png"))), 4)

    def test_a_dry_run_then_finds_every_run_done(self):
        code, out, err = helpers.run_main(*self.flags, "--dry_run")
        self.assertEqual(code, 0, err[-2000:])
        counted = [line for line in out.splitlines() if " runs: " in line]
        self.assertEqual(len(counted), 9)  # the training suites
        for line in counted:
            self.assertIn(" 0 to train", line)

    def test_fair_comparison_intervals_and_holm_verdicts(self):
        fair = self.read("fair.json")
        self.assertEqual(fair["seeds"], [0, 1])
        self.assertIn(fair["none_peak_lr"], (0.05, 0.1))
        self.assertEqual(set(fair["test_accuracy"]), {"bn", "gn", "ln", "none"})
        for norm, values in fair["test_accuracy"].items():
            self.assertEqual(len(values), 2)
            low, high = fair["summary"][norm]["ci95_logit"]
            self.assertTrue(0 <= low <= high <= 100, (low, high))
        self.assertEqual(len(fair["comparisons"]), 6)
        for c in fair["comparisons"]:
            self.assertGreaterEqual(c["p_holm"], c["p"])
            self.assertEqual(c["real"], c["p_holm"] < 0.05)

    def test_group_count_shares_the_fair_comparisons_gn_runs(self):
        groups, fair = self.read("groups.json"), self.read("fair.json")
        self.assertEqual(groups["test_accuracy"]["gn4"], fair["test_accuracy"]["gn"])
        self.assertEqual([(c["a"], c["b"]) for c in groups["comparisons"]], [("gn2", "gn4")])
        self.assertEqual(groups["comparisons"][0]["real"], groups["comparisons"][0]["p_holm"] < 0.05)
        shifted = self.read("shift.json")["groups"]["transforms"]["brightness"]["accuracy"]
        self.assertEqual(set(shifted), {"gn1", "gn2", "gn4"})  # gn1 = the fair comparison's LN

    def test_small_batch_pairs_bn_with_its_own_batch_statistics(self):
        result = self.read("small_batch.json")
        self.assertEqual(set(result["test_error"]), set(small_batch.VARIANTS))
        self.assertEqual(set(result["batch_statistics_test_error"]), {"bn", "bn_renorm"})
        by_name = {f["name"]: f for f in result["differences"]}
        self.assertEqual(by_name["bn batch statistics - moving statistics"]["test"], "paired t")
        for name in ("bn - gn", "bn - ln", "bn_renorm - bn", "gn_ws - gn"):
            self.assertIn(name, by_name)
        for family in result["differences"]:
            for row in family["by_batch"].values():
                self.assertEqual(row["real"], row["p_holm"] < 0.05)
        for rows in result["test_error_ci95_logit"].values():
            for low, high in rows.values():
                self.assertTrue(0 <= low <= high <= 100)

    def test_batch_sweep_reads_its_runs_and_keeps_them_apart(self):
        sweep = self.read("batch_sweep.json")
        self.assertEqual((sweep["batch_sizes"], sweep["epochs"], sweep["seeds"]), ([8, 16], 1, [0, 1]))
        self.assertEqual(sweep["train_size"] + sweep["val_size"], 192)  # the full training split
        rule = sweep["lr_rule"]["chosen"]
        self.assertIn(rule, batch_sweep.RULES)
        for norm, errors in sweep["test_error_per_seed"].items():
            run = self.read(os.path.join("sweep", "runs", f"{norm}_bs{batch_sweep.RULE_BATCH}_{rule}_seed-0",
                                         "metrics.json"))
            self.assertEqual(errors[0][0], round(100 * (1 - run["final_test_accuracy"]), 3))
        self.assertEqual(set(sweep["bn_batch_statistics_test_error"]), {"bn"})
        tests = {f["name"]: f["test"] for f in sweep["differences"]}
        self.assertEqual(tests["bn batch statistics - moving statistics"], "paired t")  # the same models, twice
        for family in sweep["differences"]:
            for row in family["by_batch"].values():
                self.assertEqual(row["real"], row["p_holm"] is not None and row["p_holm"] < 0.05)
        for rows in sweep["test_error_ci95_logit"].values():
            for low, high in rows:
                self.assertTrue(0 <= low <= high <= 100)

    def test_noise_suite_determinism_gives_identical_histories(self):
        noise = self.read("noise.json")
        self.assertEqual(sorted(noise["runs"]), ["deterministic_a", "deterministic_b", "free_a", "free_b"])
        self.assertTrue(noise["deterministic_identical_histories"])
        self.assertEqual(noise["deterministic_same_seed_diff_pp"], 0)

    def test_shift_evaluates_every_model_on_every_transform_and_replots_from_its_json(self):
        saved = self.read("shift.json")
        self.assertEqual(set(saved["transforms"]), set(shift.TRANSFORMS) | {"clean"})
        for name, (severities, _) in shift.TRANSFORMS.items():
            entry = saved["transforms"][name]
            self.assertEqual(entry["severities"], list(severities))
            self.assertEqual([len(per) for per in entry["accuracy"]["bn"]], [2] * len(severities))  # 2 seeds
        for per_norm in saved["summary_pct"].values():  # every interval inside [0, 100]
            for cells in per_norm.values():
                for cell in cells:
                    low, high = cell["ci95_logit"] if cell["ci95_logit"] else (cell["mean"], cell["mean"])
                    self.assertTrue(0 <= cell["min"] <= cell["max"] <= 100 and 0 <= low <= high <= 100, cell)
        again = shift.replot(self.base, SuiteOptions(replot=True), log=lambda *a, **k: None)  # from the JSON alone
        self.assertEqual((again["transforms"], again["summary_pct"]), (saved["transforms"], saved["summary_pct"]))

    def test_the_shift_accuracy_is_keras_predicts_in_any_chunks(self):
        import keras

        from keras_norm import data
        from keras_norm import model as model_lib
        from keras_norm.run_folder import RunFolder
        from keras_norm.studies.seeds import suite_models

        path = suite_models(self.artifacts)["bn"][0][1]
        model = keras.saving.load_model(os.path.join(path, "model.keras"))
        ds = RunFolder(path).read("config.json")["dataset"]
        images, labels = data.raw_test_set(self.npz)
        x = model_lib.model_input(model, images, ds["pixel_mean"], ds["pixel_std"])
        expected = float(np.mean(model.predict(x, verbose=0).argmax(1) == labels))
        for batch in (128, 1000):  # 300 images: chunks of 128, 128 and 44, or one
            for compiled in (True, False):
                self.assertEqual(shift.accuracy(model, images, labels, ds["pixel_mean"], ds["pixel_std"], batch,
                                                compiled), expected)

    def test_bn_batch_statistics_are_paired_and_gn_ln_are_batch_invariant(self):
        saved = self.read("bn_batch_stats.json")
        self.assertEqual(len(saved["bn"]["moving_statistics"]), 2)
        self.assertEqual(saved["batch_sizes"], list(bn_batch_stats.BATCH_SIZES))
        for norm in ("gn", "ln"):
            for check in saved["batch_invariance"][norm]:
                self.assertTrue(check["same_predictions"])
                self.assertLess(check["max_abs_logit_diff"], 1e-4)
        paired = saved["batch_minus_moving_paired"]  # the same model measured two ways: paired over seeds
        self.assertEqual(sorted(paired, key=int), [str(b) for b in bn_batch_stats.BATCH_SIZES])
        moving = np.asarray(saved["bn"]["moving_statistics"])
        for b, row in paired.items():
            gap = 100 * (np.asarray(saved["bn"]["batch_statistics"][b]) - moving)
            self.assertAlmostEqual(row["difference_pp"], float(gap.mean()), places=3)
            self.assertEqual(row["real"], row["p_holm"] < 0.05)

    def test_bn_adapt_compares_frozen_and_adapted_statistics_on_every_shift(self):
        saved, tiny = self.read("bn_adapt.json"), plan.TINY["bn_adapt"]
        self.assertEqual(saved["seeds"]["seeds"], [0, 1])  # the BN models only
        modes = {"frozen", "all"} | {str(n) for n in tiny["sizes"]}
        for source, entry in saved["sources"].items():
            self.assertEqual(set(entry), {*tiny["names"], "clean"}, source)
            for shifted in entry.values():
                self.assertEqual(set(shifted) - {"severities"}, modes)
                for mode in modes:
                    self.assertEqual([len(per_seed) for per_seed in shifted[mode]], [2] * len(shifted["severities"]))
        again = bn_adapt.replot(self.base, SuiteOptions(replot=True), log=lambda *a, **k: None)  # from the JSON
        self.assertEqual(again["sources"], saved["sources"])

    def test_mnist_c_measures_every_model_frozen_and_bn_adapted(self):
        saved, names = self.read("mnist_c.json"), plan.TINY["mnist_c"]["names"]
        adapted = {f"seeds/bn adapted ({n})" for n in ("all", mnist_c.ADAPT_SIZE)}
        self.assertLessEqual({"seeds/bn", "seeds/gn", "seeds/ln"} | adapted, set(saved["clean"]))
        self.assertEqual(set(saved["corruptions"]), set(names))
        for name in names:
            self.assertEqual(set(saved["corruptions"][name]), set(saved["clean"]))
            self.assertEqual(len(saved["corruptions"][name]["seeds/bn"]), 2)  # one value per seed
        for variant, mce in saved["mean_corruption_error_pct"].items():
            errors = [100 * (1 - np.mean([saved["corruptions"][n][variant][i] for n in names]))
                      for i in range(len(saved["corruptions"][names[0]][variant]))]
            self.assertEqual(mce["per_seed"], [round(e, 3) for e in errors])
        self.assertIn("seeds/bn adapted (all)", saved["comparisons"]["adapted_minus_frozen_pp"])
        again = mnist_c.replot(self.base, SuiteOptions(replot=True), log=lambda *a, **k: None)  # from the JSON
        self.assertEqual(again["mean_corruption_error_pct"], saved["mean_corruption_error_pct"])

    def test_inside_gathers_every_epoch_of_every_norm(self):
        inside = self.read("inside.json")["norms"]
        self.assertEqual(inside["bn"]["seeds"], [0, 1])
        for norm in ("bn", "gn", "ln"):
            entry = inside[norm]
            self.assertEqual(entry["layers"], ["conv1", "conv2", "conv3", "conv4", "conv5"])
            self.assertEqual(np.array(entry["grad_norm"]).shape, (1, 5))  # 1 epoch, 5 blocks
            self.assertTrue(np.all(np.array(entry["grad_norm"]) > 0))

    def test_the_grid_finds_the_seeds_suites_runs_and_describes_each_cell(self):
        from keras_norm.run_folder import run_dir
        from keras_norm.studies import grid

        saved = self.read("grid.json")
        [main] = grid.configs(self.base, ("none",), ("none",), (0,))  # a variant of the seeds suite: its run
        self.assertEqual(os.path.dirname(run_dir(main)), os.path.join(self.artifacts, "seeds", "runs"))
        run = helpers.read_json(os.path.join(run_dir(main), "metrics.json"))
        self.assertAlmostEqual(saved["final_test_accuracy"]["none"]["none"][0], run["final_test_accuracy"], places=6)
        table = helpers.read_text(os.path.join(self.artifacts, "grid.md"))
        for norm in saved["norms"]:
            cell = saved["cells"][norm]["none"]
            self.assertEqual(set(cell["relative_grad_last_epoch"]), {"conv1", "conv2", "conv3", "conv4", "conv5"})
            self.assertEqual(len(cell["kernel_l2_norm"]), 7)  # 5 3x3 convolutions, the 1x1 transition, the dense
            np.testing.assert_allclose(saved["mid_test_accuracy"][norm]["none"],  # one epoch: the middle is the end
                                       saved["final_test_accuracy"][norm]["none"], rtol=1e-6)
            self.assertIn(f"| {norm} | none | {100 * np.mean(cell['final_test_accuracy']):.3f} |", table)
        for family in saved["differences"].values():
            for row in family.values():
                self.assertEqual(row["real"], row["p_holm"] is not None and row["p_holm"] < 0.05)
