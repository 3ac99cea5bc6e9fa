"""The one function the command line calls: a validated config plus a mode -> work and an exit code.

This is the boundary of the TensorFlow-free layer: everything is validated here first, then TensorFlow
is imported (quietly) and the module that does the work is imported after it.
"""

import os
import sys

from keras_norm import parallel, studies
from keras_norm.bench.options import BenchOptions
from keras_norm.config import Outputs, SuiteOptions
from keras_norm.errors import KerasNormError
from keras_norm.quiet import import_tensorflow

MODES = ("train", "suite", "report_only", "explain", "bench", "predict", "demo")


def run(config, mode="train", suite=None, suite_options=SuiteOptions(), bench_options=BenchOptions(), report=True,
        runs=(), predict=((), None, False), port=8765):
    """Returns the process exit code; a KerasNormError becomes one `error:` line on stderr.

    `predict`: (image paths, run name or None for the ready-to-try models, adapt BN to the images?) for the predict
    mode; `port`: the demo's."""
    try:
        config.validate()
        suite_options.validate()
        bench_options.validate()
        if mode == "suite" and config.runtime.distribute != "none":
            raise KerasNormError("--suite trains its runs in parallel processes on one machine; "
                                 "use --distribute with single runs")
        if mode == "predict":
            _check_predict(*predict[:2])
        if mode == "suite" and suite_options.scale == "tiny":
            _check_tiny_folder(config.outputs.artifacts_dir)
        if mode == "suite" and config.learning.data_path and not suite_options.replot:
            _check_data(config.learning.data_path)
        if not 0 <= port <= 65535:
            raise KerasNormError(f"--port must be in [0, 65535] (0: any free port), got {port}")
        return _dispatch(config, mode, suite, suite_options, bench_options, report, runs, predict, port)
    except KerasNormError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1


def _check_predict(paths, run_name):
    if run_name is not None and (not run_name.strip() or "/" in run_name or run_name.startswith(".")):
        raise KerasNormError(f"--run must be the folder name of a trained run (got {run_name!r})")
    empty = [p for p in paths if not p.strip()]
    if empty or not paths:
        raise KerasNormError("--predict needs one or more image paths, separated by commas")


def _check_data(path):
    """A suite's data file, read once here: a bad one is one error line before any run starts or any folder is
    made (each run's process would find it bad again)."""
    from keras_norm import data

    data.validate(*data.load_npz(path), origin=f"npz:{path}")


def _check_tiny_folder(artifacts):
    if os.path.abspath(artifacts) == os.path.abspath(Outputs().artifacts_dir):
        raise KerasNormError("--scale=tiny writes numbers that mean nothing: give it an --artifacts_dir of its own "
                             f"(not {Outputs().artifacts_dir}/, where the study's results are)")


def _suite(config, suite, suite_options, artifacts, report, runs):
    if suite == "all":
        return _all(config, suite_options, artifacts, report, runs)
    if suite_options.replot:
        replot = getattr(studies.module(suite), "replot", None)
        if replot is None:
            raise KerasNormError(f"--suite={suite} has no --replot: it draws its figures when it runs")
        replot(config, suite_options)
        return 0
    studies.runner(suite)(config, suite_options)
    if suite == "seeds" and report:  # the sweep draws its own figure; the main report stays as it is
        _render_report(artifacts, runs)
    return 0


def _dispatch(config, mode, suite, suite_options, bench_options, report, runs, predict, port):
    artifacts = config.outputs.artifacts_dir
    if mode == "report_only":
        _render_report(artifacts, runs)
        return 0
    if mode == "suite":
        import_tensorflow()  # quietly, before a suite module imports it
        if suite_options.cluster and not suite_options.replot and not suite_options.dry_run:
            with parallel.on_cluster(suite_options.cluster, suite_options.jobs, suite_options.runs_per_gpu):
                return _suite(config, suite, suite_options, artifacts, report, runs)
        return _suite(config, suite, suite_options, artifacts, report, runs)
    import_tensorflow()  # the modes below import TensorFlow: quietly, once, here
    if mode == "explain":
        from keras_norm import explain

        print(explain.main(config.learning.seed, artifacts))
    elif mode == "bench":
        from keras_norm.bench import steps as bench

        bench.run(bench_options, config.learning.data_path, config.runtime.threads)
    elif mode == "predict":
        from keras_norm import predict as predict_lib

        predict_lib.run(*predict[:2], artifacts, adapt_bn=predict[2] if len(predict) > 2 else False)
    elif mode == "demo":
        from keras_norm import demo

        demo.run(port)
    else:
        from keras_norm import train

        # A progress bar on a terminal; one line per epoch in logs and CI.
        metrics = train.train(config, verbose="auto" if sys.stdout.isatty() else 0)
        print(f"test accuracy: {metrics['final_test_accuracy']:.4f} (final epoch), "
              f"{metrics['test_accuracy_at_val_best']:.4f} at the validation-best epoch {metrics['val_best_epoch']}")
        # A single run draws its own curves; the committed comparison changes only for a suite or --report_only.
        if report and metrics.get("chief", True) and not metrics.get("skipped"):
            print(f"curves: {_report().run_figure(metrics['folder'])}")
    return 0


def _all(config, suite_options, artifacts, report, runs):
    """--suite=all: every suite in order, then the report; --dry_run only lists."""
    from keras_norm.studies import plan

    if suite_options.dry_run:
        plan.dry_run(config, suite_options)
        return 0
    skipped = plan.run_all(config, suite_options, studies.runner)
    if report:
        _render_report(artifacts, runs)
    if skipped:
        print(f"suite all: done, but without {', '.join(skipped)} (their models are not on this machine)")
    return 0


def _render_report(artifacts, runs):
    """The main report: the seeds suite's runs drawn into `artifacts`."""
    from keras_norm.studies import seeds

    _report().render(artifacts, seeds.suite_dir(artifacts), runs=runs)


def _report():
    from keras_norm import report  # matplotlib: only when a report is drawn

    return report
