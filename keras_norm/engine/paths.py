"""The training paths the benchmarks compare, as options of `engine.accelerate` and of the input pipeline.

* the project's path: all of the engine (`accelerate`'s defaults, and the pipeline's rotation kernel);
* "before": the path of the day issue 20 was opened, the norm kernel only (Keras's Conv2D, Dropout, MaxPooling2D
  and RandomRotation): the comparison of the step speedup;
* the project's path without one of `PARTS`, to measure what each part is worth.
"""

from keras_norm import engine

PARTS = ("conv3x3", "conv1x1", "dropout", "pooling", "rotation")
_SIZES = {"conv3x3": (3, 3), "conv1x1": (1, 1)}


def options(before=False, without=None):
    """(keyword arguments of `engine.accelerate`, whether the pipeline rotates on the kernel) of a path."""
    if before:
        return {"conv_sizes": (), "fast_dropout": False, "fast_pooling": False}, False
    if without is not None and without not in PARTS:
        raise ValueError(f"unknown part {without!r}")
    sizes = tuple(size for size in engine.CONV_SIZES if size != _SIZES.get(without))
    return ({"conv_sizes": sizes, "fast_dropout": without != "dropout", "fast_pooling": without != "pooling"},
            without != "rotation")
