import json
import os
import socket
import subprocess
import sys
import tempfile
import unittest

from tests import helpers


def read_json(*parts):
    with open(os.path.join(*parts)) as f:
        return json.load(f)


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

    def test_bn_trains_an_epoch_on_two_replicas(self):
        with tempfile.TemporaryDirectory() as tmp:
            npz = helpers.write_small_npz(tmp, n_train=256, n_test=64)
            for norm in ("bn",):  # GN and LN need nothing: their statistics never cross examples
                with self.subTest(norm=norm):
                    code, out, err = helpers.run_main(f"--norm={norm}", "--distribute=mirrored", "--logical_cpus=2",
                                                      "--epochs=1", "--batch_size=64", f"--data_path={npz}",
                                                      f"--artifacts_dir={tmp}/artifacts", "--noexport", "--noreport",
                                                      f"--run_name={norm}")
                    self.assertEqual(code, 0, err[-2000:])
                    config = read_json(tmp, "artifacts", "runs", norm, "config.json")
                    self.assertEqual(config["replicas"], 2)
                    self.assertEqual(config["synchronized_bn"], norm == "bn")


def free_ports(count):
    """Ports that are free now (the OS picks them); the sockets are closed before the workers bind."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class MultiWorkerTest(unittest.TestCase):
    def test_multi_worker_without_tf_config_is_one_clear_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
            proc = subprocess.run([sys.executable, os.path.join(helpers.ROOT, "main.py"), "--distribute=multi_worker",
                                   "--epochs=1", f"--artifacts_dir={tmp}/artifacts"], capture_output=True, text=True,
                                  cwd=tmp, env=dict(env, PYTHONPATH=helpers.ROOT), timeout=300)
            self.assertNotEqual(proc.returncode, 0)
            self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr)
            self.assertIn("TF_CONFIG", proc.stderr)
            self.assertFalse(os.path.exists(os.path.join(tmp, "artifacts")))


    def test_two_workers_train_one_epoch_together_and_only_the_chief_writes(self):
        with tempfile.TemporaryDirectory() as tmp:
            npz = helpers.write_small_npz(tmp, n_train=256, n_test=64)
            workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
            procs = []
            try:
                for index in range(2):
                    tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
                    env = dict(os.environ, PYTHONPATH=helpers.ROOT, TF_CONFIG=json.dumps(tf_config),
                               TMPDIR=os.path.join(tmp, f"tmp{index}"))  # where a non-chief keeps its folder
                    os.makedirs(env["TMPDIR"])
                    procs.append(subprocess.Popen(
                        [sys.executable, os.path.join(helpers.ROOT, "main.py"), "--distribute=multi_worker",
                         "--norm=bn", "--epochs=1", "--batch_size=64", f"--data_path={npz}",
                         f"--artifacts_dir={tmp}/artifacts", "--noexport", "--run_name=cluster"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp, env=env))
                outputs = [p.communicate(timeout=300) for p in procs]
            finally:
                for p in procs:  # also when the test fails or times out: no worker outlives it
                    if p.poll() is None:
                        p.kill()
                        p.wait()
            for p, (out, err) in zip(procs, outputs):
                self.assertEqual(p.returncode, 0, err[-3000:])
            self.assertEqual(os.listdir(os.path.join(tmp, "artifacts", "runs")), ["cluster"])
            config = read_json(tmp, "artifacts", "runs", "cluster", "config.json")
            self.assertEqual(config["replicas"], 2)
            self.assertTrue(config["synchronized_bn"])
            self.assertTrue(os.path.exists(os.path.join(tmp, "artifacts", "runs", "cluster", "misclassified.json")))
            # The other worker trained the same model (same synchronized updates) into its own folder.
            worker = read_json(tmp, "tmp1", "keras-norm-workers", "worker-1", "cluster", "metrics.json")
            chief = read_json(tmp, "artifacts", "runs", "cluster", "metrics.json")
            self.assertEqual(worker["status"], "finished")
            self.assertAlmostEqual(worker["final_test_accuracy"], chief["final_test_accuracy"], places=6)


if __name__ == "__main__":
    unittest.main()
