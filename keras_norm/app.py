"""The one function main.py calls: turns a Config plus a mode into work and an exit code."""

import sys

from keras_norm.errors import KerasNormError


def run(config, report=True, report_only=False, runs=(), explain=False, suite=None, jobs=None):
    """Returns the process exit code; user errors become one line on stderr."""
    try:
        config.validate()
        if explain:
            from keras_norm import explain as explain_lib

            print(explain_lib.main(config.seed, config.artifacts_dir))
            return 0
        if report_only:
            from keras_norm import report as report_lib

            report_lib.render(config.artifacts_dir, runs=runs)
            return 0
        if suite == "batch_sweep":
            report = False  # the sweep draws its own figure; the main report stays as it is
        if suite and config.distribute != "none":
            raise KerasNormError("--suite trains its runs in parallel processes on one machine; "
                                 "use --distribute with single runs")
        chief = True
        if suite:
            from keras_norm import suites

            suites.run(suite, config, jobs=jobs)
        else:
            from keras_norm import train

            # A progress bar on a terminal; one line per epoch in logs and CI.
            metrics = train.train(config, verbose="auto" if sys.stdout.isatty() else 0)
            chief = metrics.get("chief", True)
            print(f"test accuracy: {metrics['final_test_accuracy']:.4f} (final epoch), "
                  f"{metrics['best_test_accuracy']:.4f} (best epoch {metrics['best_epoch']})")
        if report and chief:  # other workers of a cluster write nothing into artifacts/
            from keras_norm import report as report_lib

            # After a single run compare the runs present (those of the dataset most runs used); after a
            # suite, the suite's runs.
            report_lib.render(config.artifacts_dir, runs=runs, prefer_suite=suite == "seeds")
        return 0
    except KerasNormError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
