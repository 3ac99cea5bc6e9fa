import os
import tempfile
import unittest

from keras_norm import sweep
from keras_norm.config import RunConfig, SuiteOptions
from tests import helpers


class SweepTest(unittest.TestCase):
    def test_configs_scale_lr_linearly(self):
        cells = sweep.configs(RunConfig.create(lr=0.05), epochs=3, seeds=(0, 1))
        self.assertEqual(len(cells), len(sweep.BATCH_SIZES) * len(sweep.NORMS) * 2)
        for c in cells:
            self.assertAlmostEqual(c.learning.lr, 0.05 * c.learning.batch_size / 128)
            self.assertEqual(c.learning.epochs, 3)
        self.assertEqual({c.folder_name for c in cells if c.learning.batch_size == 2},
                         {"bn_bs2", "gn_bs2", "ln_bs2", "bn_bs2_seed-1", "gn_bs2_seed-1", "ln_bs2_seed-1"})

    def test_tiny_sweep_writes_json_and_plot(self):
        with tempfile.TemporaryDirectory() as tmp:
            npz = helpers.write_small_npz(tmp, n_train=128, n_test=64)
            base = RunConfig.create(data_path=npz, artifacts_dir=os.path.join(tmp, "artifacts"))
            result = sweep.run(base, SuiteOptions(jobs=1, sweep_epochs=1), log=lambda *a, **k: None, batch_sizes=(16, 64),
                               norms=("bn", "gn"))
            saved = helpers.read_json(os.path.join(tmp, "artifacts", "batch_sweep.json"))
            self.assertEqual(saved["batch_sizes"], [16, 64])
            self.assertEqual(saved["epochs"], 1)
            self.assertEqual(set(saved["test_error"]), {"bn", "gn"})
            for norm, errors in saved["test_error"].items():
                self.assertEqual(len(errors), 2)
                run = helpers.read_json(os.path.join(tmp, "artifacts", "sweep", "runs", f"{norm}_bs16", "metrics.json"))
                self.assertAlmostEqual(errors[0], round(100 * (1 - run["final_test_accuracy"]), 3))
            self.assertEqual(result["test_error"], saved["test_error"])
            self.assertTrue(os.path.exists(os.path.join(tmp, "artifacts", "batch_sweep.png")))
            # The sweep's runs stay out of the main runs folder.
            self.assertFalse(os.path.exists(os.path.join(tmp, "artifacts", "runs")))


class NoiseSuiteTest(unittest.TestCase):
    def test_four_runs_two_modes_one_json(self):
        from keras_norm import noise

        with tempfile.TemporaryDirectory() as tmp:
            npz = helpers.write_small_npz(tmp, n_train=128, n_test=32)
            base = RunConfig.create(data_path=npz, artifacts_dir=os.path.join(tmp, "artifacts"), epochs=1,
                                    batch_size=32, export=False)
            summary = noise.run(base, SuiteOptions(jobs=2), log=lambda *a, **k: None)
            saved = helpers.read_json(os.path.join(tmp, "artifacts", "noise.json"))
            self.assertEqual(saved, summary)
            self.assertEqual(sorted(saved["runs"]), ["deterministic_a", "deterministic_b", "free_a", "free_b"])
            # Op determinism makes the same seed give the same history, bit for bit.
            self.assertTrue(saved["deterministic_identical_histories"])
            self.assertEqual(saved["deterministic_same_seed_diff_pp"], 0)
            self.assertGreater(saved["deterministic_epoch_time_ratio"], 0)


if __name__ == "__main__":
    unittest.main()
