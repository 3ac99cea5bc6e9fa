"""Learning-rate schedules, selected by name: constant, step, onecycle."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_norm")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Smith's one-cycle policy: a linear warm-up from peak/div to `peak` over the first
    `pct_start` of the steps, then a cosine anneal down to peak/final_div."""

    def __init__(self, peak, total_steps, pct_start=0.25, div=10.0, final_div=100.0):
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.pct_start = float(pct_start)
        self.div = float(div)
        self.final_div = float(final_div)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = max(1.0, self.total_steps * self.pct_start)
        rest = max(1.0, self.total_steps - warm)
        start, end = self.peak / self.div, self.peak / self.final_div
        up = start + (self.peak - start) * step / warm
        t = ops.minimum(1.0, (step - warm) / rest)
        down = end + (self.peak - end) * 0.5 * (1.0 + ops.cos(math.pi * t))
        return ops.where(step < warm, up, down)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div": self.div,
            "final_div": self.final_div,
        }


def make_schedule(name, lr, steps_per_epoch, epochs):
    """Returns a float (constant) or a LearningRateSchedule."""
    total = steps_per_epoch * epochs
    if name == "constant":
        return lr
    if name == "step":
        # Divide by 10 after 50% and 75% of training.
        bounds = [max(1, total // 2), max(2, (3 * total) // 4)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(bounds, [lr, lr / 10, lr / 100])
    if name == "onecycle":
        return OneCycle(lr, total)
    raise ValueError(f"unknown schedule {name!r}")
