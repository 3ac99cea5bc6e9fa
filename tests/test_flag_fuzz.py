"""Every flag over a generated set of values: exit 0 with complete outputs, or exit != 0 with one `error:` line,
no traceback and nothing half-written."""

import contextlib
import io
import os
import tempfile
import unittest

from keras_norm import cli
from keras_norm.errors import KerasNormError
from tests import helpers
from tests.test_cli import run_in_process

VALUES = ("-1", "0", "1e308", "99999999999", "nan", "inf", "-inf", "", "abc", "ünïcødé", "../x", "/dev/null",
          "1,2", "0.5")
MODE_FLAGS = {"suite", "report_only", "explain", "bench", "predict", "run", "help", "helpfull", "helpshort",
              "helpxml", "only_check_args", "flagfile", "undefok", "runs"}
RUN_FILES = ("config.json", "history.json", "history.csv", "metrics.json", "misclassified.json", "summary.txt")
# Accepted --artifacts_dir values train a run each: a spread of them (relative and flag-like, non-ASCII,
# not a folder) stands for the rest.
ARTIFACTS_DIR_SAMPLE = {"-1", "ünïcødé", "/dev/null"}
# Accepted values of these would make a long run (many epochs, steps or processes): only their rejection is run.
SLOW_WHEN_ACCEPTED = {"epochs", "sweep_epochs", "sweep_seeds", "jobs", "bench_steps", "bench_repeats", "bench_norms",
                      "bench_levers", "bench_profile", "bench_runs", "bench_parts", "distribute", "logical_cpus",
                      "tensorboard", "batch_size"}


class FlagFuzzTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.npz = helpers.write_small_npz(cls.tmp.name, n_train=96, n_test=32)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check(self, flag, value):
        work = tempfile.mkdtemp(dir=self.tmp.name)  # relative paths land here, never in the checkout
        artifacts = os.path.join(work, "artifacts")
        base = ["--epochs=1", "--batch_size=32", "--noexport", f"--data_path={self.npz}",
                f"--artifacts_dir={artifacts}"]
        cwd = os.getcwd()
        os.chdir(work)
        try:
            code, out, err = run_in_process(*base, f"--{flag}={value}")  # later flags win
        finally:
            os.chdir(cwd)
        if flag == "artifacts_dir":
            artifacts = os.path.normpath(os.path.join(work, value))
        self.assertNotIn("Traceback", err)
        written = [os.path.join(root, f) for root, _, files in os.walk(artifacts) for f in files]
        if code == 0:
            folders = {os.path.dirname(p) for p in written if p.endswith("config.json")}
            for folder in folders:  # every run that started is complete
                for name in RUN_FILES:
                    self.assertTrue(os.path.exists(os.path.join(folder, name)), (flag, value, name))
        else:
            lines = [line for line in err.splitlines() if line.strip()]
            self.assertEqual(len(lines), 1, (flag, value, err))
            self.assertTrue(lines[0].startswith("error: "), lines[0])
            metrics = [p for p in written if p.endswith("metrics.json")]
            # Nothing half-written: either nothing, or a run that recorded why it failed (e.g. diverged).
            if metrics:
                self.assertEqual(helpers.read_json(metrics[0])["status"], "failed", (flag, value))
            else:
                self.assertEqual([p for p in written if not p.endswith(("config.json", "summary.txt"))], [],
                                 (flag, value))
        return code

    def test_every_flag_over_generated_values(self):
        flags = sorted(f.name for f in cli.FLAGS.get_flags_for_module(cli) if f.name not in MODE_FLAGS)
        self.assertIn("lr", flags)
        accepted = []
        for flag in flags:
            for value in VALUES:
                if self._valid_for_config(flag, value):
                    accepted.append((flag, value))  # run below, a sample of them (each trains)
                    continue
                with self.subTest(flag=flag, value=value):
                    self.assertNotEqual(self.check(flag, value), 0)
        # Values that pass validation still reach data loading, folders and training: run a spread of them
        # end to end (every --data_path value, a spread of --artifacts_dir ones, and every few others), which
        # must succeed or fail cleanly.
        sample = [(f, v) for i, (f, v) in enumerate(accepted) if f not in SLOW_WHEN_ACCEPTED
                  and (f == "data_path" or (f == "artifacts_dir" and v in ARTIFACTS_DIR_SAMPLE) or i % 17 == 0)]
        codes = []
        for flag, value in sample:
            with self.subTest(flag=flag, value=value, accepted=True):
                codes.append(self.check(flag, value))
        self.assertIn(0, codes)  # some of them train: the test sees success as well as failure

    @staticmethod
    def _valid_for_config(flag, value):
        """Whether parsing and validation accept the value (without training)."""
        cli.FLAGS.unparse_flags()
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                cli.parse(["main.py", f"--{flag}={value}"])
                for options in cli.options()[::2] + cli.options()[3:]:  # config, suite and bench options
                    options.validate()
        except (SystemExit, KerasNormError):
            return False
        return True


if __name__ == "__main__":
    unittest.main()
