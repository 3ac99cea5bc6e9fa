"""The whole study from its one command at --scale=tiny: every suite in order, then the report, as a user runs it.

One run of `main.py --suite=all --scale=tiny` on a small MNIST file feeds every test here: its files must have the
schema of the committed results, and each suite's own rules (intervals inside their bounds, Holm's verdicts, shared
runs found, paired tests) must hold in them.
"""

import glob
import os
import tempfile
import unittest

from keras_norm.studies import batch_sweep, small_batch
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

    def test_noise_suite_determinism_gives_identical_histories(self):
        noise = self.read("noise.json")
        self.assertEqual(sorted(noise["runs"]), ["deterministic_a", "deterministic_b", "free_a", "free_b"])
        self.assertTrue(noise["deterministic_identical_histories"])
        self.assertEqual(noise["deterministic_same_seed_diff_pp"], 0)
