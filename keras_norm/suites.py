"""The registry of suites: `--suite=NAME` runs `run(base, options, log)` of the module SUITES[NAME] names.

A suite trains (parallel.py) or evaluates many runs from one base config and writes its own files. main.py's
flag choices and help text are read from this table. The modules are imported only when their suite runs,
so the command line stays free of TensorFlow until then.
"""

import collections
import importlib

Suite = collections.namedtuple("Suite", "module help")

SUITES = {
    "seeds": Suite("keras_norm.seeds", "BN+L1+L2, GN+L1, LN+L2 and no norm, 5 seeds each (the main experiment)"),
    "tune": Suite("keras_norm.tune", "the recipe's peak learning rate x dropout, chosen on the validation split"),
    "noise": Suite("keras_norm.noise", "one seed trained twice without and twice with op determinism"),
    "shift": Suite("keras_norm.shift", "the seeds suite's models on shifted test sets (no training)"),
    "bn_batch_stats": Suite("keras_norm.bn_stats", "BN models with moving vs batch statistics; GN/LN batch "
                                                   "invariance (the seeds suite's models, no training)"),
    "inside": Suite("keras_norm.inside_report", "activation and gradient statistics per layer and epoch, "
                                                "gathered from the seeds suite's runs (no training)"),
    "lr_sweep": Suite("keras_norm.lr_sweep", "bn, gn, ln, none at peak learning rates 0.01..1.0, 5 epochs, 2 seeds"),
    "grid": Suite("keras_norm.grid", "{bn, gn, ln, none} x {no penalty, L1, L2, L1+L2}, 3 seeds (the seeds suite's "
                                     "variants are its cells)"),
    "batch_sweep": Suite("keras_norm.sweep", "bn, gn, ln at batch sizes 2..128 (--sweep_epochs, --sweep_seeds)"),
}


def runner(name):
    """The `run` function of suite `name`."""
    return importlib.import_module(SUITES[name].module).run
