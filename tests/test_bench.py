import json
import os
import subprocess
import sys
import tempfile
import unittest

from tests import helpers


class BenchHarnessTest(unittest.TestCase):
    def test_short_run_prints_one_json_line_per_norm(self):
        with tempfile.TemporaryDirectory() as tmp:
            npz = helpers.write_small_npz(tmp, n_train=1024, n_test=32)
            proc = subprocess.run([sys.executable, "-m", "keras_norm.bench", f"--data_path={npz}", "--short",
                                   "--norms=bn,gn"], capture_output=True, text=True, timeout=300, cwd=helpers.ROOT)
            self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
            lines = [json.loads(line) for line in proc.stdout.strip().splitlines()]
            self.assertEqual([line.get("norm") for line in lines[:2]], ["bn", "gn"])
            for line in lines[:2]:
                self.assertGreater(line["images_per_sec"], 0)
                self.assertGreater(line["baseline_images_per_sec"], 0)
                self.assertAlmostEqual(line["speedup"], line["images_per_sec"] / line["baseline_images_per_sec"],
                                       places=2)
            self.assertGreater(lines[2]["peak_rss_mb"], 0)

    def test_too_few_steps_to_time_is_one_error_line(self):
        # Timing runs from the end of the first compiled call (8 steps) to the end of the last.
        proc = subprocess.run([sys.executable, "-m", "keras_norm.bench", "--steps=8"],
                              capture_output=True, text=True, timeout=120, cwd=helpers.ROOT)
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(proc.stderr.strip().splitlines(), ["error: --steps must be at least 16 (two calls of 8 steps)"])
        self.assertEqual(proc.stdout, "")


if __name__ == "__main__":
    unittest.main()
