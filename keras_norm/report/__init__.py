"""The report: graphs, 5x2 error grids and result tables from a suite's runs (the main one: `artifacts/seeds/runs/`).

Outputs (in the artifacts folder): graph1_data_loss.png, graph2_test_accuracy.png, training_curves.png,
misclassified_<run>.png (one per variant, its lowest seed), confusion_matrices.png, report.md and
results.json. Runs of one name with several seeds are drawn as the seed mean with a min-max band.
`python main.py --report_only`.
"""

import os
import sys

from keras_norm import fileio
from keras_norm.errors import KerasNormError
from keras_norm.report import plots, tables
from keras_norm.report import runs as runs_lib


def render(artifacts_dir, source, runs=(), log=None):
    """Renders the comparison of the runs in `source` (a suite's folder, holding `runs/`) into `artifacts_dir`;
    returns the list of files written."""
    log = log or (lambda m: print(m, file=sys.stderr))
    if not os.path.isdir(os.path.join(source, "runs")):
        raise KerasNormError(f"no runs under {os.path.join(source, 'runs')}; train them with --suite=seeds first")
    fileio.check_writable(artifacts_dir)
    selected, suite = runs_lib.select(runs_lib.load_runs(source, log), list(runs), source, log)
    groups = runs_lib.group(selected)
    failed = [r for r in selected if r.status == "failed"]
    if not groups:
        raise KerasNormError("no finished runs to report")
    written = []

    def out(name):
        written.append(os.path.join(artifacts_dir, name))
        return written[-1]

    plots.graph1_loss(out("graph1_data_loss.png"), groups)
    plots.graph2_accuracy(out("graph2_test_accuracy.png"), groups)
    plots.training_curves(out("training_curves.png"), groups)
    plots.confusion_matrices(out("confusion_matrices.png"), groups)
    written += plots.mistake_grids(artifacts_dir, groups, log)
    fileio.write_json(out("results.json"), tables.results(groups))
    fileio.write_text(out("report.md"), tables.report_markdown(groups, failed, suite, runs_lib.describe(groups)))
    log(f"report: {len(written)} files written to {artifacts_dir}")
    return written


def run_figure(run_path):
    """A single run's own training curves, `curves.png` in its folder; returns the path."""
    run = runs_lib.Run(run_path)
    path = os.path.join(run_path, "curves.png")
    plots.training_curves(path, {run.name: [run]})
    return path
