"""The main experiment (`--suite=seeds`): the assignment's three variants and a no-norm baseline, 5 seeds each.

Runs go seed by seed (all variants of seed 0 first), so a suite stopped part-way has every variant.
"""

import glob
import os
import time

from keras_norm import data, fileio, parallel
from keras_norm.errors import KerasNormError
from keras_norm.run_folder import RunFolder

SEEDS = (0, 1, 2, 3, 4)
# The three variants of the assignment: BN + L1 + L2, GN + L1, LN + L2 (the user's own example), and the same
# network and recipe without normalization or penalty: does normalization help at all at this size?
VARIANTS = (
    dict(norm="bn", l1=1e-5, l2=1e-4),
    dict(norm="gn", l1=1e-5, l2=0.0),
    dict(norm="ln", l1=0.0, l2=1e-3),
    dict(norm="none", l1=0.0, l2=0.0),
)


def suite_dir(artifacts_dir):
    """The suite's own folder (its runs and suite.json); the report over it goes to `artifacts_dir` itself."""
    return os.path.join(artifacts_dir, "seeds")


def suite_models(artifacts_dir):
    """{norm: [(seed, run folder)]} for the finished runs of the seeds suite that kept a model.keras."""
    out = {}
    for path in sorted(glob.glob(os.path.join(suite_dir(artifacts_dir), "runs", "*"))):
        folder = RunFolder(path)
        metrics = folder.finished_metrics()
        if metrics and os.path.exists(folder.file("model.keras")):
            out.setdefault(metrics["norm"], []).append((metrics["seed"], path))
    if not out:
        raise KerasNormError(f"no trained models under {os.path.join(suite_dir(artifacts_dir), 'runs')}; "
                             "run --suite=seeds first")
    return {norm: sorted(runs) for norm, runs in out.items()}


def models_and_test_set(artifacts_dir):
    """(suite_models(...), the test images on the [0, 1] scale, their labels): what the evaluation suites need."""
    models = suite_models(artifacts_dir)
    fileio.check_writable(artifacts_dir)
    flags = RunFolder(next(iter(models.values()))[0][1]).read("config.json")["flags"]
    return (models, *data.raw_test_set(flags["data_path"], flags["test_limit"]))


def configs(base, seeds=SEEDS):
    """The suite's runs; with op determinism, which removed the same-seed noise at no measured cost
    (artifacts/noise.json)."""
    folder = suite_dir(base.outputs.artifacts_dir)
    return [base.replace(seed=s, artifacts_dir=folder, deterministic=True, **v) for s in seeds for v in VARIANTS]


def run(base, options, log=print, seeds=SEEDS):
    """Trains the suite from the `base` config; writes and returns suite.json's content."""
    todo = configs(base, seeds)
    jobs = parallel.default_jobs(options.jobs)
    fileio.check_writable(suite_dir(base.outputs.artifacts_dir))
    start = time.time()
    log(f"suite seeds: {len(todo)} runs, {jobs} in parallel")
    results = parallel.train_all(todo, jobs)
    wall = time.time() - start
    summary = {
        "suite": "seeds",
        "runs": sorted({c.name for c in todo}),
        "folders": [c.folder_name for c in todo],
        "parallel_jobs": jobs,
        "wall_seconds": round(wall, 1),
        "trained_now": sum(1 for r in results if r.get("status") == "finished" and not r.get("skipped")),
        "failed": [r for r in results if r.get("status") != "finished"],
    }
    fileio.write_json(os.path.join(suite_dir(base.outputs.artifacts_dir), "suite.json"), summary)
    parallel.raise_failures("seeds", results)
    log(f"suite seeds: done in {wall / 60:.1f} min")
    return summary
