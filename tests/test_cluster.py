"""A suite on a real Dask cluster on the loopback address: a scheduler and two workers, each a process of its own;
one worker is killed while it trains, and every run still finishes once with its whole history."""

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from keras_norm.run_folder import usable_backup
from tests import helpers
from tests.test_cli import run_in_process

HAS_DASK = importlib.util.find_spec("distributed") is not None
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 3


def start(*args, log=subprocess.DEVNULL):
    """A Dask command in a session of its own, so that killing it kills what it started too."""
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, start_new_session=True, stdout=log,
                            stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def kill(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def wait_for(condition, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"waited {seconds} s for {what}")


@unittest.skipUnless(HAS_DASK, "Dask is not installed (the [cluster] extra)")
class ClusterTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.processes = []

    def tearDown(self):
        for process in self.processes:
            kill(process)
        self.tmp.cleanup()

    def start_cluster(self, workers):
        scheduler_file = os.path.join(self.tmp.name, "scheduler.json")
        self.processes.append(start("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                                    "--no-dashboard", "--scheduler-file", scheduler_file))
        address = wait_for(lambda: os.path.exists(scheduler_file) and json.load(open(scheduler_file))["address"],
                           60, "the scheduler")
        self.logs = [os.path.join(self.tmp.name, f"node-{i}.log") for i in range(workers)]
        nodes = [start("distributed.cli.dask_worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                       "--name", f"node-{i}", log=open(path, "w")) for i, path in enumerate(self.logs)]
        self.processes += nodes
        return address, nodes

    def epochs_logged(self, node, run):
        """The epochs of `run` that worker node `node` logged (its trainings print to the node's log)."""
        with open(self.logs[node]) as f:
            return [int(e) for e in re.findall(rf"^{run} epoch (\d+)/", f.read(), re.M)]

    def test_a_suite_survives_a_killed_worker_and_every_run_finishes_once(self):
        address, nodes = self.start_cluster(workers=2)
        npz = helpers.write_small_npz(self.tmp.name, n_train=384, n_test=64)
        artifacts = os.path.join(self.tmp.name, "artifacts")
        suite = subprocess.Popen(
            [sys.executable, "main.py", "--suite=noise", f"--cluster={address}", f"--data_path={npz}",
             f"--artifacts_dir={artifacts}", f"--epochs={EPOCHS}", "--batch_size=32", "--noexport"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        runs = os.path.join(artifacts, "noise", "runs")

        def midway_on_node_0():  # a run node 0 trains that has saved its first epoch's backup, two epochs to go
            for name in os.listdir(runs) if os.path.isdir(runs) else ():
                backup = os.path.join(runs, name, "backup")
                try:
                    if self.epochs_logged(0, name) == [1] and usable_backup(backup):
                        return name
                except FileNotFoundError:  # the backup appears and goes as the run trains
                    pass
            return None

        victim = wait_for(midway_on_node_0, 240, "node 0 to be midway through a run")
        kill(nodes[0])  # a whole node: its worker, its nanny and the training it started
        output, _ = suite.communicate(timeout=400)
        self.assertEqual(suite.returncode, 0, output)
        self.assertEqual(sorted(os.listdir(runs)), ["noise_deterministic_a", "noise_deterministic_b",
                                                    "noise_free_a", "noise_free_b"])
        for name in os.listdir(runs):
            with self.subTest(run=name):
                metrics = helpers.read_json(os.path.join(runs, name, "metrics.json"))
                self.assertEqual(metrics["status"], "finished")
                epochs = [row["epoch"] for row in helpers.read_json(os.path.join(runs, name, "history.json"))["epochs"]]
                self.assertEqual(epochs, list(range(1, EPOCHS + 1)))  # each epoch once: resumed, not repeated
        resumed = self.epochs_logged(1, victim)  # node 1 took the killed run over from its last saved epoch
        self.assertTrue(resumed and min(resumed) >= 2 and max(resumed) == EPOCHS, (victim, resumed))
        done = [line for line in output.splitlines() if line.startswith("suite: ") and "runs done" in line]
        self.assertEqual(len(done), 4, output)  # each run reported once
        self.assertTrue(os.path.exists(os.path.join(artifacts, "noise.json")))

    def test_an_unreachable_scheduler_is_one_error_line(self):
        from unittest import mock

        from keras_norm import cluster

        start_time = time.time()
        with mock.patch.object(cluster, "CONNECT_SECONDS", 2):  # the test need not wait the full 10 s
            code, out, err = run_in_process("--suite=noise", "--cluster=tcp://127.0.0.1:9",
                                            f"--artifacts_dir={self.tmp.name}")
        self.assertNotEqual(code, 0)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertIn("cannot reach the Dask scheduler at 'tcp://127.0.0.1:9' within 2 s", lines[0])
        self.assertLess(time.time() - start_time, 60)


@unittest.skipUnless(HAS_DASK, "Dask is not installed (the [cluster] extra)")
class ClusterFlagsTest(unittest.TestCase):
    def test_bad_cluster_flags_are_one_error_line(self):
        cases = {("--suite=noise", "--cluster=somewhere"): "--cluster must be",
                 ("--cluster=local",): "--suite",
                 ("--suite=noise", "--runs_per_gpu=2"): "give --cluster too",
                 ("--suite=noise", "--cluster=local", "--runs_per_gpu=-1"): "--runs_per_gpu"}
        for args, message in cases.items():
            with self.subTest(args=args):
                code, out, err = run_in_process(*args)
                self.assertNotEqual(code, 0)
                lines = err.strip().splitlines()
                self.assertEqual(len(lines), 1, err)
                self.assertIn(message, lines[0])


if __name__ == "__main__":
    unittest.main()
