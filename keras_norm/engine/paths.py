"""The training paths the benchmarks compare: options of `engine.accelerate`, of the input pipeline and of the
training loop.

* the project's path: all of the engine (`accelerate`'s defaults, and the pipeline's rotation kernel), and the
  runtime's steps per compiled call (`--steps_per_execution`);
* "before": the path of the day issue 20 was opened, the norm kernel only (Keras's Conv2D, Dropout, MaxPooling2D
  and RandomRotation) and 8 steps per call: the comparison of the step speedup;
* the project's path without one of `PARTS`, to measure what each part is worth.
"""

from typing import NamedTuple, Optional

from keras_norm import engine

PARTS = ("conv3x3", "conv1x1", "dropout", "pooling", "rotation", "steps_per_execution")
_SIZES = {"conv3x3": (3, 3), "conv1x1": (1, 1)}
BEFORE_STEPS_PER_EXECUTION = 8  # the default of the day issue 20 was opened


class Path(NamedTuple):
    accelerate_options: dict  # keyword arguments of `engine.accelerate`
    rotation_kernel: bool  # whether the input pipeline rotates on the engine's kernel
    steps_per_execution: Optional[int]  # None: the runtime's


def options(before=False, without=None):
    """The `Path` of the project's path, of "before", or of the project's path `without` a part."""
    if before:
        return Path({"conv_sizes": (), "fast_dropout": False, "fast_pooling": False}, False,
                    BEFORE_STEPS_PER_EXECUTION)
    if without is not None and without not in PARTS:
        raise ValueError(f"unknown part {without!r}")
    sizes = tuple(size for size in engine.CONV_SIZES if size != _SIZES.get(without))
    return Path({"conv_sizes": sizes, "fast_dropout": without != "dropout", "fast_pooling": without != "pooling"},
                without != "rotation", BEFORE_STEPS_PER_EXECUTION if without == "steps_per_execution" else None)
