"""The training paths the benchmark compares: options of `engine.accelerate` and of the input pipeline
(`engine.Options`), and steps per compiled call.

* `ENGINE`: what `main.py` trains with `--fast` (the default): all of the engine, and the runtime's steps per
  compiled call (`--steps_per_execution`);
* `NORM_KERNEL`: the engine's norm + ReLU kernel alone, with TensorFlow's convolutions, Keras's Dropout,
  MaxPooling2D and RandomRotation, 8 steps per call: the comparison of the step speedup;
* `without(part)`: the engine's path without one of `PARTS`, to measure what each part is worth.
"""

from typing import NamedTuple, Optional

from keras_norm import engine
from keras_norm.config import Runtime

PARTS = ("conv3x3", "conv1x1", "dropout", "pooling", "rotation", "steps_per_execution")
_SIZES = {"conv3x3": (3, 3), "conv1x1": (1, 1)}
FEW_STEPS_PER_EXECUTION = 8  # the norm-kernel path's steps per call (and the path without that part)


class Path(NamedTuple):
    engine_options: engine.Options
    steps_per_execution: Optional[int]  # None: the runtime's


ENGINE = Path(engine.Options(), None)
NORM_KERNEL = Path(engine.Options(conv_sizes=(), fast_dropout=False, fast_pooling=False, fast_rotation=False),
                   FEW_STEPS_PER_EXECUTION)
NAMES = {"engine": ENGINE, "norm_kernel": NORM_KERNEL}


def without(part):
    """The engine's path without `part` (one of `PARTS`)."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}")
    sizes = tuple(size for size in engine.CONV_SIZES if size != _SIZES.get(part))
    options = engine.Options(conv_sizes=sizes, fast_dropout=part != "dropout", fast_pooling=part != "pooling",
                             fast_rotation=part != "rotation")
    return Path(options, FEW_STEPS_PER_EXECUTION if part == "steps_per_execution" else None)


def steps_per_execution(path):
    """The steps per compiled call a path trains."""
    return path.steps_per_execution or Runtime().steps_per_execution
