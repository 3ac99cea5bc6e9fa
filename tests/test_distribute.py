import json
import os
import subprocess
import sys
import tempfile
import unittest

from tests import helpers


class MirroredTest(unittest.TestCase):
    def test_synchronized_bn_sees_the_global_batch(self):
        proc = subprocess.run([sys.executable, os.path.join(helpers.ROOT, "tests", "sync_bn_check.py")],
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        self.assertEqual(result["replicas"], 2)
        self.assertLessEqual(result["synced_mean_diff"], 1e-4)
        self.assertLessEqual(result["synced_var_diff"], 1e-4)
        # Without synchronization each replica normalizes with its own half: clearly different.
        self.assertGreater(result["unsynced_var_diff"], 1e-2)

    def test_bn_and_gn_train_an_epoch_on_two_replicas(self):
        with tempfile.TemporaryDirectory() as tmp:
            npz = helpers.write_small_npz(tmp, n_train=256, n_test=64)
            for norm in ("bn", "gn"):
                with self.subTest(norm=norm):
                    code, out, err = helpers.run_main(f"--norm={norm}", "--distribute=mirrored", "--logical_cpus=2",
                                                      "--epochs=1", "--batch_size=64", f"--data_path={npz}",
                                                      f"--artifacts_dir={tmp}/artifacts", "--noexport", "--noreport",
                                                      f"--run_name={norm}")
                    self.assertEqual(code, 0, err[-2000:])
                    config = json.load(open(os.path.join(tmp, "artifacts", "runs", norm, "config.json")))
                    self.assertEqual(config["replicas"], 2)
                    self.assertEqual(config["synchronized_bn"], norm == "bn")

    def test_multi_worker_is_refused_clearly(self):
        code, _, err = helpers.run_main("--distribute=multi_worker", "--epochs=1")
        self.assertNotEqual(code, 0)
        self.assertEqual(len(err.strip().splitlines()), 1)
        self.assertIn("keras-team/keras#20585", err)


if __name__ == "__main__":
    unittest.main()
