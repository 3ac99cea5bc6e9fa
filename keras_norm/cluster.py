"""A suite's runs spread over a Dask cluster (`--cluster`): each run one task, on whichever worker is free.

`--cluster=local` starts an embedded Dask cluster on this machine (`--jobs` worker processes, one thread each);
`--cluster=tcp://HOST:8786` connects to a running scheduler (`dask scheduler`), whose workers (`dask worker
tcp://HOST:8786 --nthreads CORES`) take one run per thread; a run trains on one thread (`--threads`, 1 in the
suites). Every worker must see the same artifacts folder and data path (a shared filesystem), so the run folders,
resume and the report work as on one machine.

A task trains its run in a fresh process (TensorFlow's thread pools and op determinism are set once per process),
which on Linux dies with its worker (the parent-death signal), so a killed worker leaves no training behind. When
a worker dies, Dask's scheduler gives its task to another worker, where the run resumes from its last finished
epoch (the run folder's backup, keras_norm/train.py); after Dask's `allowed-failures` (3) such deaths the run is
reported failed. With no worker left for `NO_WORKERS_SECONDS`, the suite stops with one error line; finished runs
are kept and the same command continues. With `--runs_per_gpu=N` every run asks for 1/N of a `GPU` resource
(workers started with `--resources GPU=1`), so N runs share each GPU.
"""

import contextlib
import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import uuid

from keras_norm.errors import KerasNormError

CONNECT_SECONDS = 10
NO_WORKERS_SECONDS = 120
POLL_SECONDS = 0.5


@contextlib.contextmanager
def connect(address, jobs):
    """A Dask client: of an embedded local cluster (`address` "local") or of the scheduler at `address`."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise KerasNormError("--cluster needs Dask: pip install -e \".[cluster]\"") from None
    logging.getLogger("distributed").setLevel(logging.WARNING)  # the suite's progress lines, not Dask's chatter
    if address == "local":
        with LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None) as local, \
                Client(local) as client:
            yield client
        return
    try:
        client = Client(address, timeout=CONNECT_SECONDS)
    except (OSError, TimeoutError, ValueError) as e:
        raise KerasNormError(f"cannot reach the Dask scheduler at {address!r} within {CONNECT_SECONDS} s: "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    with client:
        yield client


def _die_with_parent():
    """In the training process (Linux): be killed when the worker that started it dies."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def train_isolated(config):
    """The task: trains `config` in a fresh process (python -m keras_norm.worker) and returns its result."""
    with tempfile.TemporaryDirectory(prefix="keras-norm-task-") as tmp:
        config_path, result_path = os.path.join(tmp, "config.pickle"), os.path.join(tmp, "result.pickle")
        with open(config_path, "wb") as f:
            pickle.dump(config, f)
        linux = sys.platform.startswith("linux")
        # Runs that share a GPU must not each reserve all of its memory (TensorFlow's default).
        env = dict(os.environ, TF_FORCE_GPU_ALLOW_GROWTH="true")
        code = subprocess.call([sys.executable, "-m", "keras_norm.worker", config_path, result_path], env=env,
                               preexec_fn=_die_with_parent if linux else None)
        if not os.path.exists(result_path):
            return {"status": "failed", "name": config.name, "seed": config.learning.seed,
                    "reason": f"{config.folder_name}: its training process exited with code {code}"}
        with open(result_path, "rb") as f:
            return pickle.load(f)


def _check_gpus(client, runs_per_gpu):
    if runs_per_gpu and not any("GPU" in w.get("resources", {}) for w in _workers(client).values()):
        raise KerasNormError("--runs_per_gpu shares GPUs, but no worker of the cluster has a GPU resource "
                             "(start them with: dask worker ADDRESS --resources GPU=1)")


def train_all(client, configs, progress, runs_per_gpu=0):
    """Every config as a task on the cluster; their results in the configs' order, each reported to `progress`."""
    _check_gpus(client, runs_per_gpu)
    resources = {"GPU": 1.0 / runs_per_gpu} if runs_per_gpu else None
    token = uuid.uuid4().hex[:8]
    futures = [client.submit(train_isolated, c, key=f"{c.folder_name}-{token}", pure=False, resources=resources)
               for c in configs]
    results, pending, alone_since = [None] * len(futures), set(futures), None
    try:
        while pending:
            done = [f for f in pending if f.done()]
            for future in done:
                i = futures.index(future)
                results[i] = _result(future, configs[i])
                progress.update(results[i])
                pending.discard(future)
            if not done:
                alone_since = _watch_workers(client, alone_since)
                time.sleep(POLL_SECONDS)
    finally:
        client.cancel(list(pending))
    return results


def _result(future, config):
    """A finished task's result; a run whose workers kept dying (or whose task raised) is a failed result."""
    try:
        return future.result()
    except Exception as e:  # KilledWorker, or an error inside the task: the suite reports it, the others go on
        return {"status": "failed", "name": config.name, "seed": config.learning.seed,
                "reason": f"{config.folder_name}: {type(e).__name__}: {e}"}


def _workers(client):
    """{address: info} of every worker the scheduler knows now."""
    return client.scheduler_info(n_workers=-1)["workers"]


def _watch_workers(client, alone_since):
    """The time since the cluster has had no worker (None while it has one); raises after NO_WORKERS_SECONDS."""
    if _workers(client):
        return None
    alone_since = alone_since or time.time()
    if time.time() - alone_since > NO_WORKERS_SECONDS:
        raise KerasNormError(f"the Dask cluster has had no worker for {NO_WORKERS_SECONDS} s; finished runs are "
                             "kept: start workers and run the same command again")
    return alone_since
