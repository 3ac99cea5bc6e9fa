"""The report: graphs, 5x2 error grids and result tables from the run folders under `artifacts/runs/`.

Outputs (in the artifacts folder): graph1_test_loss.png, graph2_test_accuracy.png, training_curves.png,
misclassified_<run>.png (one per run name, its lowest seed), report.md and results.json. Runs of one
name with several seeds are drawn as the seed mean with a min-max band. `python main.py --report_only`.
"""

import os
import sys

from keras_norm import fileio
from keras_norm.errors import KerasNormError
from keras_norm.report import plots, tables
from keras_norm.report import runs as runs_lib


def render(artifacts_dir, runs=(), prefer_suite=True, log=None):
    """Renders everything; returns the list of files written."""
    log = log or (lambda m: print(m, file=sys.stderr))
    if not os.path.isdir(os.path.join(artifacts_dir, "runs")):
        raise KerasNormError(f"no runs under {os.path.join(artifacts_dir, 'runs')}; train a model first")
    fileio.check_writable(artifacts_dir)
    selected, suite = runs_lib.select(runs_lib.load_runs(artifacts_dir, log), list(runs), artifacts_dir,
                                      prefer_suite, log)
    groups = runs_lib.group(selected)
    failed = [r for r in selected if r.status == "failed"]
    if not groups:
        raise KerasNormError("no finished runs to report")
    written = []

    def out(name):
        written.append(os.path.join(artifacts_dir, name))
        return written[-1]

    plots.plot_single(out("graph1_test_loss.png"), groups, "val_loss", "test loss (log scale)",
                      "Graph 1: test/validation loss per epoch", mark="min")
    plots.plot_single(out("graph2_test_accuracy.png"), groups, "val_accuracy", "test accuracy (%)",
                      "Graph 2: test/validation accuracy per epoch", percent=True, zoom=True)
    plots.plot_training_curves(out("training_curves.png"), groups)
    written += plots.misclassified_grids(artifacts_dir, groups, log)
    fileio.write_json(out("results.json"), tables.results(groups))
    fileio.write_text(out("report.md"), tables.report_markdown(groups, failed, suite if prefer_suite else None,
                                                               runs_lib.describe(groups)))
    log(f"report: {len(written)} files written to {artifacts_dir}")
    return written
