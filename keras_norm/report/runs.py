"""The run folders a report compares: loading, grouping by name (seeds together), selecting."""

import collections
import glob
import os
import sys

import numpy as np

from keras_norm import fileio
from keras_norm.errors import KerasNormError
from keras_norm.run_folder import HISTORY_KEYS, RunFolder


class Run:
    """One finished (or failed) run folder: its config, history and metrics."""

    def __init__(self, path):
        folder = RunFolder(path)
        self.folder = path
        self.config = folder.read("config.json")
        self.flags = self.config["flags"]
        self.name = self.config["name"]
        self.seed = int(self.flags["seed"])
        self.metrics = folder.read("metrics.json", {"status": "unfinished"})
        self.status = self.metrics.get("status", "unfinished")
        self.history = folder.history() if self.status == "finished" else []
        self.mistakes = folder.read("misclassified.json") if self.status == "finished" else None
        if self.status == "finished":
            for key in HISTORY_KEYS:
                if not self.history or any(key not in r for r in self.history):
                    raise ValueError(f"history.json lacks {key!r} (a run from before the validation split?)")

    def series(self, key):
        return np.array([r[key] for r in self.history], dtype=float)


def load_runs(artifacts_dir, log=None):
    """All run folders; a folder that cannot be read is reported on stderr and skipped."""
    log = log or (lambda m: print(m, file=sys.stderr))
    runs = []
    for folder in sorted(glob.glob(os.path.join(artifacts_dir, "runs", "*"))):
        if not os.path.isdir(folder) or not os.path.exists(os.path.join(folder, "config.json")):
            continue
        try:
            runs.append(Run(folder))
        except (KerasNormError, ValueError, KeyError, TypeError) as e:
            log(f"report: skipping {os.path.basename(folder)}: {type(e).__name__}: {e}")
    return runs


def group(runs):
    """{name: [runs sorted by seed]} over finished runs, names sorted."""
    groups = collections.defaultdict(list)
    for r in runs:
        if r.status == "finished":
            groups[r.name].append(r)
    return {n: sorted(groups[n], key=lambda r: r.seed) for n in sorted(groups)}


def describe(groups):
    """One line on the data, epochs and seeds behind the grouped runs."""
    any_run = next(iter(groups.values()))[0]
    ds = any_run.config["dataset"]
    epochs = max(len(r.history) for g in groups.values() for r in g)
    seeds = sorted({len(g) for g in groups.values()})
    seed_text = f", mean of {seeds[0]} seeds (band: min-max)" if seeds == [seeds[-1]] and seeds[0] > 1 else ""
    return (f"{ds['name']} {ds['train_size']:,} train / {ds.get('val_size', 0):,} validation / "
            f"{ds['test_size']:,} test images, {epochs} epochs{seed_text}")


def dataset_key(run):
    d = run.config.get("dataset", {})
    return d.get("name"), d.get("train_size"), d.get("test_size")


def select(runs, names, source, log=None):
    """The runs to compare: `names` if given, else the suite's (suite.json in `source`), else all runs of one
    dataset (the one most runs used; runs on another dataset are left out with a note)."""
    log = log or (lambda m: print(m, file=sys.stderr))
    suite_path = os.path.join(source, "suite.json")
    suite = fileio.read_json(suite_path) if os.path.exists(suite_path) else None
    explicit = bool(names)
    if not names and suite:
        names = suite["runs"]
    if names:
        unknown = sorted(set(names) - {r.name for r in runs})
        if unknown:
            raise KerasNormError(f"--runs names unknown run(s): {', '.join(unknown)}")
        runs = [r for r in runs if r.name in set(names)]
    datasets = collections.Counter(dataset_key(r) for r in runs)
    if len(datasets) > 1:
        if explicit:
            raise KerasNormError("--runs mixes datasets (" + ", ".join(sorted(str(k[0]) for k in datasets))
                                 + "); report the runs of one dataset at a time")
        keep = max(sorted(datasets, key=str), key=lambda k: datasets[k])
        left = sorted({r.name for r in runs if dataset_key(r) != keep})
        log(f"report: left out {', '.join(left)} (trained on another dataset than the other runs); "
            f"pass --runs to report them")
        runs = [r for r in runs if dataset_key(r) == keep]
    return runs, suite
