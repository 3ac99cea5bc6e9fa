"""Named suites of runs. `seeds`: the three canonical variants x 3 seeds (the main experiment).

Runs already finished are skipped and an interrupted run resumes from its last epoch, so a suite
can be started again with the same command after any interruption. Independent runs can train in
parallel processes (`jobs`); each process then uses one thread per TensorFlow op pool, so the two
cores are shared and the per-run epoch times stay comparable across runs of one suite.
"""

import concurrent.futures
import multiprocessing
import os
import sys
import time

from keras_norm import fileio
from keras_norm.errors import KerasNormError

SEEDS = (0, 1, 2)
# The three variants of the assignment: BN + L1 + L2, GN + L1, LN + L2 (the user's own example).
VARIANTS = (
    dict(norm="bn", l1=1e-5, l2=1e-4),
    dict(norm="gn", l1=1e-5, l2=0.0),
    dict(norm="ln", l1=0.0, l2=1e-3),
)
SUITES = ("seeds", "batch_sweep")


def seed_configs(base):
    return [base.replace(seed=s, **v) for v in VARIANTS for s in SEEDS]


def _train_one(config):
    """Worker: trains one run in its own process (spawned, so TensorFlow starts fresh)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_norm.quiet import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notes from the tiny per-run predict calls
    from keras_norm import train

    try:
        return train.train(config, verbose=0)
    except KerasNormError as e:
        return {"status": "failed", "name": config.name, "seed": config.seed, "reason": str(e)}


def default_jobs(jobs=None):
    """Parallel training processes: as asked, else one per core up to two."""
    return jobs or min(2, os.cpu_count() or 1)


def train_all(configs, jobs=None):
    """Trains every config (skipping finished ones), `jobs` processes at a time; returns metrics."""
    jobs = default_jobs(jobs)
    if jobs == 1:
        return [_train_one(c) for c in configs]
    # One thread per op pool in each process (unless --threads says otherwise): the processes share the cores.
    configs = [c.replace(threads=c.threads or 1) for c in configs]
    ctx = multiprocessing.get_context("spawn")
    # A fresh process per run: each run's peak memory (metrics.json) is its own, not the maximum over
    # the runs a reused worker trained before (which grew by 0.2-0.4 GB per run).
    # (Python 3.10 has no max_tasks_per_child: there, workers are reused.)
    fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx, **fresh) as pool:
        return list(pool.map(_train_one, configs))


def raise_failures(name, results):
    failed = [r for r in results if r.get("status") != "finished"]
    if failed:
        raise KerasNormError(f"suite {name}: {len(failed)} run(s) failed: " + "; ".join(r["reason"] for r in failed))


def run(name, base, jobs=None, log=print):
    """Runs suite `name` from the `base` config and returns its summary dict."""
    if name == "batch_sweep":
        from keras_norm import sweep

        return sweep.run(base, jobs, log)
    if name not in SUITES:
        raise KerasNormError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    configs = seed_configs(base)
    jobs = default_jobs(jobs)
    fileio.check_writable(base.artifacts_dir)
    start = time.time()
    log(f"suite {name}: {len(configs)} runs, {jobs} in parallel")
    results = train_all(configs, jobs)
    wall = time.time() - start
    summary = {
        "suite": name,
        "runs": sorted({c.name for c in configs}),
        "folders": [c.folder_name for c in configs],
        "parallel_jobs": jobs,
        "wall_seconds": round(wall, 1),
        "trained_now": sum(1 for r in results if r.get("status") == "finished" and not r.get("skipped")),
        "failed": [r for r in results if r.get("status") != "finished"],
    }
    fileio.write_json(os.path.join(base.artifacts_dir, "suite.json"), summary)
    raise_failures(name, results)
    log(f"suite {name}: done in {wall / 60:.1f} min")
    return summary
