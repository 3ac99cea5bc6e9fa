"""Crash-and-resume, reproducibility and atomic writes."""

import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from keras_norm import fileio
from tests import helpers


def history(folder):
    return helpers.read_json(os.path.join(folder, "history.json"))["epochs"]


class ResumeTest(unittest.TestCase):
    def test_kill_9_after_epoch_2_then_rerun_continues(self):
        with tempfile.TemporaryDirectory() as tmp:
            npz = helpers.write_small_npz(tmp, n_train=512, n_test=64)
            artifacts = os.path.join(tmp, "artifacts")
            args = [sys.executable, os.path.join(helpers.ROOT, "main.py"), "--norm=gn", "--epochs=6",
                    "--batch_size=32", f"--data_path={npz}", f"--artifacts_dir={artifacts}", "--noexport", "--run_name=gn",
                    "--noreport"]
            env = dict(os.environ, PYTHONPATH=helpers.ROOT)
            folder = os.path.join(artifacts, "runs", "gn")
            proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                deadline = time.time() + 240
                while time.time() < deadline and proc.poll() is None:
                    try:
                        if len(history(folder)) >= 2:
                            break
                    except (OSError, ValueError):
                        pass
                    time.sleep(0.02)
                self.assertIsNone(proc.poll(), "the run ended before it could be killed")
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            killed_at = len(history(folder))
            self.assertLess(killed_at, 6)
            self.assertFalse(os.path.exists(os.path.join(folder, "metrics.json")))
            done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual([r["epoch"] for r in history(folder)], [1, 2, 3, 4, 5, 6])
            with open(os.path.join(folder, "history.csv")) as f:
                rows = f.read().strip().splitlines()
            self.assertEqual([r.split(",")[0] for r in rows[1:]], ["1", "2", "3", "4", "5", "6"])
            self.assertEqual(helpers.read_json(os.path.join(folder, "metrics.json"))["status"], "finished")
            # It resumed rather than started over: it printed fewer than 6 epochs.
            printed = re.findall(r" epoch (\d+)/6", done.stdout)
            self.assertEqual(printed[-1], "6")
            self.assertLess(len(printed), 6, done.stdout)


class ReproducibilityTest(unittest.TestCase):
    def test_same_seed_same_history(self):
        with tempfile.TemporaryDirectory() as tmp:
            npz = helpers.write_small_npz(tmp, n_train=160, n_test=32)

            def train(attempt):
                return helpers.run_main("--norm=bn", "--l1=1e-4", "--epochs=2", "--batch_size=32", "--seed=3",
                                        "--deterministic", f"--data_path={npz}",
                                        f"--artifacts_dir={os.path.join(tmp, attempt)}", "--noexport", "--noreport")

            with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two processes at once, same results
                outcomes = list(pool.map(train, ("a", "b")))
            histories = []
            for attempt, (code, _, err) in zip(("a", "b"), outcomes):
                self.assertEqual(code, 0, err)
                rows = history(os.path.join(tmp, attempt, "runs", "bn_l1-0.0001_epochs-2_bs-32_seed-3"))
                histories.append([{k: v for k, v in r.items() if k != "seconds"} for r in rows])
            self.assertEqual(histories[0], histories[1])


class DivergenceTest(unittest.TestCase):
    def test_absurd_learning_rate_fails_with_one_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            npz = helpers.write_small_npz(tmp, n_train=256, n_test=64)
            code, _, err = helpers.run_main("--norm=none", "--lr=1e6", "--schedule=constant", "--epochs=3",
                                            f"--data_path={npz}", f"--artifacts_dir={tmp}/artifacts", "--noexport", "--run_name=none")
            self.assertNotEqual(code, 0)
            self.assertEqual(len(err.strip().splitlines()), 1, err)
            self.assertIn("diverged", err)
            metrics = helpers.read_json(os.path.join(tmp, "artifacts", "runs", "none", "metrics.json"))
            self.assertEqual(metrics["status"], "failed")
            self.assertFalse(os.path.exists(os.path.join(tmp, "artifacts", "runs", "none", "backup")))


class AtomicCheckpointTest(unittest.TestCase):
    def test_a_torn_checkpoint_from_a_kill_never_reaches_the_real_file(self):
        import h5py
        import keras

        from keras_norm.callbacks import AtomicModelCheckpoint

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "best.weights.h5")
            with open(os.path.join(tmp, ".tmp-best.weights.h5"), "wb") as f:
                f.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 88)  # what a kill during a save leaves: a bare header
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
            checkpoint = AtomicModelCheckpoint(path, monitor="val_accuracy", mode="max", save_best_only=True,
                                               save_weights_only=True)
            checkpoint.set_model(model)
            checkpoint.on_epoch_end(0, {"val_accuracy": 0.5})
            h5py.File(path, "r").close()  # readable
            model.load_weights(path)
            self.assertEqual(os.listdir(tmp), ["best.weights.h5"])


class AtomicWriteTest(unittest.TestCase):
    def test_failed_write_keeps_old_file_and_leaves_no_temp(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "metrics.json")
            fileio.write_json(path, {"ok": 1})
            with self.assertRaises(TypeError):
                fileio.write_json(path, {"bad": object()})
            self.assertEqual(helpers.read_json(path), {"ok": 1})
            self.assertEqual(os.listdir(tmp), ["metrics.json"])


if __name__ == "__main__":
    unittest.main()
