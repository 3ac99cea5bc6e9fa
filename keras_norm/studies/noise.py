"""How noisy a single run is (`--suite=noise`): one variant and seed, trained twice without and twice with
TensorFlow op determinism (`--deterministic`), two runs at a time, each mode's pair side by side.

Writes `artifacts/noise.json`: each run's final test accuracy and epoch time, the gap between the two
same-seed runs of each mode, whether their histories are identical, and what determinism costs in time.
"""

import os

import numpy as np

from keras_norm import fileio, parallel

VARIANT = dict(norm="gn", l1=1e-5, l2=0.0)  # GN + L1, a variant of the main suite
SEED = 0
RUNS = (("free_a", False), ("deterministic_a", True), ("free_b", False), ("deterministic_b", True))


def suite_dir(artifacts_dir):
    return os.path.join(artifacts_dir, "noise")


def configs(base):
    folder = suite_dir(base.outputs.artifacts_dir)
    return [base.replace(seed=SEED, deterministic=det, run_name=f"noise_{name}", artifacts_dir=folder, **VARIANT)
            for name, det in RUNS]


def _history(result):
    return fileio.read_json(os.path.join(result["folder"], "history.json"))["epochs"]


def summarize(results):
    """noise.json content from the four runs' metrics."""
    runs = {name: {"deterministic": det, "final_test_accuracy": r["final_test_accuracy"],
                   "mean_epoch_seconds": r["mean_epoch_seconds"]} for (name, det), r in zip(RUNS, results)}
    out = {"variant": VARIANT, "seed": SEED, "epochs": results[0]["epochs"], "runs": runs}
    for mode, (a, b) in (("free", (0, 2)), ("deterministic", (1, 3))):
        out[f"{mode}_same_seed_diff_pp"] = round(100 * abs(results[a]["final_test_accuracy"]
                                                            - results[b]["final_test_accuracy"]), 4)
        strip = [[{k: v for k, v in row.items() if k != "seconds"} for row in _history(results[i])] for i in (a, b)]
        out[f"{mode}_identical_histories"] = strip[0] == strip[1]
    free = np.mean([results[i]["mean_epoch_seconds"] for i in (0, 2)])
    det = np.mean([results[i]["mean_epoch_seconds"] for i in (1, 3)])
    out["deterministic_epoch_time_ratio"] = round(float(det / free), 3)
    return out


def run(base, options, log=print):
    todo = configs(base)
    fileio.check_writable(suite_dir(base.outputs.artifacts_dir))
    log(f"suite noise: {len(todo)} runs of {VARIANT} seed {SEED}, with and without op determinism")
    results, wall = parallel.train_checked("noise", todo, options.jobs)
    summary = dict(summarize(results), wall_seconds=wall)
    fileio.write_json(os.path.join(base.outputs.artifacts_dir, "noise.json"), summary)
    log(f"suite noise: same-seed gap {summary['free_same_seed_diff_pp']} pp without determinism, "
        f"{summary['deterministic_same_seed_diff_pp']} pp with it (x{summary['deterministic_epoch_time_ratio']} time)")
    return summary
