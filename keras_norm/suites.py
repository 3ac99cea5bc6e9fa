"""The registry of suites: `--suite=NAME` runs `SUITES[NAME].run(base, options, log)`.

A suite trains many runs from one base config (parallel.py) and writes its own summary files.
main.py's flag choices and help text are read from this table.
"""

import collections

from keras_norm import seeds, sweep

Suite = collections.namedtuple("Suite", "run help")

SUITES = {
    "seeds": Suite(seeds.run, "BN+L1+L2, GN+L1, LN+L2 and no norm, 5 seeds each (the main experiment)"),
    "batch_sweep": Suite(sweep.run, "bn, gn, ln at batch sizes 2..128 (--sweep_epochs, --sweep_seeds)"),
}
