"""Trains many runs, two at a time on the two cores, each in a fresh process (the suites use it); inside
`on_cluster(...)`, as tasks of a Dask cluster instead (keras_norm/cluster.py), with the same results.

Runs already finished are skipped and an interrupted run resumes from its last epoch, so a suite can be
started again with the same command after any interruption. Each process uses one thread per
TensorFlow op pool (unless the config says otherwise), so the processes share the cores and per-run
epoch times stay comparable across the runs of one suite.
"""

import concurrent.futures
import contextlib
import multiprocessing
import os
import sys
import time

from keras_norm import cluster
from keras_norm.errors import KerasNormError
from keras_norm.run_folder import RunFolder, run_dir
from keras_norm.worker import train_one

_SPAWN = multiprocessing.get_context("spawn")  # TensorFlow starts fresh in each process
_CLUSTER = {}  # while a suite runs on a Dask cluster: its client and the runs per GPU
_REUSED = {}  # within reused_processes(): the one pool every train_all uses


@contextlib.contextmanager
def on_cluster(address, jobs=None, runs_per_gpu=0):
    """Within it, train_all places every run on the Dask cluster at `address` ("local": an embedded one)."""
    with cluster.connect(address, default_jobs(jobs)) as client:
        _CLUSTER.update(client=client, runs_per_gpu=runs_per_gpu)
        try:
            yield client
        finally:
            _CLUSTER.clear()


@contextlib.contextmanager
def reused_processes(jobs=None):
    """Within it, every train_all shares one pool of `jobs` processes that each import TensorFlow once and train
    run after run: for many tiny runs (`--scale=tiny`), where starting TensorFlow costs more than training. A
    run's process-wide state then carries to the next (op determinism stays on, peak memory is the worker's)."""
    with concurrent.futures.ProcessPoolExecutor(default_jobs(jobs), mp_context=_SPAWN) as pool:
        _REUSED["pool"] = pool
        try:
            yield pool
        finally:
            _REUSED.clear()


def default_jobs(jobs=None):
    """Parallel training processes: as asked, else one per core up to two."""
    return jobs or min(2, os.cpu_count() or 1)


class Progress:
    """Runs done out of all, with an estimate of the time left from the runs that trained (finished runs found
    again cost nothing): a rich progress bar on a terminal, one plain line per run elsewhere (logs, CI, nohup)."""

    def __init__(self, total, label="suite", out=None):
        self.total, self.label, self.done, self.trained, self.start = total, label, 0, 0, time.time()
        self.out = out or (lambda line: print(line, file=sys.stderr, flush=True))
        self.bar = None
        if sys.stderr.isatty() and out is None:
            from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(TextColumn(label), BarColumn(), TextColumn("{task.completed}/{task.total} runs"),
                                    TimeRemainingColumn(), transient=True)
            self.task = self.bar.add_task(label, total=total)
            self.bar.start()

    def eta_seconds(self):
        """The time left if the runs not yet done take as long as the trained ones took (None before one trained)."""
        if not self.trained:
            return None
        return (time.time() - self.start) / self.trained * (self.total - self.done)

    def update(self, result):
        self.done += 1
        self.trained += not result.get("skipped")
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
            return
        eta = self.eta_seconds()
        left = "" if eta is None or self.done == self.total else f", about {eta / 60:.0f} min left"
        found = ", found finished" if result.get("skipped") else ""
        self.out(f"{self.label}: {self.done}/{self.total} runs done ({result.get('name', '?')} seed "
                 f"{result.get('seed', '?')}: {result.get('status', '?')}{found}){left}")

    def close(self):
        if self.bar is not None:
            self.bar.stop()


def train_all(configs, jobs=None, fresh_processes=False, progress=None):
    """Trains every config (skipping finished ones), `jobs` processes at a time; returns their metrics in the
    configs' order, reporting each finished run to `progress` (a Progress; by default one for these runs).

    One job trains in this process, unless `fresh_processes` (a run that changes process-wide TensorFlow
    state, such as op determinism, must not share a process with others)."""
    jobs = default_jobs(jobs)
    progress = progress or Progress(len(configs))
    try:
        found = [found_finished(c) for c in configs]
        for result in filter(None, found):
            progress.update(result)
        todo = [c for c, result in zip(configs, found) if result is None]
        trained = iter(_train(todo, jobs, fresh_processes, progress) if todo else [])
        return [result or next(trained) for result in found]
    finally:
        progress.close()


def found_finished(config):
    """The result of a run that finished before, read here instead of starting a process to find it (None: it
    must train). Only where the run's folder is known before its data loads (a --data_path file; without one, the
    offline fallback renames the run) and --overwrite is off."""
    if not config.learning.data_path or config.outputs.overwrite or config.runtime.distribute != "none":
        return None
    done = RunFolder(run_dir(config)).finished_metrics()
    return dict(done, skipped=True, folder=run_dir(config)) if done else None


def _train(configs, jobs, fresh_processes, progress):
    """Every config trained: on the cluster, in this process, in the shared pool or in fresh processes."""
    if _CLUSTER:
        configs = [c.replace(threads=c.runtime.threads or 1) for c in configs]
        return cluster.train_all(_CLUSTER["client"], configs, progress, _CLUSTER["runs_per_gpu"])
    if jobs == 1 and not fresh_processes:
        return [_reported(train_one(c), progress) for c in configs]
    configs = [c.replace(threads=c.runtime.threads or 1) for c in configs]
    if _REUSED:
        return _in_pool(_REUSED["pool"], configs, progress)
    # A fresh process per run: each run's peak memory (metrics.json) is its own, not the maximum over
    # the runs a reused worker trained before. (Python 3.10 has no max_tasks_per_child.)
    fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=_SPAWN, **fresh) as pool:
        return _in_pool(pool, configs, progress)


def _in_pool(pool, configs, progress):
    futures = [pool.submit(train_one, c) for c in configs]
    for future in concurrent.futures.as_completed(futures):
        progress.update(future.result())
    return [f.result() for f in futures]


def _reported(result, progress):
    progress.update(result)
    return result


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
