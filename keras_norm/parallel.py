"""Trains many runs, two at a time on the two cores, each in a fresh process (the suites use it).

Runs already finished are skipped and an interrupted run resumes from its last epoch, so a suite can be
started again with the same command after any interruption. Each process uses one thread per
TensorFlow op pool (unless the config says otherwise), so the processes share the cores and per-run
epoch times stay comparable across the runs of one suite.
"""

import concurrent.futures
import multiprocessing
import os
import sys
import time

from keras_norm.errors import KerasNormError
from keras_norm.quiet import import_tensorflow


def default_jobs(jobs=None):
    """Parallel training processes: as asked, else one per core up to two."""
    return jobs or min(2, os.cpu_count() or 1)


def train_one(config):
    """Trains one run (in a worker process); a failure comes back as a `failed` result."""
    import_tensorflow()
    from keras_norm import train  # noqa: I001  (after the quiet TensorFlow import: train imports TensorFlow)

    try:
        return train.train(config, verbose=0)
    except KerasNormError as e:
        return {"status": "failed", "name": config.name, "seed": config.learning.seed, "reason": str(e)}


def train_all(configs, jobs=None, fresh_processes=False):
    """Trains every config (skipping finished ones), `jobs` processes at a time; returns their metrics.

    One job trains in this process, unless `fresh_processes` (a run that changes process-wide TensorFlow
    state, such as op determinism, must not share a process with others)."""
    jobs = default_jobs(jobs)
    if jobs == 1 and not fresh_processes:
        return [train_one(c) for c in configs]
    configs = [c.replace(threads=c.runtime.threads or 1) for c in configs]
    ctx = multiprocessing.get_context("spawn")  # TensorFlow starts fresh in each process
    # A fresh process per run: each run's peak memory (metrics.json) is its own, not the maximum over
    # the runs a reused worker trained before. (Python 3.10 has no max_tasks_per_child.)
    fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx, **fresh) as pool:
        return list(pool.map(train_one, configs))


def train_checked(name, configs, jobs=None):
    """A suite's runs, each in a fresh process (op determinism is process-wide): (results, wall seconds);
    raises one KerasNormError when any run failed."""
    start = time.time()
    results = train_all(configs, jobs, fresh_processes=True)
    raise_failures(name, results)
    return results, round(time.time() - start, 1)


def raise_failures(name, results):
    failed = [r for r in results if r.get("status") != "finished"]
    if failed:
        raise KerasNormError(f"suite {name}: {len(failed)} run(s) failed: " + "; ".join(r["reason"] for r in failed))
