"""Whole training runs as `main.py` trains them, on the engine's path and on the norm-kernel path (paths.py).

    python main.py --bench --bench_runs=3 --data_path=mnist.npz

The step benchmark (steps.py) times training steps only. A run also builds and traces its model, evaluates
the validation and test sets every epoch, records its statistics (layer_stats.py), saves checkpoints, and at
the end exports a SavedModel and draws its figures. Here, per norm, `repeats` times, a run of `EPOCHS` epochs is
trained on each path of `paths.NAMES`, in one process, into a temporary folder, and timed: the whole run
(`run_seconds`) and its last epoch as the run logs it (`epoch_seconds`: steps, evaluation and callbacks, without
the first epoch's tracing). A suite is a sequence of such runs. The medians count; as everywhere here, only the
ratios mean anything on a shared machine.
"""

import os
import tempfile
import time

import numpy as np

from keras_norm import data, train
from keras_norm.bench import paths
from keras_norm.config import RunConfig
from keras_norm.run_folder import RunFolder

EPOCHS = 2


def _timed_run(config, dataset, path):
    """(seconds of the whole run on `path`, seconds of its last epoch as logged)."""
    config = config.replace(steps_per_execution=paths.steps_per_execution(path))
    start = time.perf_counter()
    train.train(config, dataset=dataset, log=lambda *args, **kwargs: None, verbose=0,
                engine_options=path.engine_options)
    seconds = time.perf_counter() - start
    return seconds, RunFolder(train.run_dir(config)).history()[-1]["seconds"]


def time_runs(norm, data_path, repeats):
    """One dict: median run and last-epoch seconds of each path, and their ratios (norm_kernel / engine)."""
    times = {name: [] for name in paths.NAMES}
    with tempfile.TemporaryDirectory() as folder:
        config = RunConfig.create(norm=norm, epochs=EPOCHS, data_path=data_path, overwrite=True,
                                  artifacts_dir=os.path.join(folder, "artifacts"))
        learning = config.learning
        dataset = data.load(learning.data_path, learning.train_limit, learning.test_limit, learning.val_fraction)
        for _ in range(repeats):
            for name, path in paths.NAMES.items():
                times[name].append(_timed_run(config, dataset, path))
    median = {path: np.median(np.array(t), axis=0) for path, t in times.items()}
    out = {"norm": norm, "epochs": EPOCHS, "repeats": repeats, "train_images": len(dataset.y_train)}
    for path, (run_seconds, epoch_seconds) in median.items():
        out.update({f"{path}_run_seconds": round(float(run_seconds), 2),
                    f"{path}_epoch_seconds": round(float(epoch_seconds), 2)})
    out["run_speedup"] = round(out["norm_kernel_run_seconds"] / out["engine_run_seconds"], 3)
    out["epoch_speedup"] = round(out["norm_kernel_epoch_seconds"] / out["engine_epoch_seconds"], 3)
    return out
