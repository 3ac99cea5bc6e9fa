"""The command line: bad input is one `error:` line, a non-zero exit and nothing written; every mode runs."""

import contextlib
import io
import os
import tempfile
import unittest

import numpy as np

from keras_norm import cli
from tests import helpers


def run_in_process(*args):
    """(exit code, stdout, stderr) of the command line, run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.run_command(["main.py", *args])
    return code, out.getvalue(), err.getvalue()


class BadInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.npz = helpers.write_small_npz(cls.tmp.name, n_train=64, n_test=32)
        arrays = dict(np.load(cls.npz))
        cls.bad_shape = os.path.join(cls.tmp.name, "shape.npz")
        np.savez(cls.bad_shape, **dict(arrays, x_test=arrays["x_test"][:, :20]))
        cls.bad_labels = os.path.join(cls.tmp.name, "labels.npz")
        np.savez(cls.bad_labels, **dict(arrays, y_test=arrays["y_test"] * 0 + 12))
        cls.corrupt = os.path.join(cls.tmp.name, "corrupt.npz")
        with open(cls.corrupt, "wb") as f:
            f.write(b"PK\x03\x04 truncated")
        cls.a_file = os.path.join(cls.tmp.name, "a_file")
        open(cls.a_file, "w").close()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def assert_clean_failure(self, *args, message):
        artifacts = tempfile.mkdtemp(dir=self.tmp.name)
        if not any(a.startswith("--artifacts_dir") for a in args):
            args = args + (f"--artifacts_dir={artifacts}",)
        code, out, err = run_in_process("--epochs=1", *args)  # later flags win
        self.assertNotEqual(code, 0)
        self.assertNotIn("Traceback", err)
        lines = [line for line in err.splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, err)
        self.assertRegex(lines[0], "^error: .*" + message)
        self.assertEqual(os.listdir(artifacts), [])

    def test_bad_flags(self):
        cases = {
            ("--norm=xn",): "norm",
            ("--l1=-0.1",): "l1",
            ("--l2=nan",): "l2",
            ("--lr=inf",): "lr",
            ("--seed=-1",): "seed",
            ("--epochs=0",): "epochs",
            ("--batch_size=0",): "batch_size",
            ("--norm=gn", "--groups=3"): "does not divide",
            ("--no_such_flag=1",): "no_such_flag",
            ("stray",): "unexpected",
            ("--schedule=cosine",): "schedule",
            ("--explain", "--bench"): "one mode",
            ("--run_name=../x",): "run_name",
        }
        for args, message in cases.items():
            with self.subTest(args=args):
                self.assert_clean_failure(*args, f"--data_path={self.npz}", message=message)

    def test_bad_data(self):
        cases = {
            os.path.join(self.tmp.name, "missing.npz"): "does not exist",
            self.corrupt: "not a readable",
            self.bad_shape: "shape",
            self.bad_labels: "labels",
        }
        for path, message in cases.items():
            for suite in ((), ("--suite=seeds",), ("--suite=all", "--scale=tiny")):  # a suite: before any run starts
                with self.subTest(path=path, suite=suite):
                    self.assert_clean_failure(f"--data_path={path}", *suite, message=message)

    def test_unwritable_artifacts_dir(self):
        self.assert_clean_failure(f"--data_path={self.npz}", f"--artifacts_dir={self.a_file}/out",
                                  message="not writable")

    def test_help_lists_every_mode(self):
        code, out, _ = helpers.run_main("--help")
        self.assertEqual(code, 0)
        for flag in ("--norm", "--l1", "--l2", "--data_path", "--suite", "--report_only", "--explain", "--bench",
                     "seeds", "batch_sweep", "fair", "small_batch", "groups", "renorm", "--version"):
            self.assertIn(flag, out)

    def test_version_is_the_packages(self):
        import keras_norm

        code, out, err = run_in_process("--version")
        self.assertEqual((code, out.strip(), err), (0, f"keras-norm {keras_norm.__version__}", ""))


class ConsoleScriptTest(unittest.TestCase):
    def test_keras_norm_command_is_main_py(self):
        import shutil
        import subprocess

        command = shutil.which("keras-norm")
        if command is None:
            self.skipTest("the package is not installed (pip install -e .[cpu] installs keras-norm)")
        for args, code in ((["--help"], 0), (["--norm=xx"], 2)):
            done = subprocess.run([command, *args], capture_output=True, text=True, timeout=120)
            self.assertEqual(done.returncode, code, done.stderr)
            expected = helpers.run_main(*args)
            self.assertEqual((done.stdout, done.stderr.strip().splitlines()[-1:]),
                             (expected[1], expected[2].strip().splitlines()[-1:]))


class EndToEndTest(unittest.TestCase):
    """Subprocesses, as a user runs the command: two short runs, then the report over them."""

    def test_a_short_run_writes_its_folder_and_curves_and_touches_nothing_else(self):
        with tempfile.TemporaryDirectory() as tmp:
            npz = helpers.write_small_npz(tmp, n_train=256, n_test=96)
            artifacts = os.path.join(tmp, "artifacts")
            code, out, err = helpers.run_main("--norm=bn", "--l1=1e-5", "--epochs=2", "--batch_size=32",
                                              f"--data_path={npz}", f"--artifacts_dir={artifacts}", "--noexport")
            self.assertEqual(code, 0, err)
            self.assertIn("test accuracy:", out)
            self.assertEqual(os.listdir(artifacts), ["runs"])  # no comparison re-rendered
            folder = os.path.join(artifacts, "runs", "bn_l1-1e-05_epochs-2_bs-32")
            for name in ("config.json", "history.json", "metrics.json", "misclassified.json", "curves.png",
                         "model.keras"):
                self.assertTrue(os.path.exists(os.path.join(folder, name)), name)
            for name in os.listdir(folder):  # normal permissions, not mkstemp's 0600
                if name.endswith(".json"):
                    self.assertEqual(os.stat(os.path.join(folder, name)).st_mode & 0o044, 0o044, name)
            # The comparison is of a suite's runs; without one, --report_only says so in one line.
            code, _, err = helpers.run_main("--report_only", f"--artifacts_dir={artifacts}")
            self.assertNotEqual(code, 0)
            self.assertEqual(len(err.strip().splitlines()), 1, err)
            self.assertIn("--suite=seeds", err)

    def test_explain_writes_the_worked_example(self):
        with tempfile.TemporaryDirectory() as tmp:
            code, out, err = helpers.run_main("--explain", "--seed=3", f"--artifacts_dir={tmp}")
            self.assertEqual(code, 0, err)
            self.assertIn("Checked against Keras", out)
            self.assertEqual(sorted(os.listdir(tmp)), ["normalization_example.md", "normalization_example.png"])


if __name__ == "__main__":
    unittest.main()
