"""The studies: one module per suite, named as the suite is named, and this registry of them.

`--suite=NAME` runs `run(base, options, log)` of `keras_norm.studies.NAME`. A suite trains many runs from one
base config (keras_norm/parallel.py), or evaluates the runs of another suite, and writes its own files under
`artifacts/`. A new study is one module here and one row below. The modules are imported only when their
suite runs, so the command line (which reads its `--suite` choices and help text from this table) stays free of
TensorFlow until then.
"""

import importlib
import os

from keras_norm import fileio

# name -> what it does (the help text of --suite); the module is keras_norm.studies.<name>, but for "all" (plan.py)
SUITES = {
    "all": "every suite below in dependency order, then the report; --dry_run lists what is done and what is left",
    "seeds": "BN+L1+L2, GN+L1, LN+L2 and no norm, 5 seeds each (the main experiment)",
    "fair": "BN, GN, LN and no norm without a penalty, 10 seeds each; no norm at a peak learning rate chosen for it "
            "on validation",
    "groups": "GN with 1, 2, 4, 8 groups, instance norm and per-activation LayerNormalization, no penalty, 5 seeds",
    "tune": "the recipe's peak learning rate x dropout, chosen on the validation split",
    "noise": "one seed trained twice without and twice with op determinism",
    "shift": "the seeds suite's models on shifted test sets (no training)",
    "bn_adapt": "BN models under every shift with statistics frozen and re-estimated on 8, 32, 256 or all shifted "
                "test images (no labels, no training)",
    "mnist_c": "every model of the seeds suite and of the fair comparison on MNIST-C's 15 corruptions of the test "
               "set, BN frozen and adapted (no training)",
    "bn_batch_stats": "BN models with moving vs batch statistics; GN/LN batch invariance (the seeds suite's "
                      "models, no training)",
    "inside": "activation and gradient statistics per layer and epoch, gathered from the seeds suite's runs "
              "(no training)",
    "lr_sweep": "bn, gn, ln, none at peak learning rates 0.01..1.0, 5 epochs, 2 seeds",
    "grid": "{bn, gn, ln, none} x {no penalty, L1, L2, L1+L2}, 3 seeds (the seeds suite's variants are its cells)",
    "batch_sweep": "bn, gn, ln at batch sizes 2..128 (--sweep_epochs, --sweep_seeds)",
    "small_batch": "bn, bn + batch renorm, gn, gn + weight standardization, ln at batch 2..64, 5 seeds, 5 epochs",
}


def module(name):
    """The module of suite `name`."""
    return importlib.import_module(f"{__name__}.{name}")


def runner(name):
    """The `run` function of suite `name`."""
    return module(name).run


def redraw(base, name, write, what, log=print):
    """The `--replot` of an evaluation suite: `write(artifacts, result)` again from the per-seed numbers already in
    `<artifacts>/<name>.json` (no models needed); `what` says what is recomputed."""
    path = os.path.join(base.outputs.artifacts_dir, f"{name}.json")
    result = fileio.read_json(path)
    log(f"suite {name}: {what} redrawn from {path}")
    return write(base.outputs.artifacts_dir, result)
